--- jararaca.staged: actions that wait for their transaction's outcome.
--
--   staged.add(ctx, fn, ...)      -- ctx: a transaction context, or nil for the current one
--   staged.settled(ctx, fn, ...)  -- fn(ok, ...) once the transaction is over, either way
--
-- fn(...) runs once the transaction (an HTTP request, a WebSocket connection,
-- later a message or a scheduled run) has succeeded: after its whole
-- interceptor chain, so after the database commit done by the session
-- interceptor's exit. When the transaction fails (the handler raised, an
-- exit raised, the commit failed) the staged actions are dropped, also when
-- an exit then suppressed the error (a session inside that interceptor has
-- rolled back: the actions would announce changes never committed). Actions run
-- in the order they were added, in the transaction's task; an action that
-- raises is logged and the next ones still run. Outside a transaction (no
-- context, or the startup/shutdown context) fn(...) runs at once.
-- `settled` is for an outcome that must be recorded whatever happens (a
-- scheduled tick's claim): fn(ok, ...) runs in the same order after a
-- success (ok true) and also after a failure (ok false), where `add`'s
-- actions are dropped.
--
-- `j.WebSocketMessage(...):send(rooms)` is staged this way; the message bus
-- will publish the same way. Runners of transactions call
-- `staged.settle(ctx, ok)` once their outcome is known (interceptors.run /
-- xrun do it for every transaction that goes through the chain).
-- @module jararaca.staged
local context = require "jararaca.context"
local log = require "jararaca.log"

local M = {}

local type, select, unpack, rawget, rawset, xpcall, traceback, error =
  type, select, unpack, rawget, rawset, xpcall, debug.traceback, error
local current = context.current

-- ctx._staged: nil or false (nothing staged; a runner that creates its
-- context with `_staged = false` sizes the table for the mark settle leaves,
-- so settling needs no rehash), a list of actions, or one of these
-- once settled (an action added later, by a task the transaction left
-- running, runs at once after a success and is dropped after a failure).
local SUCCEEDED, FAILED = {}, {}

-- Contexts that are not transactions: their actions run at once.
local IMMEDIATE = { startup = true, shutdown = true }

-- e.settled: fn gets the transaction's ok first.
local function run_one(e, ok)
  local rok, err
  if e.settled then
    rok, err = xpcall(e.fn, traceback, ok, unpack(e, 1, e.n))
  else
    rok, err = xpcall(e.fn, traceback, unpack(e, 1, e.n))
  end
  if not rok then log.error("a staged action failed: ", tostring(err)) end
end

local function stage(what, ctx, fn, settled, ...)
  if type(fn) ~= "function" then error(what .. ": fn must be a function, got " .. type(fn), 3) end
  if ctx == nil then ctx = current() end
  if ctx ~= nil and type(ctx) ~= "table" then
    error(what .. ": ctx must be a transaction context or nil, got " .. type(ctx), 3)
  end
  local e = { fn = fn, settled = settled, n = select("#", ...), ... }
  if ctx == nil or IMMEDIATE[ctx.kind] then
    run_one(e, true)
    return "ran"
  end
  local list = rawget(ctx, "_staged")
  if list == SUCCEEDED then run_one(e, true); return "ran" end
  if list == FAILED then
    if not settled then return "dropped" end
    run_one(e, false)
    return "ran"
  end
  if not list then
    list = {}
    rawset(ctx, "_staged", list)
  end
  list[#list + 1] = e
  return "staged"
end

--- Stage fn(...) in ctx (nil: the current transaction): it runs after the
--- transaction succeeded, is dropped when it failed. Returns "staged",
--- "ran" (no transaction, or one that already succeeded: fn ran now) or
--- "dropped" (its transaction already failed).
function M.add(ctx, fn, ...)
  local r = stage("staged.add(ctx, fn, ...)", ctx, fn, false, ...) -- (not a tail call: misuse names the caller)
  return r
end

--- Stage fn(ok, ...) in ctx (nil: the current transaction): it runs once
--- the transaction is over, ok telling whether it succeeded. Returns
--- "staged" or "ran" (no transaction, or one already over: fn ran now).
function M.settled(ctx, fn, ...)
  local r = stage("staged.settled(ctx, fn, ...)", ctx, fn, true, ...)
  return r
end

--- The transaction of ctx is over: ok true runs its staged actions in order,
--- false drops them (but for `settled` ones, run with ok false). Never raises.
function M.settle(ctx, ok)
  local list = rawget(ctx, "_staged")
  rawset(ctx, "_staged", ok and SUCCEEDED or FAILED)
  if not list or list == SUCCEEDED or list == FAILED then return end
  for i = 1, #list do
    local e = list[i]
    if ok or e.settled then run_one(e, ok) end
  end
end

--- How many actions wait in ctx (for tests and diagnostics).
function M.pending(ctx)
  local list = rawget(ctx, "_staged")
  if type(list) ~= "table" or list == SUCCEEDED or list == FAILED then return 0 end
  return #list
end

return M
