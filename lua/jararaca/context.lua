-- jararaca.context: the per-transaction context (the ContextVar of the
-- original), bound to coroutines.
--
-- Every request, message or scheduled run executes in its own coroutine (a
-- "task"). Its context table is bound to that coroutine; coroutines created
-- inside it (jararaca.spawn, or the user's own coroutine.create/wrap) inherit
-- the same table, so use_*() hooks work at any depth.
--
-- A context table has at least:
--   kind       "startup" | "shutdown" | "http" | "websocket" | "message" | "schedule" | "test"
--   container  the DI container of the running process
--   scope      cache for transaction-scoped providers (created on first use by di.lua)
-- and, for HTTP, request / controller / member.
local M = {}

local running = coroutine.running
local setmetatable = setmetatable

-- Weak keys: a finished coroutine and its binding are collected together.
local bound = setmetatable({}, { __mode = "k" })
-- Contexts of code running outside any coroutine (the main chunk).
local root

--- The context of the running coroutine, or nil outside a transaction.
function M.current()
  local co = running()
  if co == nil then return root end
  return bound[co] or root
end

--- Bind ctx to coroutine co (default: the running one).
function M.bind(ctx, co)
  co = co or running()
  if co == nil then root = ctx else bound[co] = ctx end
  return ctx
end

--- Make coroutine child inherit the context of the running coroutine.
function M.inherit(child)
  local ctx = M.current()
  if ctx ~= nil then bound[child] = ctx end
end

--- The context, or raise "NAME() called outside a transaction" naming the
--- current kind when one of the listed kinds is required.
-- allowed: optional set { http = true, message = true, ... }
function M.require(hook, allowed)
  local ctx = M.current()
  if ctx == nil then
    error(hook .. "() called outside a transaction (no context)", 3)
  end
  if allowed and not allowed[ctx.kind] then
    local names = {}
    for k in pairs(allowed) do names[#names + 1] = k end
    table.sort(names)
    error(("%s() is not available in a %s context (allowed: %s)"):format(
      hook, tostring(ctx.kind), table.concat(names, ", ")), 3)
  end
  return ctx
end

--- New context table of the given kind, inheriting the container.
function M.new(kind, container, fields)
  local ctx = fields or {}
  ctx.kind = kind
  ctx.container = container
  ctx.scope = ctx.scope or {}
  return ctx
end

return M
