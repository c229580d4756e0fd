--- jararaca.staged: actions that wait for their transaction's outcome.
--
--   staged.add(ctx, fn, ...)   -- ctx: a transaction context, or nil for the current one
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

local function run_one(e)
  local ok, err = xpcall(e.fn, traceback, unpack(e, 1, e.n))
  if not ok then log.error("a staged action failed: ", tostring(err)) end
end

--- Stage fn(...) in ctx (nil: the current transaction). Returns "staged",
--- "ran" (no transaction, or one that already succeeded: fn ran now) or
--- "dropped" (its transaction already failed).
function M.add(ctx, fn, ...)
  if type(fn) ~= "function" then error("staged.add(ctx, fn, ...): fn must be a function, got " .. type(fn), 2) end
  if ctx == nil then ctx = current() end
  if ctx ~= nil and type(ctx) ~= "table" then
    error("staged.add(ctx, fn, ...): ctx must be a transaction context or nil, got " .. type(ctx), 2)
  end
  local e = { fn = fn, n = select("#", ...), ... }
  if ctx == nil or IMMEDIATE[ctx.kind] then
    run_one(e)
    return "ran"
  end
  local list = rawget(ctx, "_staged")
  if list == SUCCEEDED then run_one(e); return "ran" end
  if list == FAILED then return "dropped" end
  if not list then
    list = {}
    rawset(ctx, "_staged", list)
  end
  list[#list + 1] = e
  return "staged"
end

--- The transaction of ctx is over: ok true runs its staged actions in order,
--- false drops them. Never raises.
function M.settle(ctx, ok)
  local list = rawget(ctx, "_staged")
  rawset(ctx, "_staged", ok and SUCCEEDED or FAILED)
  if not ok or not list or list == SUCCEEDED or list == FAILED then return end
  for i = 1, #list do run_one(list[i]) end
end

--- How many actions wait in ctx (for tests and diagnostics).
function M.pending(ctx)
  local list = rawget(ctx, "_staged")
  if type(list) ~= "table" or list == SUCCEEDED or list == FAILED then return 0 end
  return #list
end

return M
