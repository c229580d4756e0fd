--- jararaca.schedule.run: one run of a scheduled action, as a transaction.
--
--   local outcome, why = run.execute(env, a, r)   -- "ok" | "failed" | "timeout", the error's text
--
-- env: { container, chain (the app's interceptors), instances (class ->
-- controller instance) }; a: an action (jararaca.schedule.action); r: the
-- run table the action gets: { action, tick, fired_at, token }.
-- The run is one transaction, context kind "schedule": the interceptors'
-- enter/exit around it, j.use_session() writes (committed when the action
-- returns, rolled back when it fails), publishes staged (sent on commit,
-- dropped on failure), log lines carry the request id "<action>@<tick>".
-- A failure is logged with its traceback, then the action's
-- exception_handler(self, err, run) is called (its own errors are logged);
-- nothing raises out of here, so a failing action never stops the
-- scheduler. A run past the action's `timeout` is cancelled: "timeout".
-- @module jararaca.schedule.run
local interceptors = require "jararaca.interceptors"
local context = require "jararaca.context"
local sched = require "jararaca.sched"
local log = require "jararaca.log"
local errors = require "jararaca.errors"

local M = {}

local xpcall, tostring, format, setmetatable, rawget, rawset =
  xpcall, tostring, string.format, setmetatable, rawget, rawset
local traceback, describe, CANCELLED = debug.traceback, errors.describe, sched.CANCELLED

-- The traceback of an error, kept aside (in the context) for the log.
local function keep_traceback(e)
  local ctx = context.current()
  if ctx and e ~= CANCELLED and rawget(ctx, "_traceback") == nil then rawset(ctx, "_traceback", traceback("", 2)) end
  return e
end

local function traced(a, instance, r)
  local ok, err = xpcall(a.fn, keep_traceback, instance, r)
  if not ok then error(err, 0) end
end

local TIMEOUT = setmetatable({}, { __tostring = function() return "timeout" end })
M.TIMEOUT = TIMEOUT

local function call_action(a, instance, r)
  if not a.timeout then return traced(a, instance, r) end
  local ok, err = sched.timeout(a.timeout, traced, a, instance, r)
  if ok == nil then
    rawset(context.current(), "_timeout", err)
    error(TIMEOUT, 0)
  end
end

--- The request id of a run's log lines.
function M.request_id(a, tick)
  return format("%s@%d", a.name, tick)
end

--- Run action a once (see the module comment). Returns the outcome and,
--- for a failure, its text.
function M.execute(env, a, r)
  local instance = env.instances[a.controller]
  local ctx = context.new("schedule", env.container, {
    action = a, run = r, controller = a.controller, member = a.member, request_id = M.request_id(a, r.tick),
  })
  context.bind(ctx)
  local tracing = package.loaded["jararaca.tracing"]
  local sp = tracing and tracing.enabled() and tracing.start_schedule(ctx, a, r)
  local ok, err = interceptors.xrun(env.chain, ctx, keep_traceback, call_action, a, instance, r)
  if sp then tracing.end_root(sp, ok, err) end
  if ok then return "ok" end
  local outcome, why = "failed"
  if err == TIMEOUT then
    outcome, why = "timeout", tostring(rawget(ctx, "_timeout"))
    log.error(format("scheduler: action %s (tick %d) %s: cancelled, its writes rolled back", a.name, r.tick, why))
    err = why
  elseif err == CANCELLED then
    why = "cancelled (the scheduler stopped)"
    log.warn(format("scheduler: action %s (tick %d) still running at the end of the grace period: %s", a.name,
      r.tick, why))
  else
    why = describe(err)
    log.error(format("scheduler: action %s (tick %d) failed: %s%s", a.name, r.tick, why,
      rawget(ctx, "_traceback") or ""))
  end
  local handler = a.exception_handler
  if handler and err ~= CANCELLED then
    local hok, herr = xpcall(handler, traceback, instance, err, r)
    if not hok then
      log.error(format("scheduler: the exception_handler of action %s failed: %s", a.name, describe(herr)))
    end
  end
  return outcome, why
end

return M
