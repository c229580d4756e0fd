--- jararaca.bus.worker: the consumers of `jararaca worker app.lua`.
--
--   local w = assert(worker.start(rt, { handlers = {"a"}, groups = {"g"}, prefetch = 20 }))
--   ... until SIGTERM ...
--   w:stop(grace)     -- stop fetching, let in-flight handlers finish, release the rest
--
-- One consumer loop per selected handler: it fetches up to `prefetch`
-- deliveries (leased for the handler's timeout + LEASE_MARGIN) and runs each
-- in its own task, at most `prefetch` at a time. A delivery is one
-- transaction, context kind "message", inside the interceptor chain
-- (use_session works; staged publishes go out after the commit), with the
-- handler's `timeout`. Every delivery ends with exactly one outcome:
--   * acked: the handler returned (or called msg:ack()) and its transaction
--     succeeded;
--   * retried (attempt + 1, after the backoff or retry_later's delay): it
--     raised, timed out, its commit failed, or it called retry()/retry_later();
--     past max_retries a retry becomes a dead letter naming the last error;
--   * dead-lettered at once: msg:reject(), or a payload that cannot be
--     decoded or fails the handler's `payload` schema (never retried);
--   * released (nack: ready again, attempt unchanged): msg:nack(), fetched
--     but not started when the worker stops, or still running when the
--     grace period ends (cancelled).
-- Settling uses the delivery's lease; a settle that fails or raises (the
-- lease was lost, the database is gone, a copy that cannot be sent) is
-- logged, counted as lost (not as the outcome it failed to record), and the
-- lease's end (RabbitMQ: the nack that replaces the copy) brings the
-- message back (at least once).
-- @module jararaca.bus.worker
local bus = require "jararaca.bus"
local message = require "jararaca.bus.message"
local controller = require "jararaca.bus.controller"
local interceptors = require "jararaca.interceptors"
local context = require "jararaca.context"
local sched = require "jararaca.sched"
local csched = require "jararaca.core.sched"
local log = require "jararaca.log"
local errors = require "jararaca.errors"

local M = {}

local ipairs, pairs, pcall, xpcall, tostring, format, setmetatable, rawget, rawset =
  ipairs, pairs, pcall, xpcall, tostring, string.format, setmetatable, rawget, rawset
local min, random, traceback = math.min, math.random, debug.traceback
local xrun = interceptors.xrun
local c_current, c_wait, c_wake, c_spawn, c_cancel, c_clock =
  csched.current, csched.wait, csched.wake, csched.spawn, csched.cancel, csched.clock
local describe, CANCELLED = errors.describe, sched.CANCELLED
local tracing_state = require "jararaca.tracing.state"
local bind, current = context.bind, context.current
local mbus = require "jararaca.metrics.bus" -- built-in metrics: hooks run only when mbus.on

--- Seconds a lease lasts beyond the handler's timeout (the settle after it,
--- a slow commit).
M.LEASE_MARGIN = 10
-- Longest reason kept with a dead letter.
local MAX_REASON = 2000

local Worker = {}
Worker.__index = Worker

-- The retry delay after `retries` retries: initial * factor^retries, at most
-- max, +/- jitter.
function M.backoff_delay(b, retries)
  local d = min(b.max, b.initial * b.factor ^ retries)
  if b.jitter > 0 then d = d * (1 + b.jitter * (2 * random() - 1)) end
  return d > 0 and d or 0
end

-- Settle with the broker and count the outcome (w.counts[count]) once it is
-- recorded; a "busy" answer (another process held the file's write lock
-- past busy_timeout) is tried again a few times. A settle that raises (a
-- copy ac:publish refuses, out of memory) is a failed one: logged and counted as lost like the others,
-- so the delivery still has its one outcome (the broker gave it back, or
-- its lease ends). Not raised again: nothing waits after a settle.
local function settle(w, count, method, d, arg)
  local broker = w.broker
  local pok, ok, err, code
  for _ = 1, 5 do
    pok, ok, err, code = pcall(broker[method], broker, d, arg)
    if not pok then ok, err, code = nil, describe(ok), "error" end
    if ok or code ~= "busy" then break end
  end
  local counts = w.counts
  if mbus.on then mbus.settled(w, d.queue, ok and count or "lost") end
  if ok then
    counts[count] = counts[count] + 1
  else
    counts.lost = counts.lost + 1
    log.warn(format("message bus: %s of message %s (queue %s) failed: %s; it is delivered again later (its lease ends, or the broker redelivers it)",
      method, tostring(d.id), d.queue, tostring(err)))
  end
  return ok, err, code
end

local function reason_text(s)
  if #s > MAX_REASON then return s:sub(1, MAX_REASON) .. "..." end
  return s
end

-- Retry, or dead-letter past max_retries.
local function retry(w, h, d, delay, why)
  if d.attempt >= h.max_retries then
    local reason = reason_text(format("failed after %d attempt(s): %s", d.attempt + 1, why))
    log.error(format("message bus: handler %s: message %s dead-lettered: %s", h.name, tostring(d.id), reason))
    return settle(w, "dead", "dead_letter", d, reason)
  end
  log.warn(format("message bus: handler %s: message %s failed (attempt %d of %d): %s; retry in %.3g s", h.name,
    tostring(d.id), d.attempt + 1, h.max_retries + 1, why, delay))
  return settle(w, "retried", "retry", d, delay)
end

-- The handler, under its timeout; an error keeps its traceback aside (in
-- the context) for the log.
local function keep_traceback(e)
  local ctx = context.current()
  if ctx and e ~= CANCELLED then rawset(ctx, "_traceback", traceback("", 2)) end
  return e
end

local TIMEOUT = setmetatable({}, { __tostring = function() return "timeout" end })

-- The handler runs in its delivery's task under its timeout: while it
-- runs, its task is in loop.active (the task's handle -> its deadline),
-- and the loop's watchdog cancels the task of a handler past its deadline
-- (moving it to loop.timedout): the handler's wait point raises
-- sched.CANCELLED, and the delivery ends as timed out. No task, timer or
-- table of its own per message (which is what sched.timeout would cost).
-- The handler's results are not used.
local function call_handler(h, msg, loop)
  local th = c_current()
  local active = loop.active
  active[th] = c_clock() + h.timeout
  local ok, err = xpcall(h.fn, keep_traceback, h.instance, msg)
  active[th] = nil
  if loop.timedout[th] then
    loop.timedout[th] = nil
    rawset(current(), "_timeout", format("timed out after %g s", h.timeout))
    error(TIMEOUT, 0)
  end
  if not ok then error(err, 0) end
end

--- How often (at most) the watchdog looks for handlers past their timeout:
--- a handler is cancelled between timeout and timeout + this (or timeout/4).
M.WATCH_INTERVAL = 1

-- The loop's watchdog (see call_handler), until stop() cancels it.
local function watchdog(loop)
  local active, timedout, running = loop.active, loop.timedout, loop.running
  local period = math.max(0.01, min(M.WATCH_INTERVAL, loop.handler.timeout / 4))
  while true do
    sched.sleep(period)
    local now = c_clock()
    for th, deadline in pairs(active) do
      if now >= deadline then
        active[th] = nil
        timedout[th] = true
        c_cancel(th, running[th])
      end
    end
  end
end

-- Apply the outcome of a delivery's transaction (see the module comment).
local function outcome(w, h, d, msg, ok, err, ctx)
  local disp = message.disposition(msg)
  local kind = disp and disp.kind
  if not ok then
    local why
    if err == TIMEOUT then
      why = "timed out: " .. tostring(rawget(ctx, "_timeout"))
    elseif err == CANCELLED and w.stopping then
      kind = "nack"
      log.warn(format("message bus: handler %s: message %s still running at the end of the grace period: released",
        h.name, tostring(d.id)))
    else
      why = describe(err)
      local tb = rawget(ctx, "_traceback")
      log.debug(format("message bus: handler %s failed: %s%s", h.name, why, tb or ""))
    end
    -- an ack whose transaction failed did not happen: its writes rolled back
    if kind == nil or kind == "ack" then return retry(w, h, d, M.backoff_delay(h.backoff, d.attempt), why) end
  end
  if kind == nil or kind == "ack" then
    return settle(w, "acked", "ack", d)
  elseif kind == "nack" then
    return settle(w, "released", "nack", d)
  elseif kind == "reject" then
    log.warn(format("message bus: handler %s: message %s rejected: %s", h.name, tostring(d.id), disp.arg))
    return settle(w, "dead", "dead_letter", d, reason_text(disp.arg))
  elseif kind == "retry" then
    return retry(w, h, d, M.backoff_delay(h.backoff, d.attempt), "retry() called by the handler")
  else -- retry_later
    return retry(w, h, d, disp.arg, "retry_later() called by the handler")
  end
end

-- One delivery, in its own task (th, tg: its handle).
local function run_delivery(w, loop, h, d)
  local msg, why = message.new(d, h)
  if not msg then
    log.warn(format("message bus: handler %s: message %s dead-lettered at once: %s", h.name, tostring(d.id), why))
    return settle(w, "dead", "dead_letter", d, reason_text(why))
  end
  local ctx = context.new("message", w.container, {
    message = msg, handler = h, controller = h.controller, member = h.member, request_id = d.id,
  })
  bind(ctx)
  local sp = tracing_state.on and require("jararaca.tracing").start_message(ctx, msg, h)
  local t0 = mbus.on and c_clock()
  local ok, err = xrun(w.chain, ctx, keep_traceback, call_handler, h, msg, loop)
  if t0 then mbus.handled(h.name, c_clock() - t0, ok) end
  if sp then require("jararaca.tracing").end_root(sp, ok, err) end
  local sok, serr = pcall(outcome, w, h, d, msg, ok, err, ctx)
  if not sok then
    log.error("message bus: settling message ", tostring(d.id), " failed: ", describe(serr))
  end
end

-- Park the consumer loop until a delivery task ends or stop() wakes it.
local function park(loop, seconds)
  loop.ph, loop.pg = c_current()
  loop.parked = true
  c_wait(seconds)
  loop.parked = false
end

local function unpark(loop)
  if loop.parked then c_wake(loop.ph, loop.pg) end
end

-- A delivery's task: started with csched.spawn (no sched.Task per
-- message); loop.running (task handle -> its generation) is for stop(),
-- which waits for them and cancels what is left.
local function delivery_task(w, loop, h, d)
  local th = c_current()
  bind(loop.ctx) -- the consumer loop's context, as sched.spawn would
  -- whatever run_delivery raises outside its own protected calls (building
  -- the message), the slot is given back; the delivery, unsettled, comes
  -- back (lease end or the connection's close) and is counted as lost here
  local ok, err = pcall(run_delivery, w, loop, h, d)
  if not ok and err ~= CANCELLED then
    w.counts.lost = w.counts.lost + 1
    if mbus.on then mbus.settled(w, d.queue, "lost") end
    log.error("message bus: handler ", h.name, ": message ", tostring(d.id), " left unsettled: ", describe(err))
  end
  loop.running[th] = nil
  loop.inflight = loop.inflight - 1
  unpark(loop)
end

local function consume(w, loop)
  local h, broker = loop.handler, w.broker
  local lease = h.timeout + M.LEASE_MARGIN
  loop.ctx = current()
  while not w.stopping do
    local room = loop.prefetch - loop.inflight
    if room <= 0 then
      park(loop, 1)
    else
      local ds, err, code = broker:fetch(h.queue, room, lease)
      if not ds then
        if code == "closed" then break end
        log.warn("message bus: fetch from ", h.queue, " failed: ", tostring(err), "; trying again")
        sched.sleep(0.1)
      elseif #ds == 0 then
        local ok, werr, wcode = broker:wait(h.queue, 1)
        if not ok and wcode ~= "timeout" then
          if wcode == "closed" then break end
          log.warn("message bus: waiting on ", h.queue, " failed: ", tostring(werr))
          sched.sleep(0.1)
        end
      else
        for _, d in ipairs(ds) do
          if w.stopping then -- fetched, not started: give it back
            settle(w, "released", "nack", d)
          else
            loop.inflight = loop.inflight + 1
            local th, tg = c_spawn(delivery_task, w, loop, h, d)
            loop.running[th] = tg
          end
        end
      end
    end
  end
end

local function split(list)
  if list == nil or list == "" then return nil end
  local out = {}
  for name in list:gmatch("[^,%s]+") do out[#out + 1] = name end
  return out
end
M.split = split

local HANDLERS = { option = "--handlers", noun = "handler", plural = "handlers" }

--- The handlers of a started runtime that opts select (names, groups):
--- the list | nil, message, "invalid" (a name or group no handler has).
--- words: how errors name the option and the things (default: --handlers,
--- handler, handlers; `jararaca scheduler` selects its actions with it).
function M.select(handlers, names, groups, words)
  words = words or HANDLERS
  local by_name, by_group = {}, {}
  for _, h in ipairs(handlers) do
    by_name[h.name] = h
    by_group[h.group] = true
  end
  for _, n in ipairs(names or {}) do
    if not by_name[n] then
      local known = {}
      for _, h in ipairs(handlers) do known[#known + 1] = h.name end
      return nil, format("%s: no %s named %q (the app's %s: %s)", words.option, words.noun, n, words.plural,
        #known > 0 and table.concat(known, ", ") or "none"), "invalid"
    end
  end
  for _, g in ipairs(groups or {}) do
    if not by_group[g] then return nil, format("--groups: no %s is in group %q", words.noun, g), "invalid" end
  end
  local want_name, want_group = nil, nil
  if names then want_name = {}; for _, n in ipairs(names) do want_name[n] = true end end
  if groups then want_group = {}; for _, g in ipairs(groups) do want_group[g] = true end end
  local out = {}
  for _, h in ipairs(handlers) do
    if (not want_name or want_name[h.name]) and (not want_group or want_group[h.group]) then out[#out + 1] = h end
  end
  return out
end

--- Start consuming: worker | nil, message, code. opts: handlers, groups
--- (lists of names), prefetch (overrides the handlers').
function M.start(rt, opts)
  opts = opts or {}
  local st = bus.state(rt.container)
  local selected, serr, scode = M.select(st.handlers, opts.handlers, opts.groups)
  if not selected then return nil, serr, scode end
  if #selected == 0 then return nil, "the app has no message handler to run (IncomingHandler)", "invalid" end
  local broker, berr, bcode = bus.broker(rt.container)
  if not broker then return nil, berr, bcode end
  local instances = {}
  for _, c in ipairs(rt.controllers) do instances[c.cls] = c.instance end
  local w = setmetatable({
    rt = rt, broker = broker, container = rt.container, chain = rt.interceptors, loops = {},
    stopping = false, counts = { acked = 0, retried = 0, dead = 0, released = 0, lost = 0 },
  }, Worker)
  for i, h in ipairs(selected) do
    h.instance = instances[h.controller]
    local loop = { handler = h, prefetch = opts.prefetch or h.prefetch, inflight = 0, running = {}, active = {},
      timedout = {}, parked = false }
    -- a push broker (RabbitMQ) starts consuming here, at the loop's prefetch
    if broker.subscribe then
      local ok, err, code = broker:subscribe(h.queue, loop.prefetch)
      if not ok then
        w.stopping = true
        for _, l in ipairs(w.loops) do
          l.task:wait()
          l.watchdog:cancel()
        end
        return nil, err, code
      end
    end
    w.loops[i] = loop
    loop.task = sched.spawn(consume, w, loop)
    loop.watchdog = sched.spawn(watchdog, loop)
    log.info(format("message bus: %s consumes %s (topic %s, prefetch %d)", controller.where(h):match("handler .*$"),
      h.queue, h.topic, loop.prefetch))
  end
  if mbus.on then mbus.worker(w) end
  return w
end

-- Wait until the loop's deliveries are over, or the deadline.
local function wait_loop(loop, deadline)
  while loop.inflight > 0 do
    local left = deadline - sched.clock()
    if left <= 0 then return end
    park(loop, left)
  end
end

--- Stop: no more fetching; in-flight handlers get `grace` seconds, then
--- are cancelled (their messages released). Returns the counts.
function Worker:stop(grace)
  self.stopping = true
  for _, loop in ipairs(self.loops) do
    self.broker:notify(loop.handler.queue)
    unpark(loop)
  end
  for _, loop in ipairs(self.loops) do loop.task:wait() end
  -- a push broker: no more deliveries; those not started go back
  if self.broker.unsubscribe then
    for _, loop in ipairs(self.loops) do
      local ok, err = self.broker:unsubscribe(loop.handler.queue)
      if not ok then log.warn("message bus: stopping the consumer of ", loop.handler.queue, ": ", tostring(err)) end
    end
  end
  local deadline = sched.clock() + (grace or 30)
  for _, loop in ipairs(self.loops) do wait_loop(loop, deadline) end
  for _, loop in ipairs(self.loops) do
    for th, tg in pairs(loop.running) do c_cancel(th, tg) end
    wait_loop(loop, sched.clock() + 5)
    loop.watchdog:cancel()
  end
  return self.counts
end

--- Give the tasks of a set (task -> true) `grace` seconds in all to end,
--- then cancel those still running (`jararaca scheduler` stops with it;
--- the worker's own deliveries are not sched.Tasks: see Worker:stop).
function M.drain(tasks, grace)
  local deadline = sched.clock() + grace
  for t in pairs(tasks) do
    local left = deadline - sched.clock()
    if left > 0 then t:wait(left) end
  end
  for t in pairs(tasks) do
    if not t.done then
      t:cancel()
      t:wait(5)
    end
  end
end

return M
