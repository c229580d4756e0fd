-- jararaca.http.typed: what runs between dispatch and the handler.
--
-- For each route, compile() builds one function `run(route, req)` that:
--   1. runs the controller's and then the route's middlewares (in the order
--      declared), each an around-hook `function(req, next) ... return next() end`
--      that may instead return a response itself (short-circuit);
--   2. validates the declared inputs (opts.params / query / headers / body),
--      collecting every error of every group into one 422
--      {"detail": [{"loc": ["query", "page"], "msg": ..., "type": ...}, ...]};
--   3. calls the handler with converted values in req.params, req.query,
--      req.json (the body) and req.header_params;
--   4. shapes the result with opts.response (fields outside the schema are not
--      sent; a result that does not fit is a server error: 500, logged);
--   5. builds the status, body and headers (jararaca.http.response).
-- Routes without any of these options get a plain function with no overhead.
local response = require "jararaca.http.response"
local middleware = require "jararaca.http.middleware"
local errors = require "jararaca.errors"
local json = require "jararaca.json"

local M = {}

local build = response.build
local type, ipairs, pairs, rawget, rawset, error =
  type, ipairs, pairs, rawget, rawset, error
local HTTPError = errors.HTTPError
local setmetatable = setmetatable
-- FastAPI's key order in validation errors: loc, msg, type
local ERROR_MT = json.object_mt({ "loc", "msg", "type" })

local schema -- loaded on first typed route (schema.lua requires json, not us)
local function S()
  if not schema then schema = require "jararaca.schema" end
  return schema
end

-- A query field takes every value when its schema (under optional/nullable
-- wrappers) is an array.
local function wants_list(s)
  while s and (s.kind == "nullable") do s = s.of end
  return s and s.kind == "array"
end

local function append_all(dst, src)
  for i = 1, #src do dst[#dst + 1] = src[i] end
end

-- Validate the inputs of req against the plan; raise a 422 HTTPError with
-- every error, or set the converted values on req.
local function validate_inputs(plan, req)
  local errs = {}
  local s = S()
  if plan.params then
    local raw = req.params or {}
    local v, e = s.validate_fields(plan.params, raw, { from_string = true, loc_prefix = "path" })
    if v then
      -- converter-typed params not declared in opts.params stay as routed
      for k, x in pairs(raw) do if v[k] == nil and not plan.params[k] then v[k] = x end end
      rawset(req, "params", v)
    else append_all(errs, e) end
  end
  if plan.query then
    local first = req.query
    local all = plan.query_lists and req.query_all or nil
    local raw = {}
    for name in pairs(plan.query) do
      if plan.query_lists and plan.query_lists[name] then raw[name] = all[name]
      else raw[name] = first[name] end
    end
    local v, e = s.validate_fields(plan.query, raw, { from_string = true, loc_prefix = "query" })
    if v then rawset(req, "query", v) else append_all(errs, e) end
  end
  if plan.headers then
    local raw = {}
    for name in pairs(plan.headers) do raw[name] = req:header(name) end
    local v, e = s.validate_fields(plan.headers, raw, { from_string = true, loc_prefix = "header" })
    if v then rawset(req, "header_params", v) else append_all(errs, e) end
  end
  if plan.body then
    local text = req.body
    if text == "" then
      errs[#errs + 1] = { loc = { "body" }, msg = "Field required", type = "missing" }
    else
      local decoded, derr = json.decode(text)
      if decoded == nil and derr then
        errs[#errs + 1] = { loc = { "body" }, msg = "JSON decode error: " .. derr, type = "json_invalid" }
      else
        local v, e = plan.body:validate(decoded, { loc = { "body" } })
        if v ~= nil or not e then rawset(req, "json", v) else append_all(errs, e) end
      end
    end
  end
  if #errs > 0 then
    for i = 1, #errs do setmetatable(errs[i], ERROR_MT) end
    error(HTTPError(422, errs), 0)
  end
end

local function shape(plan, req, body, status, headers)
  if plan.response ~= nil and body ~= nil and not response.is_response(body) then
    local v, e = plan.response:validate(body)
    if v == nil and e then
      error(("response of %s %s does not match its schema: %s"):format(
        req.method, req.path, S().describe_errors(e)), 0)
    end
    body = v
  end
  return build(req, plan.status, body, status, headers)
end

local function has_inputs(opts)
  return opts.params ~= nil or opts.query ~= nil or opts.headers ~= nil or opts.body ~= nil
end

local function check_schema_map(where, map)
  if map == nil then return nil end
  if type(map) ~= "table" then error(where .. " must be a table of name = schema", 0) end
  for k, v in pairs(map) do
    if type(k) ~= "string" or not S().is_schema(v) then
      error(("%s.%s must be a schema (jararaca.schema)"):format(where, tostring(k)), 0)
    end
  end
  return map
end

--- Compile the per-route function. Raises (a startup error) for bad options.
function M.compile(route)
  local opts = route.opts or {}
  local label = ("%s.%s"):format(tostring(route.controller and route.controller.__name or "?"),
    tostring(route.member))
  local plan = { status = opts.status }
  local typed = has_inputs(opts) or opts.response ~= nil
  if typed then
    plan.params = check_schema_map(label .. " params", opts.params)
    plan.query = check_schema_map(label .. " query", opts.query)
    plan.headers = check_schema_map(label .. " headers", opts.headers)
    if plan.headers then
      local lower = {}
      for k, v in pairs(plan.headers) do lower[k:lower()] = v end
      plan.headers = lower
    end
    if plan.query then
      for name, fs in pairs(plan.query) do
        if wants_list(fs) then
          plan.query_lists = plan.query_lists or {}
          plan.query_lists[name] = true
        end
      end
    end
    if opts.body ~= nil and not S().is_schema(opts.body) then error(label .. " body must be a schema", 0) end
    if opts.response ~= nil and not S().is_schema(opts.response) then error(label .. " response must be a schema", 0) end
    plan.body, plan.response = opts.body, opts.response
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

  local fn, instance, route_status = route.fn, route.instance, opts.status
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
