--- jararaca.rpc: declarative HTTP clients (the original's RestClient and
-- HttpRpcClientBuilder). docs/rpc.md is the guide.
--
--   local HelloRPC = j.RestClient("/hello", {
--     ping = j.rpc.Get("/ping/{id}", { params = { id = s.integer() }, query = { "verbose" },
--                                     response = Pong, retry = { attempts = 3 } }),
--   })
--   local client = j.rpc.build(HelloRPC, { base_url = "http://127.0.0.1:8001",
--                                          middlewares = { j.rpc.bearer(token) } })
--   local pong, res = client:ping({ id = 3, verbose = true })
--     --> value, response | nil, message, code [, response]
--
-- Routes: j.rpc.Get/Post/Put/Patch/Delete/Head/Options(path, [opts]) and
-- j.rpc.Route(method, path, [opts]): descriptors { __rpc_route = true,
-- method, path, opts (checked), defined_at }. Paths use the server's
-- templates ({id}, {id:int}, {rest:path}), checked by core/router.c.
-- A client: j.RestClient(prefix, [def]) -> a class table
-- { __rest_client = { prefix, name, opts, defined_at }, <member> = route ... };
-- def mixes routes (by member name) and client defaults (headers, timeout,
-- retry, success, middlewares, response_hooks, name). Routes may also be
-- set on the class afterwards, like a controller's. j.rpc.from_controller
-- reads a client class off a server controller's routes.
-- @module jararaca.rpc
local options = require "jararaca.rpc.options"
local plan = require "jararaca.rpc.plan"
local call = require "jararaca.rpc.call"
local auth = require "jararaca.rpc.auth"
local derive_name = require("jararaca.http.controller").derive_name

local M = {}

local type, pairs, ipairs, next, error, rawget, tostring, pcall, tonumber =
  type, pairs, ipairs, next, error, rawget, tostring, pcall, tonumber
local format, upper = string.format, string.upper
local run, request = call.run, plan.request

M.bearer, M.basic, M.api_key = auth.bearer, auth.basic, auth.api_key

local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  return info and (info.short_src .. ":" .. (info.currentline or 0)) or nil
end

local function is_route(v)
  return type(v) == "table" and rawget(v, "__rpc_route") == true
end
M.is_route = is_route

local function make_route(method, path, opts, level)
  local what = format("rpc.%s(%s)", method:sub(1, 1) .. method:sub(2):lower(),
    type(path) == "string" and format("%q", path) or "")
  if type(path) ~= "string" then error(what .. ": path must be a string, got " .. type(path), level + 1) end
  if path ~= "" and path:sub(1, 1) ~= "/" then
    error(format("%s: path must start with \"/\" (or be \"\")", what), level + 1)
  end
  if path:find("[%s%?#]") then error(what .. ": path contains a space, \"?\" or \"#\"", level + 1) end
  return {
    __rpc_route = true, method = method, path = path, defined_at = where(level + 1),
    opts = options.check("route", opts, what, level + 1),
  }
end

--- rpc.Route(method, path, [opts]).
function M.Route(method, path, opts)
  if type(method) ~= "string" or not upper(method):find("^%u+$") then
    error("rpc.Route(method, path, opts): method must be an HTTP method name", 2)
  end
  return make_route(upper(method), path, opts, 2)
end

local function verb(method)
  return function(path, opts) return make_route(method, path, opts, 2) end
end
M.Get, M.Post, M.Put, M.Patch, M.Delete = verb("GET"), verb("POST"), verb("PUT"), verb("PATCH"), verb("DELETE")
M.Head, M.Options = verb("HEAD"), verb("OPTIONS")

--- j.RestClient(prefix, [def]): a client class (see the module comment).
function M.RestClient(prefix, def)
  if prefix == nil or prefix == "/" then prefix = "" end
  if type(prefix) ~= "string" then error("RestClient(prefix, def): prefix must be a string, got " .. type(prefix), 2) end
  if prefix ~= "" and (prefix:sub(1, 1) ~= "/" or prefix:sub(-1) == "/" or prefix:find("[%s%?#]")) then
    error(format("RestClient: prefix %q must start with \"/\", not end with one, and have no space, \"?\" or \"#\"",
      prefix), 2)
  end
  if def ~= nil and type(def) ~= "table" then error("RestClient(prefix, def): def must be a table", 2) end
  local cls, given = {}, {}
  for k, v in pairs(def or {}) do
    if is_route(v) then
      if type(k) ~= "string" then error("RestClient: a route's key must be its member name, got " .. tostring(k), 2) end
      cls[k] = v
    else
      given[k] = v
    end
  end
  local o = options.check("client", given, format("RestClient(%q)", prefix), 2)
  cls.__rest_client = { prefix = prefix, name = o.name or derive_name(prefix, "Client"), opts = o, defined_at = where(2) }
  return cls
end

-- A route group of route_spec (params, query, headers) as { name = schema }.
local function field_map(g)
  if not g then return nil end
  local m = {}
  for _, f in ipairs(g.fields) do m[f.name] = f.schema end
  return next(m) and m or nil
end

--- j.rpc.from_controller(Controller, [def]): a client class with one route
--- per HTTP route of a server controller (WebSocket endpoints left out):
--- same member names, templates, params, query, header parameters, body
--- and response schemas, read from the routes' specs (route_spec) as the
--- server reads them. def: client defaults and extra routes, as RestClient's.
function M.from_controller(ctl, def)
  local controller = require "jararaca.http.controller"
  local route_spec = require "jararaca.http.route_spec"
  if not controller.is_controller(ctl) then
    error("rpc.from_controller(Controller, def): expected a controller made by j.RestController, got " .. type(ctl), 2)
  end
  if def ~= nil and type(def) ~= "table" then error("rpc.from_controller(Controller, def): def must be a table", 2) end
  local all = { name = rawget(ctl, "__name"):gsub("Controller$", "") .. "Client" }
  for k, v in pairs(def or {}) do all[k] = v end
  for _, r in ipairs(controller.collect(ctl)) do
    if not r.websocket and all[r.member] == nil then
      local spec, err = route_spec.normalize(r)
      if not spec then error(err, 2) end
      local o = { params = field_map(spec.params), headers = field_map(spec.headers),
        body = spec.body and spec.body.schema, response = spec.success.schema }
      local q = field_map(spec.query)
      if q then o.query = q end
      local rt = make_route(r.method, r.path, o, 2)
      rt.defined_at = r.defined_at
      all[r.member] = rt
    end
  end
  local cls = M.RestClient("", all)
  cls.__rest_client.defined_at = rawget(ctl, "__controller").defined_at
  return cls
end

--- True for a class made by j.RestClient.
function M.is_client(v)
  return type(v) == "table" and type(rawget(v, "__rest_client")) == "table"
end

-- The process-wide HTTP client (one keep-alive pool per origin), made on
-- first use: after a pre-fork, each worker makes its own.
local shared
local function shared_transport(req)
  if not shared then shared = require("jararaca.core.http_client").new() end
  return shared:request(req)
end

local function transport_of(bo)
  local t = bo.transport
  if type(t) == "function" then return t end
  if t then return function(req) return t:request(req) end end
  if bo.http then
    local own
    return function(req)
      if not own then own = require("jararaca.core.http_client").new(bo.http) end
      return own:request(req)
    end
  end
  return shared_transport
end

--- j.rpc.build(Client, opts): the client object, one method per route:
--- client:member([args], [call_opts]) -> value, response | nil, message, code [, response].
--- opts: base_url (required), transport | http, headers, timeout, retry,
--- success, middlewares, response_hooks, tracing (false: no spans).
function M.build(cls, opts)
  if not M.is_client(cls) then
    error("rpc.build(Client, opts): Client must be a class made by j.RestClient, got " .. type(cls), 2)
  end
  local meta = cls.__rest_client
  local bo = options.check("build", opts, "rpc.build(" .. meta.name .. ")", 2)
  bo.host, bo.port = bo.base_url:match("^https?://%[?([^/%]]-)%]?:(%d+)")
  if not bo.host then bo.host = bo.base_url:match("^https?://%[?([^/:%]]+)") end
  bo.port = tonumber(bo.port) or (bo.base_url:find("^https") and 443 or 80)
  if bo.http then
    -- a wrong pool option raises here, not at the first call (in a handler);
    -- the pool itself is made on first use, after a pre-fork in each worker
    local ok, hc = pcall(require("jararaca.core.http_client").new, bo.http)
    if not ok then error(format("rpc.build(%s): http: %s", meta.name, tostring(hc)), 2) end
    hc:close()
  end
  local transport = transport_of(bo)
  local client = {}
  for member, route in pairs(cls) do
    if type(member) == "string" and is_route(route) then
      local ok, p = pcall(plan.compile, member, route, meta, bo)
      if not ok then error(p, 2) end
      client[member] = function(self, args, copts)
        if self ~= client then
          error(format("%s: call it as a method: client:%s(args)", p.label, member), 2)
        end
        local req, msg, code, errs = request(p, args, copts, 2)
        if not req then return nil, msg, code, errs end
        return run(p, transport, req)
      end
    end
  end
  return client
end

return M
