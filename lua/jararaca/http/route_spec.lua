--- jararaca.http.route_spec: one description of each route, built and
-- validated once from its options, and read by dispatch and validation
-- (http/typed.lua), OpenAPI (openapi.lua) and `gen-tsi` (tsgen.lua), so the
-- three accept the same options and mean the same thing by them.
--
--   local route_spec = require "jararaca.http.route_spec"
--   local routes, router = route_spec.routes(app.controllers)
--     --> each a collected route (controller.collect) with .spec and .id,
--         in a router (core/router.c) that holds them all
--     --> or nil, message, "invalid"
--   local spec, err, code = route_spec.normalize(route)   -- one route
--
-- A message names where the route was declared, its controller, member,
-- method and path, and the option at fault:
--   app.lua:12: route TasksController.list (GET /tasks): query.page: expected a schema, got 42
--
-- The spec (docs/http.md lists the options):
--   method, path, member, controller_name, opts (the options as given)
--   path_params   { {name, converter, schema}, ... } in template order;
--                 schema is params[name] or nil (the converter types it)
--   params, query, headers
--                 nil, or a group { schema = <anonymous object schema>,
--                 fields = its field entries (docs/schema-model.md),
--                 names = { name, ... }, declared = { [name] = true },
--                 lists = { [name] = true } (query fields that take every value) }
--                 Given as a field map { name = schema } (fields sorted by
--                 name) or an object schema (its fields, in order); header
--                 names are lower-cased.
--   body          nil or { schema, required } (a field map becomes an object)
--   response      nil or a schema (a field map becomes an object)
--   status        the `status` option or nil (the handler's result decides)
--   success       { status, schema, description, content_type }: the
--                 documented success answer (status defaults to 200; schema
--                 is `response`, else responses[status]'s schema)
--   responses     the other documented answers, sorted by status (then the
--                 ranges "1XX".."5XX", then "default"):
--                 { {status, description, schema, content_type}, ... }
--   typed         any of params, query, headers, body, response given
--   validated     the route validates inputs (a 422 is possible)
--   summary, description, operation_id, deprecated, include_in_schema, name
--   tags          the route's tags, else the controller's (a list, maybe empty)
--   middlewares   the route's own list (checked; typed.lua runs them)
--   persistence   the option as given (checked by jararaca.persistence.session)
--   websocket     WebSocket endpoints only: the limits of their connections
--                 { max_message_size, max_send_queue (bytes), ping_interval_ms,
--                 idle_timeout_ms } from the options max_message_size,
--                 max_send_queue, ping_interval, idle_timeout (seconds); nil
--                 fields keep core/ws.h's defaults. include_in_schema is false.
-- Options with other names are kept in opts, untouched (interceptors may
-- read them from ctx.route.opts).
-- @module jararaca.http.route_spec
local controller = require "jararaca.http.controller"
local router_core = require "jararaca.core.router"

local M = {}

local type, pairs, ipairs, error, tostring, setmetatable, getmetatable, rawget, pcall, require =
  type, pairs, ipairs, error, tostring, setmetatable, getmetatable, rawget, pcall, require
local format, sort, lower = string.format, table.sort, string.lower

local EMPTY = {}

local schema_mod -- jararaca.schema, loaded by the first route that declares a schema
local function S()
  if not schema_mod then schema_mod = require "jararaca.schema" end
  return schema_mod
end

local function is_schema(v)
  return type(v) == "table" and S().is_schema(v)
end

---------------------------------------------------------------------------
-- Failures: raised inside build() with the option's name, caught by
-- normalize(), which adds the route.
---------------------------------------------------------------------------

local Invalid = {}

local function fail(fmt, ...)
  error(setmetatable({ msg = format(fmt, ...) }, Invalid), 0)
end

-- A value as a message shows it: 42, "x", a string schema, a table, a function.
local function show(v)
  local t = type(v)
  if t == "string" then return format("%q", v) end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  if t == "table" and is_schema(v) then
    local k = tostring(v.kind)
    return (k:find("^[aeio]") and "an " or "a ") .. k .. " schema" -- "a uuid"
  end
  return (t:find("^[aeio]") and "an " or "a ") .. t
end

--- The text that starts every message about a route:
--- "app.lua:12: route TasksController.list (GET /tasks)". The place is where
--- the route was declared, else where its controller was; when the two are
--- in different files both are named.
function M.where(route)
  local cls = route.controller
  local meta = type(cls) == "table" and rawget(cls, "__controller") or nil
  local cat = meta and meta.defined_at
  local at = route.defined_at or cat
  local name = type(cls) == "table" and rawget(cls, "__name") or nil
  local text = format("route %s.%s (%s %s)", tostring(name or "?"), tostring(route.member),
    tostring(route.method), tostring(route.path))
  if at then text = at .. ": " .. text end
  -- an inherited route: its file is not the controller's
  if cat and cat:match("^(.*):") ~= at:match("^(.*):") then
    text = text .. " of the controller declared at " .. cat
  end
  return text
end

--- A message about a route: where(route) .. ": " .. text.
function M.message(route, text)
  return M.where(route) .. ": " .. tostring(text)
end

---------------------------------------------------------------------------
-- Small checks
---------------------------------------------------------------------------

local function is_status(v)
  return type(v) == "number" and v % 1 == 0 and v >= 100 and v <= 599
end

local NO_CONTENT = { [204] = true, [304] = true }

local function check_string(opts, key, nonempty)
  local v = opts[key]
  if v ~= nil and (type(v) ~= "string" or (nonempty and v == "")) then
    fail("%s: expected a %sstring, got %s", key, nonempty and "non-empty " or "", show(v))
  end
  return v
end

local function check_boolean(opts, key, field)
  local v = opts[key]
  if v ~= nil and type(v) ~= "boolean" then
    fail("%s: expected true or false, got %s", field or key, show(v))
  end
  return v
end

-- A plain list (keys 1..n): its length, or fails.
local function check_list(v, field, what)
  if type(v) ~= "table" or is_schema(v) then fail("%s: expected a list of %s, got %s", field, what, show(v)) end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      fail("%s: expected a list of %s, got the key %s", field, what, show(k))
    end
  end
  return n
end

-- A list (or nil) whose every item passes ok(item); expected says what an
-- item must be.
local function check_items(v, field, what, ok, expected)
  if v == nil then return nil end
  for i = 1, check_list(v, field, what) do
    if not ok(v[i]) then fail("%s[%d]: expected %s, got %s", field, i, expected, show(v[i])) end
  end
  return v
end

local function is_string(x) return type(x) == "string" end

local function is_middleware(m)
  return type(m) == "function" or (type(m) == "table" and type(m.around) == "function")
end

local function check_tags(v, field)
  return check_items(v, field, "strings", is_string, "a string")
end

local function check_middlewares(v, field)
  return check_items(v, field, "middlewares", is_middleware,
    "a function(req, next) or a table with around(self, req, next)")
end

-- persistence's values belong to jararaca.persistence.session (loaded only
-- when a route or controller sets the option).
local function check_persistence(v, field)
  if v == nil then return nil end
  local ok, err = require("jararaca.persistence.session").check_setting(v)
  if not ok then fail("%s: %s", field, err) end
  return v
end

---------------------------------------------------------------------------
-- Schemas of parameters
---------------------------------------------------------------------------

-- A ref is followed to its named schema when that is known; an unknown
-- one stays a ref (the generators name it; dispatch resolves it lazily).
local function resolve(sc)
  if sc.kind == "ref" then
    local target = S().lookup(sc.name, sc)
    if target then return target end
  end
  return sc
end

-- Every s.ref(name) reachable from sc must name a registered schema: checked
-- here so that the server (even without its OpenAPI document) and the
-- generators refuse a typo alike, at startup. where: the option's path
-- ("body.items[]"); seen: the schemas already walked for this route.
local function check_refs(sc, where, seen)
  if type(sc) ~= "table" or seen[sc] then return end
  seen[sc] = true
  local k = sc.kind
  if k == "ref" then
    local target = S().lookup(sc.name, sc)
    if not target then
      fail("%s: s.ref(%q) names no schema (declare it with s.object(%q, ...) or s.enum(%q, ...))",
        where, sc.name, sc.name, sc.name)
    end
    check_refs(target, where, seen)
  elseif k == "object" then
    for _, f in ipairs(sc.fields or EMPTY) do check_refs(f.schema, where .. "." .. tostring(f.name), seen) end
  elseif k == "array" then
    check_refs(sc.items, where .. "[]", seen)
  elseif k == "map" then
    check_refs(sc.values, where .. "{}", seen)
  elseif k == "nullable" then
    check_refs(sc.of, where, seen)
  elseif k == "one_of" then
    for i, v in ipairs(sc.variants or EMPTY) do check_refs(v, where .. "|" .. i, seen) end
  end
end

-- Kinds a single text value (a header, a query value) converts to.
local SCALAR = {
  string = true, integer = true, number = true, boolean = true, uuid = true, date = true,
  datetime = true, enum = true, literal = true, any = true, ref = true,
}

local function scalar(sc)
  sc = resolve(sc)
  local k = sc.kind
  if SCALAR[k] then return true end
  if k == "nullable" then return scalar(sc.of) end
  if k == "one_of" then
    for _, v in ipairs(sc.variants or {}) do if not scalar(v) then return false end end
    return true
  end
  return false
end

local function scalar_or_list(sc)
  local base = resolve(sc)
  if base.kind == "nullable" then base = resolve(base.of) end
  if base.kind == "array" then return scalar(base.items) end
  return scalar(sc)
end

local SCALAR_TEXT = "a string, integer, number, boolean, uuid, date, datetime, enum, literal or any schema"
  .. " (or a nullable or one_of of those)"

-- What each path converter hands over, and the kinds that accept it.
local PATH_KINDS = {
  str = { string = true, integer = true, number = true, boolean = true, uuid = true, date = true,
    datetime = true, enum = true, literal = true },
  int = { integer = true, number = true, literal = true },
  uuid = { uuid = true, string = true },
}
PATH_KINDS.path = PATH_KINDS.str
local PATH_TEXT = {
  str = "a string, integer, number, boolean, uuid, date, datetime, enum or literal schema",
  int = "an integer, number or literal schema (the {%s:int} converter gives a number)",
  uuid = "a uuid or string schema (the {%s:uuid} converter gives a UUID's text)",
}
PATH_TEXT.path = PATH_TEXT.str

local HEADER_NAME = "^[%w!#$%%&'*+%-%.^_`|~]+$"

-- A field map { name = schema } or an object schema -> the list form
-- { {name, schema}, ... } (map: sorted by name; object: field order).
local function field_list(v, field)
  local list = {}
  if is_schema(v) then
    if v.kind ~= "object" then
      fail("%s: expected a table { name = schema } or an object schema, got %s", field, show(v))
    end
    for i, f in ipairs(v.fields) do list[i] = { f.name, f.schema } end
    return list
  end
  if type(v) ~= "table" then
    fail("%s: expected a table { name = schema } or an object schema, got %s", field, show(v))
  end
  local names = {}
  for k, x in pairs(v) do
    if type(k) ~= "string" or k == "" then
      fail("%s: expected a table { name = schema } or an object schema, got the key %s", field, show(k))
    end
    if not is_schema(x) then fail("%s.%s: expected a schema, got %s", field, k, show(x)) end
    names[#names + 1] = k
  end
  sort(names)
  for i, k in ipairs(names) do list[i] = { k, v[k] } end
  return list
end

-- params / query / headers -> a group (see the module comment).
local function group(v, field)
  if v == nil then return nil end
  local list = field_list(v, field)
  local seen = {}
  for _, e in ipairs(list) do
    local name, sc = e[1], e[2]
    if field == "headers" then
      if not name:find(HEADER_NAME) then fail("headers.%s: not a valid header name", name) end
      name = lower(name)
      e[1] = name
      if seen[name] then fail("headers.%s: declared twice (header names are case-insensitive)", name) end
      seen[name] = true
      if not scalar(sc) then
        fail("headers.%s: a header is one text value: expected %s, got %s", name, SCALAR_TEXT, show(sc))
      end
    elseif field == "query" then
      if not scalar_or_list(sc) then
        fail("query.%s: a query parameter is text: expected %s, or an array of them, got %s",
          name, SCALAR_TEXT, show(sc))
      end
    end
  end
  if field == "headers" and not is_schema(v) then
    sort(list, function(x, y) return x[1] < y[1] end) -- a map's names, sorted once lower-cased
  end
  local obj = S().object(list)
  local g = { schema = obj, fields = obj.fields, names = {}, declared = {} }
  for i, f in ipairs(obj.fields) do
    g.names[i] = f.name
    g.declared[f.name] = true
    if field == "query" then
      local base = resolve(f.schema)
      if base.kind == "nullable" then base = resolve(base.of) end
      if base.kind == "array" then
        g.lists = g.lists or {}
        g.lists[f.name] = true
      end
    end
  end
  return g
end

-- body / response: a schema, or a field map (an anonymous object).
local function as_schema(v, field)
  if v == nil or is_schema(v) then return v end
  if type(v) ~= "table" then
    fail("%s: expected a schema or a table { name = schema }, got %s", field, show(v))
  end
  return S().object(field_list(v, field))
end

---------------------------------------------------------------------------
-- The path template
---------------------------------------------------------------------------

-- The template's parameters in order, after core/router.c accepted the
-- template (its rules, its message).
local function template(method, path)
  local r = router_core.new()
  local ok, err = r:add(method, path, 1)
  if not ok then fail("path: %s", err) end
  local out = {}
  for inner in path:gmatch("{([^}]*)}") do
    local name, conv = inner:match("^([^:]*):?(.*)$")
    out[#out + 1] = { name = name, converter = conv ~= "" and conv or "str" }
  end
  return out
end

--- The parameters of a path template, { {name, converter}, ... } in order
--- (converter "str" when none is given), once core/router.c accepted the
--- template; or nil, message, "invalid". The RPC client builds its URLs
--- from the same templates as the server (jararaca.rpc).
function M.template_params(method, path)
  local ok, r = pcall(template, method, path)
  if ok then return r end
  if getmetatable(r) == Invalid then return nil, r.msg, "invalid" end
  error(r, 0)
end

local function path_params(spec)
  local by_name = {}
  for _, p in ipairs(spec.path_params) do by_name[p.name] = p end
  if not spec.params then return end
  for _, f in ipairs(spec.params.fields) do
    local name, sc = f.name, f.schema
    local p = by_name[name]
    if not p then
      fail("params.%s: the path %s has no {%s} parameter", name, spec.path, name)
    end
    if sc.is_optional then
      fail("params.%s: a path parameter is always present: drop :optional() and :default()", name)
    end
    local base = resolve(sc)
    local kinds = PATH_KINDS[p.converter]
    local fits = base.kind == "ref" or kinds[base.kind]
    if fits and base.kind == "literal" and p.converter == "int" then fits = type(base.value) == "number" end
    if not fits then
      fail("params.%s: a path parameter is one path segment: expected %s, got %s", name,
        format(PATH_TEXT[p.converter], name), show(sc))
    end
    p.schema = sc
  end
end

---------------------------------------------------------------------------
-- WebSocket endpoints
---------------------------------------------------------------------------

-- The C defaults (core/ws.h), for the check that pings come before the
-- idle timeout.
local WS_PING_DEFAULT, WS_IDLE_DEFAULT = 30, 60
local WS_MAX_BYTES = 2 ^ 31 - 1
local WS_MAX_SECONDS = 86400 * 7

local function ws_bytes(opts, key)
  local v = opts[key]
  if v == nil then return nil end
  if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > WS_MAX_BYTES then
    fail("%s: expected a whole number of bytes in 1..%d, got %s", key, WS_MAX_BYTES, show(v))
  end
  return v
end

local function ws_seconds(opts, key)
  local v = opts[key]
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v < 0 or v > WS_MAX_SECONDS then
    fail("%s: expected a number of seconds in 0..%d (0: never), got %s", key, WS_MAX_SECONDS, show(v))
  end
  return v
end

-- The options of a WebSocket endpoint -> the limits of its connections
-- (jararaca.core.ws adopt's options), or fails. Options that only mean
-- something for an HTTP answer are refused, not ignored.
local function websocket(opts)
  for _, key in ipairs({ "body", "response", "status", "responses" }) do
    if opts[key] ~= nil then
      fail("%s: a WebSocket endpoint has no %s (its answer is the connection)", key,
        key == "body" and "request body" or "HTTP response to describe")
    end
  end
  local ping, idle = ws_seconds(opts, "ping_interval"), ws_seconds(opts, "idle_timeout")
  if ping == nil and idle and idle > 0 and idle <= WS_PING_DEFAULT then
    ping = idle / 2 -- a short idle_timeout alone: ping in time to keep a live client
  end
  local p, i = ping or WS_PING_DEFAULT, idle or WS_IDLE_DEFAULT
  if p > 0 and i > 0 and p >= i then
    fail("ping_interval: %s s is not shorter than idle_timeout (%s s): a client that only answers pings"
      .. " would be closed as idle", tostring(p), tostring(i))
  end
  return {
    max_message_size = ws_bytes(opts, "max_message_size"),
    max_send_queue = ws_bytes(opts, "max_send_queue"),
    ping_interval_ms = ping and ping * 1000,
    idle_timeout_ms = idle and idle * 1000,
  }
end

---------------------------------------------------------------------------
-- Responses
---------------------------------------------------------------------------

local RESPONSE_KEYS = { description = true, schema = true, content_type = true }
local RESPONSES_TEXT = "a schema, a description string or { description =, schema =, content_type = }"

local function response_entry(code, v)
  local field = type(code) == "number" and format("responses[%d]", code) or format("responses[%q]", code)
  local e = { status = code }
  if is_schema(v) then
    e.schema = v
  elseif type(v) == "string" then
    e.description = v
  elseif type(v) == "table" then
    for k in pairs(v) do
      if not RESPONSE_KEYS[k] then
        fail("%s: unknown key %s (expected %s)", field, show(k), RESPONSES_TEXT)
      end
    end
    if v.description ~= nil and type(v.description) ~= "string" then
      fail("%s.description: expected a string, got %s", field, show(v.description))
    end
    if v.schema ~= nil and not is_schema(v.schema) then
      fail("%s.schema: expected a schema, got %s", field, show(v.schema))
    end
    if v.content_type ~= nil and (type(v.content_type) ~= "string" or v.content_type == "") then
      fail("%s.content_type: expected a non-empty string, got %s", field, show(v.content_type))
    end
    if v.content_type ~= nil and v.schema == nil then
      fail("%s.content_type: give the schema of that content too", field)
    end
    e.description, e.schema, e.content_type = v.description, v.schema, v.content_type
  else
    fail("%s: expected %s, got %s", field, RESPONSES_TEXT, show(v))
  end
  if e.schema and NO_CONTENT[code] then
    fail("%s: a %s answer has no body: give a description only", field, tostring(code))
  end
  return e
end

--- The sort rank of a `responses` key (a status, a range "1XX".."5XX" or
--- "default": OpenAPI's keys): statuses, then ranges, then default; nil
--- for anything else.
local function response_rank(k)
  if is_status(k) then return k end
  if type(k) == "string" then
    local d = k:match("^([1-5])XX$")
    if d then return 1000 + d end
    if k == "default" then return 2000 end
  end
  return nil
end
M.response_rank = response_rank

local function responses(spec, v)
  local success = { status = spec.status or 200, schema = spec.response }
  local others = {}
  if v ~= nil then
    if type(v) ~= "table" or is_schema(v) then
      fail("responses: expected a table { [status] = %s }, got %s", RESPONSES_TEXT, show(v))
    end
    local codes = {}
    for code in pairs(v) do
      if not response_rank(code) then
        fail("responses: keys must be status codes (integers 100..599), \"1XX\"..\"5XX\" or \"default\", got %s",
          show(code))
      end
      codes[#codes + 1] = code
    end
    sort(codes, function(x, y) return response_rank(x) < response_rank(y) end)
    for _, code in ipairs(codes) do
      local e = response_entry(code, v[code])
      if code == success.status then
        if e.schema and success.schema and e.schema ~= success.schema then
          fail("responses[%d]: the route's success answer already has response = ...; give its schema once",
            code)
        end
        success.schema = success.schema or e.schema
        success.description, success.content_type = e.description, e.content_type
      else
        others[#others + 1] = e
      end
    end
  end
  return success, others
end

---------------------------------------------------------------------------
-- One route
---------------------------------------------------------------------------

local function build(route)
  local opts = route.opts or EMPTY
  local cls = route.controller
  local meta = type(cls) == "table" and rawget(cls, "__controller") or EMPTY
  local copts = meta.opts or EMPTY
  if type(opts) ~= "table" then fail("options: expected a table, got %s", show(opts)) end
  local spec = {
    method = route.method, path = route.path, member = route.member,
    controller_name = type(cls) == "table" and rawget(cls, "__name") or nil,
    opts = opts,
  }
  spec.path_params = template(route.method, route.path)

  if route.websocket then spec.websocket = websocket(opts) end
  local status = opts.status
  if status ~= nil and not is_status(status) then
    fail("status: expected an integer in 200..599, got %s", show(status))
  end
  spec.status = status
  spec.name = check_string(opts, "name", true)
  spec.summary = check_string(opts, "summary")
  spec.description = check_string(opts, "description")
  spec.operation_id = check_string(opts, "operation_id", true)
  spec.deprecated = check_boolean(opts, "deprecated") == true
  spec.include_in_schema = check_boolean(opts, "include_in_schema") ~= false
    and check_boolean(copts, "include_in_schema", "controller include_in_schema") ~= false
    and not route.websocket -- not an operation: OpenAPI has no WebSockets
  local tags = check_tags(opts.tags, "tags")
  if tags == nil or #tags == 0 then tags = meta.tags or {} end
  spec.tags = tags
  spec.middlewares = check_middlewares(opts.middlewares, "middlewares") or {}
  check_middlewares(meta.middlewares, "controller middlewares")
  spec.persistence = check_persistence(opts.persistence, "persistence")
  check_persistence(copts.persistence, "controller persistence")

  spec.params = group(opts.params, "params")
  spec.query = group(opts.query, "query")
  spec.headers = group(opts.headers, "headers")
  path_params(spec)
  local body = as_schema(opts.body, "body")
  if body then spec.body = { schema = body, required = not body.is_optional } end
  spec.response = as_schema(opts.response, "response")
  if spec.response and status and NO_CONTENT[status] then
    fail("response: a %d answer has no body: drop response or change status", status)
  end
  spec.success, spec.responses = responses(spec, opts.responses)
  local seen = {}
  for _, key in ipairs({ "params", "query", "headers" }) do
    local g = spec[key]
    if g then
      for _, f in ipairs(g.fields) do check_refs(f.schema, key .. "." .. f.name, seen) end
    end
  end
  if spec.body then check_refs(spec.body.schema, "body", seen) end
  if spec.response then check_refs(spec.response, "response", seen) end
  local documented = { spec.success }
  for _, e in ipairs(spec.responses) do documented[#documented + 1] = e end
  for _, e in ipairs(documented) do
    if e.schema then check_refs(e.schema, format("responses[%s]", tostring(e.status)), seen) end
  end

  spec.typed = opts.params ~= nil or opts.query ~= nil or opts.headers ~= nil or opts.body ~= nil
    or opts.response ~= nil
  local function has_fields(g) return g ~= nil and #g.fields > 0 end
  spec.validated = has_fields(spec.params) or has_fields(spec.query) or has_fields(spec.headers)
    or spec.body ~= nil
  return spec
end

--- The spec of one collected route (controller.collect), or nil, message,
--- "invalid" when an option is wrong.
function M.normalize(route)
  if type(route) ~= "table" or type(route.method) ~= "string" or type(route.path) ~= "string" then
    error("route_spec.normalize(route): expected a route from controller.collect, got " .. type(route), 2)
  end
  local ok, spec = pcall(build, route)
  if ok then return spec end
  if getmetatable(spec) == Invalid then return nil, M.message(route, spec.msg), "invalid" end
  error(spec, 0)
end

--- Every route of a list of controller classes (other values are skipped),
--- in declaration order, each with .spec and .id (its index), and a router
--- (core/router.c) holding them: routes, router. Or nil, message, "invalid"
--- for the first bad route (a bad option, template or a clash of two routes).
function M.routes(controllers)
  if type(controllers) ~= "table" then
    error("route_spec.routes(controllers): expected a list of controllers, got " .. type(controllers), 2)
  end
  local r = router_core.new()
  local out = {}
  for _, cls in ipairs(controllers) do
    if controller.is_controller(cls) then
      for _, route in ipairs(controller.collect(cls)) do
        local spec, err, code = M.normalize(route)
        if not spec then return nil, err, code end
        local id = #out + 1
        local ok, aerr = r:add(route.method, route.path, id)
        if not ok then
          -- the router names the other template: name its route too
          for _, other in ipairs(out) do
            local tail = " conflicts with " .. other.method .. " " .. other.path
            if aerr:sub(-#tail) == tail then
              aerr = format("%s (route %s.%s, declared at %s)", aerr, tostring(other.spec.controller_name),
                tostring(other.member), tostring(other.defined_at or "?"))
              break
            end
          end
          return nil, M.message(route, "path: " .. aerr), "invalid"
        end
        route.spec, route.id = spec, id
        out[id] = route
      end
    end
  end
  return out, r
end

return M
