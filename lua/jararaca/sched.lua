-- jararaca.sched: tasks and structured concurrency over the C scheduler.
--
--   sched.sleep(seconds)                 yield to the loop for that long
--   local t = sched.spawn(fn, ...)       run fn in its own task (inherits the context)
--   local ok, ... = t:wait([timeout])    true, results | false, err | nil, "timeout"
--   local a, b = sched.gather(f1, f2)    run concurrently, return each first result, raise the first error
--   local ok, ... = sched.timeout(s, fn, ...)   true, results | false, err | nil, "timeout"
--
-- Every task runs in a pooled coroutine driven by the C scheduler
-- (bindings/sched.c). This module also owns the global `coroutine` library:
-- a user's own coroutine that sleeps or does I/O inside still reaches the
-- scheduler, because its park is passed outward and the results handed back.
local core = require "jararaca.core.sched"
local context = require "jararaca.context"
local log = require "jararaca.log"

local M = {}

local PARK = core.PARK
local c_sleep, c_wait, c_wake, c_current, c_spawn, c_cancel, c_idle =
  core.sleep, core.wait, core.wake, core.current, core.spawn, core.cancel, core.idle
local xpcall, traceback, select, unpack, setmetatable, error, type =
  xpcall, debug.traceback, select, unpack, setmetatable, error, type
local bind = context.bind

--- The error value raised inside a cancelled task.
M.CANCELLED = setmetatable({}, { __tostring = function() return "cancelled" end })
local CANCELLED = M.CANCELLED

local function report(err)
  if err ~= CANCELLED then log.error("unhandled error in task: ", tostring(err)) end
end

-- The body of every pooled coroutine: run one function, park in idle() until
-- the next one arrives. Tail calls keep the stack flat.
local function trampoline(fn, ...)
  local ok, err = xpcall(fn, traceback, ...)
  if not ok then report(err) end
  bind(nil)
  return trampoline(c_idle())
end
core.set_trampoline(trampoline)

local function pack(...) return { n = select("#", ...), ... } end

--- Sleep for seconds (0 = let the other tasks run). Raises M.CANCELLED when
--- the task is cancelled meanwhile.
function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then
    error("sleep(seconds): seconds must be a number", 2)
  end
  local ok = c_sleep(seconds)
  if not ok then error(CANCELLED, 0) end
end

local Task = {}
Task.__index = Task

--- Run fn(...) in a new task. The task inherits the caller's context.
function M.spawn(fn, ...)
  if type(fn) ~= "function" then error("spawn(fn, ...): fn must be a function", 2) end
  local ctx = context.current()
  local task = setmetatable({ done = false, waiters = {} }, Task)
  local args = pack(...)
  task.handle, task.gen = c_spawn(function()
    bind(ctx)
    -- keep the error value as raised (wait() returns it); the traceback is
    -- kept aside for logging
    local function on_error(e)
      task.traceback = traceback(tostring(e), 2)
      return e
    end
    local r = pack(xpcall(fn, on_error, unpack(args, 1, args.n)))
    task.done = true
    task.ok = r[1]
    if r[1] then
      task.results = r
    else
      task.err = r[2]
      if r[2] ~= CANCELLED then
        -- wait() hands the error to whoever waits; log it too, since a
        -- fire-and-forget task has nobody else to tell
        local logf = (#task.waiters == 0 and not task.observed) and log.warn or log.debug
        logf("spawned task failed: ", task.traceback or tostring(r[2]))
      end
    end
    local ws = task.waiters
    for i = 1, #ws do c_wake(ws[i][1], ws[i][2]) end
  end)
  return task
end

--- Wait for the task: true, results... | false, err (it failed) | nil, "timeout" | nil, "cancelled".
function Task:wait(timeout)
  if not self.done then
    local h, g = c_current()
    if not h then error("wait() must be called inside a task", 2) end
    local w = { h, g }
    local ws = self.waiters
    ws[#ws + 1] = w
    local ok, err = c_wait(timeout)
    for i = #ws, 1, -1 do if ws[i] == w then table.remove(ws, i) end end
    if not ok and not self.done then return nil, err end
  end
  if self.ok then return true, unpack(self.results, 2, self.results.n) end
  return false, self.err
end

--- Ask the task to stop: a sleeping/waiting task gets M.CANCELLED raised at
--- its wait point. Returns true if a cancellation was delivered or recorded.
function Task:cancel()
  if self.done then return false end
  return c_cancel(self.handle, self.gen)
end

--- Run the functions concurrently; return the first result of each, in
--- order. Raises the first error (after all of them finished).
function M.gather(...)
  local n = select("#", ...)
  local tasks = {}
  for i = 1, n do
    local fn = select(i, ...)
    if type(fn) ~= "function" then error(("gather: argument %d is not a function"):format(i), 2) end
    tasks[i] = M.spawn(fn)
    tasks[i].observed = true -- gather reports the error itself
  end
  local results, first_err = {}, nil
  for i = 1, n do
    local ok, v = tasks[i]:wait()
    if ok then results[i] = v
    elseif first_err == nil then first_err = v end
  end
  if first_err ~= nil then error(first_err, 0) end
  return unpack(results, 1, n)
end

--- Run fn(...) with a deadline: true, results | false, err | nil, "timeout".
--- On timeout the task is cancelled.
function M.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" then error("timeout(seconds, fn, ...): seconds must be a number", 2) end
  local t = M.spawn(fn, ...)
  t.observed = true
  local r = pack(t:wait(seconds))
  if r[1] == nil and r[2] == "timeout" then t:cancel() end
  return unpack(r, 1, r.n)
end

--- Current loop time (seconds, millisecond resolution) and a precise clock.
M.now = core.now
M.clock = core.clock
M.stats = core.stats

-- ---------------------------------------------------------------------
-- The framework owns `coroutine`: user coroutines may wait on I/O.
local co_create, co_resume, co_yield, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.status

local function create(fn)
  local co = co_create(fn)
  context.inherit(co)
  return co
end

-- resume a user coroutine; when it parks on I/O (yields PARK), park the
-- current coroutine too and hand the results back in when they arrive.
local function resume_results(co, ok, first, ...)
  if ok and first == PARK and co_status(co) == "suspended" then
    return resume_results(co, co_resume(co, co_yield(PARK)))
  end
  return ok, first, ...
end

local function resume(co, ...)
  return resume_results(co, co_resume(co, ...))
end

local function wrap_results(ok, ...)
  if not ok then error((...), 0) end
  return ...
end

local function wrap(fn)
  local co = create(fn)
  return function(...)
    return wrap_results(resume(co, ...))
  end
end

coroutine.create = create
coroutine.resume = resume
coroutine.wrap = wrap

return M
