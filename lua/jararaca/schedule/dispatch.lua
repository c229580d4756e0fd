--- jararaca.schedule.dispatch: the worker's side of `dispatch = "bus"`.
--
--   dispatch.handlers(app)   -- message handlers (jararaca.bus.controller's shape), one per such action
--
-- `jararaca scheduler` publishes each tick of such an action to
-- "<app>.schedule.<action>" ({ action, tick, fired_at }); the handler here,
-- run by `jararaca worker` like any other (queue "<app>.schedule.<action>",
-- selected with --handlers schedule.<action> or the action's --groups),
-- claims the tick in the scheduler's store before running the action
-- (when it is exclusive, the default): several schedulers publishing the
-- same tick, or a redelivered message, still make one run. The delivery is the run's transaction (its session
-- commits when the action returns, its publishes go out on commit); the
-- action gets the same run table { action, tick, fired_at, token }. A
-- failed run is not retried (the tick is claimed: max_retries = 0), so its
-- message is dead-lettered with the error; the tick's outcome is "failed"
-- also when the action returned and the commit (or an interceptor's exit)
-- failed after it.
-- @module jararaca.schedule.dispatch
local schedule = require "jararaca.schedule"
local action_mod = require "jararaca.schedule.action"
local context = require "jararaca.context"
local sched = require "jararaca.sched"
local staged = require "jararaca.staged"
local log = require "jararaca.log"
local errors = require "jararaca.errors"

local M = {}

local ipairs, type, tostring, format, xpcall, error = ipairs, type, tostring, string.format, xpcall, error
local traceback, describe, CANCELLED = debug.traceback, errors.describe, sched.CANCELLED

--- Seconds the worker lets a dispatched run take (its handler's timeout)
--- when the action has no timeout of its own.
M.NO_TIMEOUT = 86400

-- The run's transaction is over (the action had returned): its outcome.
local function committed(ok, container, a, tick, token)
  if not ok then
    log.error(format("scheduler: action %s (tick %d) failed: its transaction did not commit (its commit or an "
      .. "interceptor's exit failed after the action returned)", a.name, tick))
  end
  schedule.finish(container, a, tick, token, ok and "ok" or "failed")
end

local function handle(a, self, msg)
  local p = msg:payload()
  if type(p) ~= "table" or type(p.tick) ~= "number" then
    msg:reject("not a scheduler tick ({ action, tick, fired_at })")
    return
  end
  local ctx = context.current()
  local token
  if a.exclusive then
    local store, serr = schedule.store(ctx.container)
    if not store then error("scheduler store: " .. tostring(serr), 0) end
    local cerr
    token, cerr = schedule.claim(store, a, p.tick)
    if token == false and cerr == "busy" then
      log.warn(format("scheduler: action %s (tick %d) skipped: its previous run is still running (allow_overlap = "
        .. "false)", a.name, p.tick))
      return
    end
    if token == false then
      log.debug(format("scheduler: action %s (tick %d) claimed elsewhere", a.name, p.tick))
      return
    end
    if not token then error("scheduler store: claiming the tick failed: " .. tostring(cerr), 0) end
  end
  local r = { action = a.name, tick = p.tick, fired_at = p.fired_at, token = token }
  ctx.action, ctx.run = a, r
  if a.running > 0 and not a.allow_overlap then
    log.warn(format("scheduler: action %s (tick %d) skipped: its previous run is still running (allow_overlap = "
      .. "false)", a.name, p.tick))
    return schedule.finish(ctx.container, a, p.tick, token, "skipped")
  end
  a.running = a.running + 1
  local ok, res, why
  local timed_out = false
  if a.timeout then
    ok, res, why = xpcall(sched.timeout, traceback, a.timeout, a.fn, self, r)
    -- (a flag, not the text: an action's own error may read "timeout: ...")
    if ok and res == nil then ok, res, timed_out = false, "timeout: " .. tostring(why), true end
  else
    ok, res = xpcall(a.fn, traceback, self, r)
  end
  a.running = a.running - 1
  if ok then
    -- the outcome waits for the commit, and is recorded also when the
    -- commit (or an interceptor's exit) fails: never a claim left unfinished
    staged.settled(ctx, committed, ctx.container, a, p.tick, token)
    return
  end
  local outcome = timed_out and "timeout" or "failed"
  if res ~= CANCELLED then
    log.error(format("scheduler: action %s (tick %d) failed: %s", a.name, p.tick, describe(res)))
    if a.exception_handler then
      local hok, herr = xpcall(a.exception_handler, traceback, self, res, r)
      if not hok then log.error(format("scheduler: the exception_handler of action %s failed: %s", a.name,
        describe(herr))) end
    end
  end
  schedule.finish(ctx.container, a, p.tick, token, outcome)
  error(res, 0)
end

--- The message handlers of the app's actions whose dispatch is "bus"
--- (checked: raises the actions' startup errors).
function M.handlers(app)
  local out = {}
  local prefix = require("jararaca.bus.controller").app_name(app)
  local d = require("jararaca.bus.controller").DEFAULTS
  for _, a in ipairs(action_mod.actions(app)) do
    if a.dispatch == "bus" then
      a.running = a.running or 0
      out[#out + 1] = {
        controller = a.controller, member = a.member, topic = a.topic, queue = prefix .. ".schedule." .. a.name,
        name = "schedule." .. a.name, group = a.group, timeout = (a.timeout or M.NO_TIMEOUT) + 5,
        max_retries = 0, prefetch = 1, backoff = d.backoff, defined_at = a.defined_at,
        fn = function(self, msg) return handle(a, self, msg) end,
      }
    end
  end
  return out
end

return M
