--- jararaca.schedule: an app's scheduled actions in one process.
--
--   schedule.actions(rt)        -- the app's checked actions (raises a startup error naming file and line)
--   schedule.store(container)   -- the exclusivity store: store | nil, message, code (opened at first use)
--   schedule.close(container)   -- close it (the runtime's stop)
--   schedule.holder()           -- who claims: the store's holder name for this process
--   schedule.finish(container, a, tick, token, outcome)   -- record a claimed tick's outcome (logged when it fails)
--
-- `jararaca scheduler` fires the actions (jararaca.schedule.scheduler);
-- `jararaca worker` runs those whose dispatch is "bus"
-- (jararaca.schedule.dispatch). Both claim each tick in the same store
-- (jararaca.schedule.store): one run per tick across all processes.
-- docs/scheduler.md is the user's page.
-- @module jararaca.schedule
local action = require "jararaca.schedule.action"
local settings = require "jararaca.schedule.settings"
local sys = require "jararaca.core.sys"
local log = require "jararaca.log"

local M = {}

local setmetatable, tostring, format = setmetatable, tostring, string.format

local states = setmetatable({}, { __mode = "k" })

local function state(container, app)
  local st = states[container]
  if not st then
    st = { app = app }
    states[container] = st
  end
  return st
end

--- The checked actions of a started runtime (cached per container).
function M.actions(rt)
  local st = state(rt.container, rt.app)
  if not st.actions then st.actions = action.actions(rt.app) end
  return st.actions
end

--- The store's URL for a runtime's app: url | nil, message, "invalid".
function M.store_url(container, app)
  local databases = require("jararaca.persistence.session").databases(container)
  return settings.store_url(app, databases)
end

--- The store of the running app: store | nil, message, code. Opened on
--- first use; tasks asking meanwhile wait for that one opening.
function M.store(container, app)
  local st = state(container, app)
  if st.store then return st.store end
  if st.closed then return nil, "the scheduler's store is closed", "closed" end
  if st.opening then
    local _, s, err, code = st.opening:wait()
    return s, err, code
  end
  local url, uerr, ucode = M.store_url(container, st.app)
  if not url then return nil, uerr, ucode end
  local sched = require "jararaca.sched"
  st.opening = sched.spawn(require("jararaca.schedule.store").open, url,
    require("jararaca.bus.controller").app_name(st.app))
  st.opening.observed = true
  local ok, s, err, code = st.opening:wait()
  st.opening = nil
  if not ok then return nil, tostring(s), err end
  if not s then return nil, "scheduler store " .. url .. ": " .. tostring(err), code end
  if st.closed then s:close(); return nil, "the scheduler's store is closed", "closed" end
  st.store, st.url = s, url
  return s
end

--- Close the store of a container (idempotent).
function M.close(container)
  local st = states[container]
  if not st then return end
  st.closed = true
  if st.store then st.store:close(); st.store = nil end
end

local holder, holder_pid
--- The name this process claims ticks with (jararaca.schedule.store's
--- holder(): host, pid and a random part), one per process.
function M.holder()
  local pid = sys.pid()
  if holder_pid ~= pid then
    holder, holder_pid = require("jararaca.schedule.store").holder(), pid
  end
  return holder
end

--- Seconds an unfinished run of an action without a timeout keeps its
--- later ticks skipped (allow_overlap = false) when its holder never
--- finishes it (a process killed mid-run).
M.OVERLAP_BOUND = 3600

--- Claim tick for exclusive action a: token | false, "taken" | "busy" |
--- nil, msg, code. With allow_overlap = false the store skips the tick
--- (records it "skipped") while the action's previous run is unfinished,
--- in any process: within its timeout (+ 5 s for its outcome to be
--- recorded), else OVERLAP_BOUND.
function M.claim(store, a, tick)
  local busy = nil
  if not a.allow_overlap then busy = a.timeout and (a.timeout + 5) or M.OVERLAP_BOUND end
  return store:claim(a.name, tick, M.holder(), nil, busy)
end

--- Record the outcome of a claimed tick (a few tries: a busy SQLite file);
--- a failure is logged (the claim stays, the tick is not run again).
function M.finish(container, a, tick, token, outcome)
  if not token then return end
  local store, err = M.store(container)
  local ok
  if store then
    for _ = 1, 5 do
      ok, err = store:finish(a.name, tick, token, outcome)
      if ok then return true end
    end
  end
  log.warn(format("scheduler: recording the outcome %s of action %s (tick %d) failed: %s", outcome, a.name, tick,
    tostring(err)))
end

return M
