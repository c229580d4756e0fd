-- jararaca.sched: tasks and structured concurrency over the C scheduler.
--
--   sched.sleep(seconds)                 yield to the loop for that long
--   local t = sched.spawn(fn, ...)       run fn in its own task (inherits the context)
--   local ok, ... = t:wait([timeout])    true, results | nil, msg, "timeout" | nil, msg, "cancelled"
--   local a, b = sched.gather(f1, f2)    run concurrently, return each first result, raise the first error
--   local ok, ... = sched.timeout(s, fn, ...)   true, results | nil, msg, "timeout"
--
-- Errors are not expected failures: an error raised in a task is raised
-- again, as the same value, by wait/gather/timeout. Cancelling a task
-- raises M.CANCELLED at its wait point (sleep, wait, gather, timeout).
-- docs/errors.md has the whole convention.
--
-- Every task runs in a pooled coroutine driven by the C scheduler
-- (bindings/sched.c). This module also owns the global `coroutine` library:
-- a user's own coroutine that sleeps or does I/O inside still reaches the
-- scheduler, because its park is passed outward and the results handed back.
local core = require "jararaca.core.sched"
local context = require "jararaca.context"
local log = require "jararaca.log"
local describe = require("jararaca.errors").describe

local M = {}

local PARK = core.PARK
local c_sleep, c_wait, c_wake, c_current, c_spawn, c_cancel, c_idle, c_clock =
  core.sleep, core.wait, core.wake, core.current, core.spawn, core.cancel, core.idle, core.clock
local xpcall, pcall, traceback, select, unpack, setmetatable, error, type, format =
  xpcall, pcall, debug.traceback, select, unpack, setmetatable, error, type, string.format
local tracing = require "jararaca.tracing.state"
local co_running = coroutine.running
local bind = context.bind

--- The error value raised inside a cancelled task.
M.CANCELLED = setmetatable({}, { __tostring = function() return "cancelled" end })
local CANCELLED = M.CANCELLED

local function report(err)
  if err ~= CANCELLED then log.error("unhandled error in task: ", describe(err)) end
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
  -- tracing on: the task's spans are children of the span it was spawned in
  local span = tracing.on and tracing.current(nil)
  -- a request's root span the C server keeps (jararaca.tracing.state) is
  -- made Lua's now: the task may run after the request is over, when C no
  -- longer has it, and its spans must still be children of it
  if tracing.on and not span and ctx then tracing.current(ctx) end
  task.handle, task.gen = c_spawn(function()
    bind(ctx)
    -- (coroutines are reused for tasks: the entry is cleared at the end)
    local co = co_running()
    if span then tracing.active[co] = span end
    -- keep the error value as raised (wait() returns it); the traceback is
    -- kept aside for logging
    local function on_error(e)
      task.traceback = traceback(describe(e), 2)
      return e
    end
    local r = pack(xpcall(fn, on_error, unpack(args, 1, args.n)))
    if span then tracing.active[co] = nil end
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
        logf("spawned task failed: ", task.traceback or describe(r[2]))
      end
    end
    local ws = task.waiters
    for i = 1, #ws do c_wake(ws[i][1], ws[i][2]) end
  end)
  return task
end

-- Park until the task is done. Returns true | nil, msg, "timeout"; raises
-- CANCELLED when the waiting task is cancelled meanwhile (like sleep).
local function await(self, timeout, what)
  if self.done then return true end
  local h, g = c_current()
  if not h then error(what .. " must be called inside a task", 3) end
  local deadline = timeout and c_clock() + timeout
  local w = { h, g }
  local ws = self.waiters
  ws[#ws + 1] = w
  local ok, msg, code
  repeat -- (a wake from elsewhere is not the task's end: wait on)
    ok, msg, code = c_wait(deadline and deadline - c_clock())
  until not ok or self.done
  for i = #ws, 1, -1 do if ws[i] == w then table.remove(ws, i) end end
  if code == "cancelled" then error(CANCELLED, 0) end
  if self.done then return true end -- (it finished just as the time ran out)
  return nil, msg, code
end

local function timed_out(seconds)
  return format("timed out after %g s", seconds)
end

--- Wait for the task (up to timeout seconds): true, results... when it
--- returned; nil, msg, "timeout" when it is still running (it goes on);
--- nil, msg, "cancelled" when it was cancelled. An error it raised is
--- raised again here, as the same value. Raises CANCELLED when the waiting
--- task is cancelled meanwhile.
function Task:wait(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    error("task:wait([timeout]): timeout must be a number of seconds", 2)
  end
  local ok, msg, code = await(self, timeout, "task:wait()")
  if not ok then
    if code == "timeout" then msg = "the task is still running: " .. timed_out(timeout) end
    return nil, msg, code
  end
  if self.ok then return true, unpack(self.results, 2, self.results.n) end
  if self.err == CANCELLED then return nil, "the task was cancelled", "cancelled" end
  error(self.err, 0)
end

--- Ask the task to stop: a sleeping/waiting task gets M.CANCELLED raised at
--- its wait point. Returns true if a cancellation was delivered or recorded.
function Task:cancel()
  if self.done then return false end
  return c_cancel(self.handle, self.gen)
end

--- Run the functions concurrently; return the first result of each, in
--- order. Raises the first error (as raised, after all of them finished).
--- Cancelled while it waits, it cancels them and raises M.CANCELLED.
function M.gather(...)
  local n = select("#", ...)
  for i = 1, n do
    if type((select(i, ...))) ~= "function" then error(("gather: argument %d is not a function"):format(i), 2) end
  end
  local tasks = {}
  for i = 1, n do
    tasks[i] = M.spawn((select(i, ...)))
    tasks[i].observed = true -- gather reports the error itself
  end
  for i = 1, n do
    local ok, err = pcall(await, tasks[i], nil, "gather()")
    if not ok then -- cancelled ourselves (or not in a task while they wait)
      for k = 1, n do tasks[k]:cancel() end
      error(err, 0)
    end
  end
  local results = {}
  for i = 1, n do
    local t = tasks[i]
    if not t.ok then error(t.err, 0) end
    results[i] = t.results[2]
  end
  return unpack(results, 1, n)
end

--- Run fn(...) with a deadline: true, results... when it returns in time;
--- nil, "timed out after <s> s", "timeout" when it does not (its task is
--- cancelled). An error fn raises is raised again, as the same value.
--- Cancelled while it waits, it cancels fn's task and raises M.CANCELLED.
function M.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds ~= seconds then
    error("timeout(seconds, fn, ...): seconds must be a number", 2)
  end
  if type(fn) ~= "function" then error("timeout(seconds, fn, ...): fn must be a function", 2) end
  local t = M.spawn(fn, ...)
  t.observed = true
  local ok, done = pcall(await, t, seconds, "timeout()")
  if not ok then -- cancelled ourselves (or not in a task while fn waits)
    t:cancel()
    error(done, 0)
  end
  if not done then
    t:cancel()
    return nil, timed_out(seconds), "timeout"
  end
  return t:wait()
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
  if tracing.on then tracing.active[co] = tracing.current(nil) end
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

-- (deliberate: the framework owns `coroutine`, see above)
coroutine.create = create -- luacheck: ignore 122
coroutine.resume = resume -- luacheck: ignore 122
coroutine.wrap = wrap -- luacheck: ignore 122

return M
