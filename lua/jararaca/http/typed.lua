-- jararaca.http.typed: what runs between dispatch and the handler.
--
-- For each route, compile() builds one function `run(route, req)` that:
--   1. runs the controller's and then the route's middlewares (in the order
--      declared), each an around-hook `function(req, next) ... return next() end`
--      that may instead return a response itself (short-circuit);
--   2. validates the declared inputs (params / query / headers / body),
--      collecting every error of every group into one 422
--      {"detail": [{"loc": ["query", "page"], "msg": ..., "type": ...}, ...]};
--   3. calls the handler with converted values in req.params, req.query,
--      req.json (the body) and req.header_params;
--   4. shapes the result with the response schema (fields outside the schema
--      are not sent; a result that does not fit is a server error: 500, logged);
--   5. builds the status, body and headers (jararaca.http.response).
-- The options are read from route.spec (jararaca.http.route_spec), checked
-- once at startup. Routes without any of them get a plain function with no
-- overhead. A WebSocket endpoint's handler is called by
-- jararaca.ws.endpoint instead (steps 3-5 differ).
local response = require "jararaca.http.response"
local middleware = require "jararaca.http.middleware"
local errors = require "jararaca.errors"
local json = require "jararaca.json"
local route_spec = require "jararaca.http.route_spec"

local M = {}

local build = response.build
local ipairs, pairs, rawget, rawset, error, tostring =
  ipairs, pairs, rawget, rawset, error, tostring
local HTTPError = errors.HTTPError
local setmetatable = setmetatable
-- FastAPI's key order in validation errors: loc, msg, type
local ERROR_MT = json.object_mt({ "loc", "msg", "type" })

local validate_fields -- jararaca.schema's, loaded by the first typed route
local function S()
  local schema = require "jararaca.schema"
  validate_fields = schema.validate_fields
  return schema
end

local function append_all(dst, src)
  for i = 1, #src do dst[#dst + 1] = src[i] end
end

local PATH = { from_string = true, loc_prefix = "path" }
local QUERY = { from_string = true, loc_prefix = "query" }
local HEADER = { from_string = true, loc_prefix = "header" }
local BODY = { loc = { "body" } }

-- Validate the inputs of req against the plan (route.spec's groups); raise
-- a 422 HTTPError with every error, or set the converted values on req.
local function validate_inputs(plan, req)
  local errs = {}
  local g = plan.params
  if g then
    local raw = req.params or {}
    local v, _, _, e = validate_fields(g.schema, raw, PATH)
    if v then
      -- converter-typed params not declared in params stay as routed
      for k, x in pairs(raw) do if v[k] == nil and not g.declared[k] then v[k] = x end end
      rawset(req, "params", v)
    else append_all(errs, e) end
  end
  g = plan.query
  if g then
    local names, lists = g.names, g.lists
    local first = req.query
    local all = lists and req.query_all or nil
    local raw = {}
    for i = 1, #names do
      local name = names[i]
      if lists and lists[name] then raw[name] = all[name] else raw[name] = first[name] end
    end
    local v, _, _, e = validate_fields(g.schema, raw, QUERY)
    if v then rawset(req, "query", v) else append_all(errs, e) end
  end
  g = plan.headers
  if g then
    local names = g.names
    local raw = {}
    for i = 1, #names do raw[names[i]] = req:header(names[i]) end
    local v, _, _, e = validate_fields(g.schema, raw, HEADER)
    if v then rawset(req, "header_params", v) else append_all(errs, e) end
  end
  local body = plan.body
  if body then
    local text = req.body
    local v, e, _
    if text == "" then
      -- absent: the default, nothing for an optional body, else "missing"
      v, _, _, e = body:validate(nil, BODY)
    else
      local decoded, derr = json.decode(text)
      if decoded == nil and derr then
        e = { { loc = { "body" }, msg = "JSON decode error: " .. derr, type = "json_invalid" } }
      else
        v, _, _, e = body:validate(decoded, BODY)
      end
    end
    if e then append_all(errs, e) else rawset(req, "json", v) end
  end
  if #errs > 0 then
    for i = 1, #errs do setmetatable(errs[i], ERROR_MT) end
    error(HTTPError(422, errs), 0)
  end
end

local function shape(plan, req, body, status, headers)
  if plan.response ~= nil and body ~= nil and not response.is_response(body) then
    local v, msg, _, e = plan.response:validate(body)
    if v == nil and e then
      error(("response of %s %s does not match its schema: %s"):format(req.method, req.path, msg), 0)
    end
    body = v
  end
  return build(req, plan.status, body, status, headers)
end

--- Compile the per-route function. The route's spec is route.spec
--- (route_spec.routes sets it); a route without one is normalized here, and
--- a bad option raises its message (a startup error).
function M.compile(route)
  local spec = route.spec
  if spec == nil then
    local err
    spec, err = route_spec.normalize(route)
    if not spec then error(err, 0) end
  end
  local opts = route.opts or {}
  local label = ("%s.%s"):format(tostring(route.controller and route.controller.__name or "?"),
    tostring(route.member))
  local plan = { status = spec.status }
  local typed = spec.typed
  if typed then
    S()
    plan.params, plan.query, plan.headers = spec.params, spec.query, spec.headers
    plan.body = spec.body and spec.body.schema
    plan.response = spec.response
  end

  -- middlewares: controller's first, then the route's, each wrapping the next
  local mws = {}
  local cmeta = route.controller and rawget(route.controller, "__controller")
  for i, m in ipairs(cmeta and cmeta.middlewares or {}) do
    mws[#mws + 1] = middleware.check(m, ("%s middlewares[%d]"):format(label, i))
  end
  for i, m in ipairs(opts.middlewares or {}) do
    mws[#mws + 1] = middleware.check(m, ("%s route middlewares[%d]"):format(label, i))
  end

  if spec.websocket then
    -- the upgrade is checked first; then middlewares, validation and the
    -- handler's socket (jararaca.ws.endpoint)
    local endpoint = require "jararaca.ws.endpoint"
    local core = endpoint.core(route, spec.validated and function(req) validate_inputs(plan, req) end or nil)
    local run = #mws == 0 and core or middleware.compose(mws, core)
    local check_upgrade = endpoint.check_upgrade
    return function(_, req)
      check_upgrade(req)
      return run(req)
    end
  end

  local fn, instance, route_status = route.fn, route.instance, spec.status
  local core
  if typed then
    core = function(req)
      if plan.params or plan.query or plan.headers or plan.body then validate_inputs(plan, req) end
      return shape(plan, req, fn(instance, req))
    end
  else
    core = function(req) return build(req, route_status, fn(instance, req)) end
  end
  if #mws == 0 then
    if not typed then
      -- the common plain route: one call between dispatch and the handler
      return function(_, req) return build(req, route_status, fn(instance, req)) end
    end
    return function(_, req) return core(req) end
  end
  -- around the handler, inside the transaction (errors propagate to the
  -- interceptors); see jararaca.http.middleware
  local run = middleware.compose(mws, core)
  return function(_, req) return run(req) end
end

return M
