--- jararaca.interceptors: the per-transaction chain and process lifecycles.
--
-- An interceptor is a table with any of these methods:
--   enter(self, ctx)                 before the handler of every transaction
--   exit(self, ctx, err) -> bool     after it, in reverse order; err is nil on
--                                    success; returning true suppresses err
--   startup(self, app, container)    once per process, in list order
--   shutdown(self, app, container)   once per process, in reverse order
--
-- Entries of `Microservice.interceptors` may be
--   * an instance: a table with at least one of the four methods, used as-is;
--   * a class table, recognised by its OWN `inject` field (write `inject = {}`
--     for a class without dependencies): built once by the container
--     (`container:get_controller(cls)`, or `container:get(cls)` when the class
--     is also a registered provider);
--   * a ProviderSpec: added to the container and resolved through it;
--   * a factory `function(container) -> instance`.
-- Entries are resolved in list order interleaved with startup (resolve #1,
-- startup #1, resolve #2, ...), so #2 may depend on what #1's startup
-- registered with `container:register`.
--
--     local lc = interceptors.start(app, container, app.interceptors)  -- raises on failure
--     ok, ... = interceptors.run(lc.list, ctx, handler, args...)       -- per transaction
--     ok, msg, code, errs = lc:stop()               -- true | nil, "shutdown failed: ...", "error", {msg...}
--
-- `run` never raises: it returns `true, results...` or `false, err`, where
-- err is the value raised (strings, HTTPError tables... kept as-is). Because
-- exits test `err`, a failure raised with the value nil or false reaches
-- them (and the caller) as a string "error raised with a nil value"/"... false value".
-- Everything runs in Lua frames under pcall, so the handler, enter and exit
-- may yield (LuaJIT's pcall is resumable). Once the outcome is known, the
-- actions staged in ctx (jararaca.staged) run (success) or are dropped.
-- @module jararaca.interceptors
local M = {}

local di = require("jararaca.di")
local settle = require("jararaca.staged").settle

local type, pcall, xpcall, error, tostring, setmetatable, rawget =
  type, pcall, xpcall, error, tostring, setmetatable, rawget
local format, concat = string.format, table.concat
local is_spec, is_token = di.is_provider_spec, di.is_token

local METHODS = { "enter", "exit", "startup", "shutdown" }

-- nil when `t` has at least one interceptor method and all present are
-- callable; else a reason.
local function not_an_interceptor(t)
  if type(t) ~= "table" then return "is a " .. type(t) end
  local found = false
  for i = 1, #METHODS do
    local m = t[METHODS[i]]
    if m ~= nil then
      if type(m) ~= "function" then
        return METHODS[i] .. " is a " .. type(m) .. ", expected a function"
      end
      found = true
    end
  end
  if not found then return "has none of enter, exit, startup, shutdown" end
  return nil
end

local function label(i, v)
  local name = type(v) == "table" and v.__name or nil
  if type(name) == "string" then return format("interceptor #%d (%s)", i, name) end
  return format("interceptor #%d", i)
end

-- Text of an error value; never raises (a __tostring may raise or return
-- a non-string).
local function errtext(e)
  if type(e) == "string" then return e end
  local ok, s = pcall(tostring, e)
  if ok and type(s) == "string" then return s end
  return "(a " .. type(e) .. " error value that cannot be shown)"
end

-- Turn one entry into an instance (may raise).
local function resolve_entry(entry, container)
  local t = type(entry)
  local inst
  if t == "function" then
    inst = entry(container)
    if type(inst) ~= "table" then
      error("the factory returned a " .. type(inst) .. ", expected an interceptor table", 0)
    end
  elseif is_spec(entry) then
    if entry.scope ~= "singleton" then
      error("an interceptor ProviderSpec must be singleton-scoped", 0)
    end
    if not container:has(entry.provide) then container:add(entry) end
    inst = container:get(entry.provide)
  elseif t == "table" and not is_token(entry) then
    if rawget(entry, "inject") ~= nil then -- a class
      inst = container:get_controller(entry)
    else
      inst = entry
    end
  else
    error("is a " .. (is_token(entry) and "Token" or t) ..
      ", expected an interceptor table, class, ProviderSpec or factory function", 0)
  end
  local why = not_an_interceptor(inst)
  if why then error(why, 0) end
  return inst
end

local Lifecycle = {}
Lifecycle.__index = Lifecycle
Lifecycle.__name = "Lifecycle"

--- Resolve the interceptors and run their startups, in list order.
-- On failure the already started ones are shut down in reverse order and
-- `error(msg, 0)` is raised naming the interceptor index.
-- @param app the microservice (passed to startup/shutdown)
-- @param container the DI container
-- @tparam table list the `interceptors` entries
-- @treturn table lc with `lc.list` (resolved instances, for `run`) and `lc:stop()`
function M.start(app, container, list)
  if type(list) ~= "table" then
    error("interceptors.start(app, container, list): list must be a table, got " .. type(list), 2)
  end
  if type(container) ~= "table" then
    error("interceptors.start(app, container, list): container must be a table, got " .. type(container), 2)
  end
  local lc = setmetatable({ list = {}, app = app, container = container, stopped = false }, Lifecycle)
  local resolved = lc.list
  for i = 1, #list do
    local entry = list[i]
    local ok, inst = pcall(resolve_entry, entry, container)
    local msg
    if not ok then
      msg = label(i, entry) .. " could not be resolved: " .. errtext(inst)
    else
      resolved[i] = inst
      local startup = inst.startup
      if startup ~= nil then
        local sok, err = pcall(startup, inst, app, container)
        if not sok then
          resolved[i] = nil
          msg = label(i, inst) .. " startup failed: " .. errtext(err)
        end
      end
    end
    if msg then
      local _, _, _, errs = lc:stop()
      if errs then msg = msg .. "; while rolling back: " .. concat(errs, "; ") end
      error(msg, 0)
    end
  end
  return lc
end

--- Shut the started interceptors down in reverse order. Every shutdown is
-- called even when an earlier one fails. Idempotent.
-- @return true, or nil, message, "error", and the list of error strings
function Lifecycle:stop()
  if self.stopped then return true end
  self.stopped = true
  local list, errs = self.list, nil
  for i = #list, 1, -1 do
    local inst = list[i]
    local shutdown = inst.shutdown
    if shutdown ~= nil then
      local ok, err = pcall(shutdown, inst, self.app, self.container)
      if not ok then
        errs = errs or {}
        errs[#errs + 1] = label(i, inst) .. " shutdown failed: " .. errtext(err)
      end
    end
  end
  if errs then return nil, "shutdown failed: " .. concat(errs, "; "), "error", errs end
  return true
end

---------------------------------------------------------------------------
-- The per-transaction chain. No closures, no tables on any path: results
-- travel as varargs through finish().
---------------------------------------------------------------------------

local function normalise(e)
  if e == nil then return "error raised with a nil value" end
  if e == false then return "error raised with a false value" end
  return e
end

-- Run exits entered..1 with the outcome of fn (ok, ...).
local function finish(list, ctx, handler, entered, ok, ...)
  local failed = not ok
  local erred = failed -- an error happened, even if an exit suppresses it later
  local err = nil
  if failed then err = normalise((...)) end
  for i = entered, 1, -1 do
    local it = list[i]
    local exit = it.exit
    if exit ~= nil then
      local eok, r
      if handler then
        eok, r = xpcall(exit, handler, it, ctx, err)
      else
        eok, r = pcall(exit, it, ctx, err)
      end
      if not eok then
        failed, erred, err = true, true, normalise(r) -- replaced
      elseif r == true and failed then
        failed, err = false, nil              -- suppressed
      end
    end
  end
  -- The outcome is known: the transaction's staged actions (jararaca.staged)
  -- run after a success, are dropped after a failure, also a suppressed one
  -- (a session interceptor inside the suppressing one has rolled back).
  if failed then
    settle(ctx, false)
    return false, err
  end
  settle(ctx, not erred)
  if ok then return true, ... end
  return true -- fn failed and the error was suppressed: no results
end

-- No interceptors: settle the staged actions on fn's outcome (finish does
-- it when there are).
local function settled(ctx, ok, ...)
  settle(ctx, ok)
  return ok, ...
end

local function chain(list, ctx, handler, fn, ...)
  local n = #list
  if n == 0 then
    if handler then return settled(ctx, xpcall(fn, handler, ...)) end
    return settled(ctx, pcall(fn, ...))
  end
  for i = 1, n do
    local it = list[i]
    local enter = it.enter
    if enter ~= nil then
      local ok, e
      if handler then
        ok, e = xpcall(enter, handler, it, ctx)
      else
        ok, e = pcall(enter, it, ctx)
      end
      if not ok then
        return finish(list, ctx, handler, i - 1, false, e)
      end
    end
  end
  if handler then
    return finish(list, ctx, handler, n, xpcall(fn, handler, ...))
  end
  return finish(list, ctx, handler, n, pcall(fn, ...))
end

--- Run fn(...) inside the interceptor chain of one transaction.
-- enter in order; fn; exit in reverse order for every entered interceptor.
-- An exit returning true suppresses the current error (later exits get nil);
-- an exit that raises replaces it. If an enter raises, the already entered
-- ones exit with that error and fn is not called.
-- @tparam table list resolved interceptors (`lc.list`)
-- @param ctx the transaction context passed to enter/exit
-- @tparam function fn the handler
-- @return `true, results...` or `false, err` (never raises)
function M.run(list, ctx, fn, ...)
  return chain(list, ctx, nil, fn, ...)
end

--- Like run, but calls fn, enter and exit under `xpcall(f, handler, ...)`,
-- so `handler` sees errors where they happen. The value handler returns is
-- the error exits get and xrun returns: keep it as raised (the HTTP
-- dispatcher's handler records the traceback aside, for the log).
function M.xrun(list, ctx, handler, fn, ...)
  return chain(list, ctx, handler, fn, ...)
end

return M
