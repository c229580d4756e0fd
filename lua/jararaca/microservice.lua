--- jararaca.microservice: the application declaration.
--
--     return j.Microservice {
--       name         = "tasks",                   -- optional
--       providers    = { j.ProviderSpec{...}, SomeClass, ... },
--       controllers  = { TasksController, TaskWorker },
--       interceptors = { SessionInterceptor{...}, ConfigInterceptor, function(container) ... end },
--       middlewares  = { j.cors{ allow_origins = { "https://app.example" } } },  -- app-wide, HTTP
--       websocket    = { backplane = "redis://127.0.0.1:6379/0" },               -- docs/websockets.md
--       bus          = { url = "sqlite:///var/tasks.bus.db" },                   -- docs/bus.md
--       scheduler    = { store = "redis://127.0.0.1:6379/0", zone = "UTC" },     -- docs/scheduler.md
--     }
--
-- Declaring a microservice runs nothing: it only validates the shapes of its
-- fields (raising `error(msg, 2)` that names the field and index, e.g.
-- "Microservice.controllers[2] is a string, expected a controller table")
-- and returns a marked table. Each runtime (server, worker, scheduler) builds
-- its own DI container from it.
--
-- Accepted entries
--   providers[i]     a ProviderSpec or a class table (not a Token)
--   controllers[i]   a table (RestController, message-bus controller, ...); no duplicates
--   interceptors[i]  a table (instance, class table with `inject`, ProviderSpec)
--                    or a function(container) -> instance; see jararaca.interceptors
--   middlewares[i]   a function(req, next) or a table with around(self, req, next):
--                    app-wide HTTP middlewares, run before routing (see
--                    jararaca.http.middleware, docs/http.md)
-- Unknown fields are rejected (typo guard); modules that need another field
-- add its name to `microservice.fields` (name -> true).
-- @module jararaca.microservice
local M = {}

local di = require("jararaca.di")

local type, pairs, error, setmetatable, getmetatable, tostring, rawget =
  type, pairs, error, setmetatable, getmetatable, tostring, rawget
local format, floor = string.format, math.floor
local is_token, is_spec = di.is_token, di.is_provider_spec

--- Known fields of a Microservice declaration (extensible).
M.fields = {
  name = true, providers = true, controllers = true, interceptors = true, openapi = true, middlewares = true, metrics = true,
  websocket = true, bus = true, scheduler = true, tracing = true, otlp = true,
}

local Microservice_mt = { __metatable = "Microservice" }
Microservice_mt.__index = Microservice_mt
function Microservice_mt.__tostring(app)
  return "Microservice(" .. (app.name or "?") .. ")"
end

local function kind(v)
  if is_token(v) then return "a Token" end
  if is_spec(v) then return "a ProviderSpec" end
  local t = type(v)
  if t == "table" and rawget(v, "__route") == true then return "a route descriptor" end
  return "a " .. t
end

-- Copy a list field, checking it is a proper sequence (no holes, no other keys).
local function list_of(t, field)
  local v = t[field]
  if v == nil then return {} end
  if type(v) ~= "table" or is_token(v) or is_spec(v) then
    error(format("Microservice.%s must be a list, got %s", field, kind(v)), 3)
  end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or floor(k) ~= k then
      error(format("Microservice.%s must be a list, it has the key %q", field, tostring(k)), 3)
    end
    if k > n then n = k end
  end
  local out = {}
  for i = 1, n do
    if v[i] == nil then
      error(format("Microservice.%s[%d] is nil (a hole in the list: a misspelt or not-yet-defined name?)",
        field, i), 3)
    end
    out[i] = v[i]
  end
  return out
end

--- Declare an application. See the module comment.
-- @treturn table the microservice (`is_microservice(v)` is true)
function M.Microservice(t)
  if type(t) ~= "table" or is_token(t) or is_spec(t) then
    error("Microservice{...} expects a table, got " .. kind(t), 2)
  end
  for k in pairs(t) do
    if not M.fields[k] then
      error(format("Microservice: unknown field %q", tostring(k)), 2)
    end
  end
  if t.name ~= nil and (type(t.name) ~= "string" or t.name == "") then
    error("Microservice.name must be a non-empty string, got " .. kind(t.name), 2)
  end

  -- openapi = false disables /openapi.json and /docs; a table configures them.
  local oa = t.openapi
  if oa ~= nil and oa ~= false then
    if type(oa) ~= "table" then
      error("Microservice.openapi must be false or a table { title, version, description, path, docs_path }, got "
        .. kind(oa), 2)
    end
    for k, v in pairs(oa) do
      if k == "docs_path" and v == false then -- luacheck: ignore 542
        -- docs page disabled
      elseif k == "title" or k == "version" or k == "description" or k == "path" or k == "docs_path" then
        if type(v) ~= "string" then error(format("Microservice.openapi.%s must be a string", k), 2) end
        if (k == "path" or k == "docs_path") and v:sub(1, 1) ~= "/" then
          error(format("Microservice.openapi.%s must start with '/'", k), 2)
        end
      else
        error(format("Microservice.openapi: unknown field %q", tostring(k)), 2)
      end
    end
  end

  -- metrics = true | { path =, enabled = } (jararaca.metrics.settings)
  if t.metrics ~= nil then require("jararaca.metrics.settings").check(t.metrics, 2) end
  -- websocket = { backplane =, channel = } (jararaca.ws.backplane)
  if t.websocket ~= nil then require("jararaca.ws.backplane").check(t.websocket, 2) end
  -- tracing = { sample =, trust_inbound =, exporter = } (jararaca.tracing)
  if t.tracing ~= nil then
    local ok, why = require("jararaca.tracing").check(t.tracing)
    if not ok then error("Microservice.tracing: " .. why, 2) end
  end
  -- bus = { url = } (jararaca.bus.settings)
  if t.bus ~= nil then require("jararaca.bus.settings").check(t.bus, 2) end
  -- scheduler = { store =, zone = } (jararaca.schedule.settings)
  if t.scheduler ~= nil then require("jararaca.schedule.settings").check(t.scheduler, 2) end

  local providers = list_of(t, "providers")
  for i = 1, #providers do
    local p = providers[i]
    if not is_spec(p) and (type(p) ~= "table" or is_token(p) or rawget(p, "__route") == true) then
      error(format("Microservice.providers[%d] is %s, expected a ProviderSpec or a class table",
        i, kind(p)), 2)
    end
  end

  local controllers = list_of(t, "controllers")
  local seen = {}
  for i = 1, #controllers do
    local c = controllers[i]
    if type(c) ~= "table" or is_token(c) or is_spec(c) or rawget(c, "__route") == true then
      error(format("Microservice.controllers[%d] is %s, expected a controller table", i, kind(c)), 2)
    end
    if seen[c] then
      error(format("Microservice.controllers[%d] is the same controller as controllers[%d]", i, seen[c]), 2)
    end
    seen[c] = i
  end

  local interceptors = list_of(t, "interceptors")
  for i = 1, #interceptors do
    local it = interceptors[i]
    local ty = type(it)
    if (ty ~= "table" and ty ~= "function") or is_token(it) then
      error(format("Microservice.interceptors[%d] is %s, expected an interceptor table, class, ProviderSpec or factory function",
        i, kind(it)), 2)
    end
  end

  local middlewares = list_of(t, "middlewares")
  for i = 1, #middlewares do
    local m = middlewares[i]
    if type(m) ~= "function" and not (type(m) == "table" and type(m.around) == "function") then
      error(format("Microservice.middlewares[%d] is %s, expected a function(req, next) or a table with around(self, req, next)",
        i, kind(m)), 2)
    end
  end

  local app = {
    name = t.name,
    providers = providers,
    controllers = controllers,
    interceptors = interceptors,
    middlewares = middlewares,
  }
  for k, v in pairs(t) do
    if app[k] == nil then app[k] = v end -- extension fields
  end
  return setmetatable(app, Microservice_mt)
end

--- True when v was returned by Microservice{...}.
function M.is_microservice(v)
  return type(v) == "table" and getmetatable(v) == "Microservice"
end

return M
