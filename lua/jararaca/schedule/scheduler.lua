--- jararaca.schedule.scheduler: the timers of `jararaca scheduler app.lua`.
--
--   local s = assert(scheduler.start(rt, { actions = {"a"}, groups = {"g"} }))
--   ... until SIGTERM ...
--   local counts = s:stop(grace)   -- no more firing; running actions get `grace` seconds
--
-- One timer task per selected action sleeps until the action's next fire
-- time (the cron expression's next(), in the action's zone) and fires; the
-- next time is computed from the scheduled time, not from when the timer
-- woke, so lateness does not add up. A tick that is more than LATE seconds
-- past when the timer wakes (the process was suspended, the loop stalled)
-- is missed and logged, not fired late.
-- Firing a tick (inline dispatch):
--   * exclusive (the default): the tick is claimed in the store; another
--     process having it is the outcome "not ours";
--   * allow_overlap = false (the default) and the previous run of the action
--     in this process still running: "skipped", logged;
--   * else the action runs in a task of its own (jararaca.schedule.run):
--     "ok", "failed" or "timeout".
-- A claimed tick's outcome is recorded in the store (finish). Dispatch
-- "bus": the tick is published to "<app>.schedule.<action>" and a worker
-- runs it (jararaca.schedule.dispatch), claiming it there.
-- misfire = "run_once": at start, when the store's last tick of the action
-- is older than a tick that has passed since, that latest missed tick is
-- fired at once.
-- @module jararaca.schedule.scheduler
local schedule = require "jararaca.schedule"
local run = require "jararaca.schedule.run"
local sched = require "jararaca.sched"
local worker = require "jararaca.bus.worker" -- (its selection and draining)
local sys = require "jararaca.core.sys"
local log = require "jararaca.log"
local context = require "jararaca.context"
local errors = require "jararaca.errors"

local M = {}

local ipairs, tostring, format, setmetatable, pcall = ipairs, tostring, string.format, setmetatable, pcall
local time, CANCELLED, describe = sys.time, sched.CANCELLED, errors.describe

--- Seconds a timer may wake after its tick and still fire it.
M.LATE = 5

local Scheduler = {}
Scheduler.__index = Scheduler

local msched = require "jararaca.metrics.schedule" -- built-in metrics: hooks run only when msched.on

-- Count `what` (a key of s.counts) for action a; is_run: a run's outcome.
local function count(s, what, a, n, is_run)
  s.counts[what] = s.counts[what] + 1
  if msched.on then msched.count(a.name, what, n, is_run) end
end

local function finish(s, a, tick, token, outcome)
  return schedule.finish(s.container, a, tick, token, outcome)
end

-- The run of one claimed (or non-exclusive) tick, in its own task.
local function run_task(s, a, r)
  local outcome = run.execute(s.env, a, r)
  a.running = a.running - 1
  count(s, outcome, a, 1, true)
  finish(s, a, r.tick, r.token, outcome)
end

-- Publish the tick for a worker (dispatch = "bus"): now, not staged.
local function publish_tick(s, a, tick, fired_at)
  local publisher = require "jararaca.bus.publisher"
  local ctx = context.new("startup", s.container, { request_id = run.request_id(a, tick) })
  context.bind(ctx)
  local ok, err = publisher.use_publisher():publish({ action = a.name, tick = tick, fired_at = fired_at }, a.topic)
  if ok then
    count(s, "published", a)
    log.debug(format("scheduler: action %s (tick %d) published to %s", a.name, tick, a.topic))
  else
    count(s, "failed", a)
    log.error(format("scheduler: action %s (tick %d): publishing to %s failed: %s", a.name, tick, a.topic,
      tostring(err)))
  end
end

-- Fire one tick of action a (see the module comment).
local function fire(s, a, tick)
  local fired_at = time()
  if a.dispatch == "bus" then return publish_tick(s, a, tick, fired_at) end
  local token
  if a.exclusive then
    local store, serr = schedule.store(s.container)
    local got, err
    if store then got, err = schedule.claim(store, a, tick) else err = serr end
    if got == false and err == "busy" then
      count(s, "skipped", a)
      log.warn(format("scheduler: action %s (tick %d) skipped: its previous run is still running in a scheduler "
        .. "(allow_overlap = false)", a.name, tick))
      return
    end
    if got == false then
      count(s, "not_ours", a)
      log.debug(format("scheduler: action %s (tick %d) claimed by another scheduler", a.name, tick))
      return
    end
    if not got then
      count(s, "failed", a)
      log.error(format("scheduler: action %s (tick %d) not run: the store cannot claim it: %s", a.name, tick,
        tostring(err)))
      return
    end
    token = got
  end
  if a.running > 0 and not a.allow_overlap then
    count(s, "skipped", a)
    log.warn(format("scheduler: action %s (tick %d) skipped: its previous run is still running (allow_overlap = "
      .. "false)", a.name, tick))
    finish(s, a, tick, token, "skipped")
    return
  end
  a.running = a.running + 1
  local t = sched.spawn(run_task, s, a, { action = a.name, tick = tick, fired_at = fired_at, token = token })
  s.runs[t] = true
end

-- misfire = "run_once": the latest tick missed since the store's last one
-- (nil when none was).
local function missed(s, a, now)
  -- (a store that fails raises here: the caller logs it, rather than taking
  -- the failure for "never claimed" and silently not running the tick)
  local store, serr = schedule.store(s.container)
  if not store then error(serr, 0) end
  local last, err = store:last(a.name)
  if last == nil and err ~= nil then error(err, 0) end
  if not last then return nil end
  return M.latest_tick(a, last, now)
end

--- The latest fire time of action a in (last, now], or nil. The walk
--- starts from the first window (now - d, now] (d doubling) that holds a
--- tick: walking from `last` stopped after 100000 ticks, so after a long
--- downtime an every-second action ran a tick a day old, not the latest.
function M.latest_tick(a, last, now)
  local t = a.cron:next(last, a.zone)
  if not t or t > now then return nil end
  local d = 1
  while now - d > t do
    local n = a.cron:next(now - d, a.zone)
    if n and n <= now then
      t = n
      break
    end
    d = d * 2
  end
  for _ = 1, 100000 do
    local n = a.cron:next(t, a.zone)
    if not n or n > now then break end
    t = n
  end
  return t
end

local function timer(s, a)
  local now = time()
  if a.misfire == "run_once" then
    local ok, t = pcall(missed, s, a, now)
    if not ok then
      log.warn("scheduler: action ", a.name, ": reading its last tick failed: ", describe(t))
    elseif t then
      log.info(format("scheduler: action %s missed tick %d while no scheduler ran: running it once now", a.name, t))
      fire(s, a, t)
    end
  end
  local tick = a.cron:next(now, a.zone)
  while not s.stopping do
    -- (the loop's timers have millisecond resolution: one may wake a
    -- little early, and a tick fires at or after its time)
    local wait = tick - time()
    while wait > 0 do
      -- stop() cancels a sleeping timer only: one that is claiming or
      -- starting a tick finishes that first
      a.sleeping = true
      local ok = pcall(sched.sleep, wait > 0.001 and wait or 0.001)
      a.sleeping = false
      if not ok then return end
      wait = tick - time()
    end
    if s.stopping then break end
    local late = time() - tick
    if late > M.LATE then
      local skipped, from = 0, tick
      now = time()
      while tick <= now do
        skipped = skipped + 1
        tick = a.cron:next(tick, a.zone)
      end
      count(s, "missed", a, skipped)
      log.warn(format("scheduler: action %s: %d tick(s) from %d missed (the process was stalled %.1f s)", a.name,
        skipped, from, late))
    else
      if msched.on then msched.late(a.name, late) end
      local ok, err = pcall(fire, s, a, tick)
      if not ok then log.error("scheduler: firing action ", a.name, " failed: ", describe(err)) end
      tick = a.cron:next(tick, a.zone)
    end
  end
end

local function timer_task(s, a)
  local ok, err = pcall(timer, s, a)
  if not ok and err ~= CANCELLED then log.error("scheduler: the timer of action ", a.name, " stopped: ", describe(err)) end
end

M.split = worker.split

local ACTIONS = { option = "--actions", noun = "scheduled action", plural = "actions" }

--- The actions that names and groups select: the list | nil, message,
--- "invalid" (a name or group no action has).
function M.select(actions, names, groups)
  return worker.select(actions, names, groups, ACTIONS)
end

--- Start the timers: scheduler | nil, message, code. opts: actions, groups
--- (lists of names).
function M.start(rt, opts)
  opts = opts or {}
  local selected, serr, scode = M.select(schedule.actions(rt), opts.actions, opts.groups)
  if not selected then return nil, serr, scode end
  if #selected == 0 then return nil, "the app has no scheduled action to run (ScheduledAction)", "invalid" end
  local needs_store = false
  for _, a in ipairs(selected) do
    if (a.dispatch == "inline" and a.exclusive) or a.misfire == "run_once" then needs_store = true end
  end
  if needs_store then
    local store, err, code = schedule.store(rt.container, rt.app)
    if not store then return nil, err, code end
  end
  local instances = {}
  for _, c in ipairs(rt.controllers) do instances[c.cls] = c.instance end
  local s = setmetatable({
    container = rt.container, env = { container = rt.container, chain = rt.interceptors, instances = instances },
    timers = {}, actions = selected, runs = setmetatable({}, { __mode = "k" }), stopping = false,
    counts = { ok = 0, failed = 0, timeout = 0, skipped = 0, not_ours = 0, published = 0, missed = 0 },
  }, Scheduler)
  for i, a in ipairs(selected) do
    a.running = 0
    s.timers[i] = sched.spawn(timer_task, s, a)
    log.info(format("scheduler: %s: %s%s, zone %s", require("jararaca.schedule.action").where(a):match(
      "scheduled action .*$"), a.exclusive and "exclusive" or "not exclusive",
      a.dispatch == "bus" and (", dispatched to " .. a.topic) or "", a.zone_name))
  end
  return s
end

--- Stop: no more firing; running actions get `grace` seconds, then are
--- cancelled (their outcome "failed"). Returns the counts.
function Scheduler:stop(grace)
  self.stopping = true
  for i, t in ipairs(self.timers) do
    if self.actions[i].sleeping then t:cancel() end
  end
  for _, t in ipairs(self.timers) do t:wait(30) end
  worker.drain(self.runs, grace or 30)
  return self.counts
end

return M
