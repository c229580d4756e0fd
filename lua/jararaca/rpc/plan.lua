--- jararaca.rpc.plan: one route of a built client, compiled once from the
-- route, its client's and the build's options, and the request of a call
-- made from the plan and the call's arguments.
--
--   local p = plan.compile(member, route, client_meta, build_opts)  -- raises error(msg, 0)
--   local req, msg, code, errors = plan.request(p, args, call_opts)
--
-- The request (what middlewares see and may change):
--   { method, base_url, path (encoded), query = { {name, text}, ... }, url (set when sent),
--     headers = { [lower-case name] = text }, body (string | nil),
--     timeout, route (the template), name ("Client.member"), args }
-- @module jararaca.rpc.plan
local route_spec = require "jararaca.http.route_spec"
local schema = require "jararaca.schema"
local json = require "jararaca.json"
local url = require "jararaca.rpc.url"
local options = require "jararaca.rpc.options"

local M = {}

local type, pairs, ipairs, error, tostring, next, format =
  type, pairs, ipairs, error, tostring, next, string.format
local concat, lower = table.concat, string.lower
local text_of, segment = url.text, url.segment
local validate_fields, describe_errors = schema.validate_fields, schema.describe_errors
local HEADER_NAME = options.HEADER_NAME

local DEFAULT_TIMEOUT = 30 -- seconds per try (the original's JARARACA_HTTP_RPC_DEFAULT_TIMEOUT)
local EMPTY = {}

-- Concatenate lists (nil lists skipped); nil when all are empty.
local function chain(...)
  local out = {}
  for i = 1, select("#", ...) do
    local l = select(i, ...)
    if l then for _, f in ipairs(l) do out[#out + 1] = f end end
  end
  return #out > 0 and out or nil
end

local function merge_headers(...)
  local out = {}
  for i = 1, select("#", ...) do
    local h = select(i, ...)
    if h then for k, v in pairs(h) do out[k] = v end end
  end
  return out
end

-- "/hello/ping/{id}" -> { "/hello/ping/", {name="id", converter="str"} }
local function split_template(template, params)
  local parts, pos, i = {}, 1, 0
  while true do
    local s, e = template:find("{[^}]*}", pos)
    if not s then break end
    if s > pos then parts[#parts + 1] = template:sub(pos, s - 1) end
    i = i + 1
    parts[#parts + 1] = params[i]
    pos = e + 1
  end
  if pos <= #template then parts[#parts + 1] = template:sub(pos) end
  return parts
end

--- Compile the plan of route `member`; raises error(msg, 0) naming where
--- the route was declared.
function M.compile(member, route, meta, bo)
  local ro = route.opts
  local label = meta.name .. "." .. member
  local function bad(fmt, ...)
    error(format("%s: rpc route %s (%s %s): ", route.defined_at or "?", label, route.method,
      meta.prefix .. route.path) .. format(fmt, ...), 0)
  end
  local template = meta.prefix .. route.path
  if template == "" then template = "/" end
  local params, err = route_spec.template_params(route.method, template)
  if not params then bad("%s", err) end
  local co = meta.opts
  local p = {
    member = member, label = label, method = route.method, template = template,
    span_name = route.method .. " " .. template,
    base_url = bo.base_url, host = bo.host, port = bo.port,
    parts = split_template(template, params),
    static_path = #params == 0 and template or nil, -- no parameter: the path as is
    param_by_name = {},
    query = ro.query,
    header_consts = merge_headers(bo.headers, co.headers, ro.headers),
    header_args = ro.header_args,
    body = ro.body, content_type = ro.content_type, response = ro.response, raw = ro.raw,
    success = ro.success or co.success or bo.success,
    timeout = ro.timeout or co.timeout or bo.timeout or DEFAULT_TIMEOUT,
    middlewares = chain(bo.middlewares, co.middlewares, ro.middlewares),
    response_hooks = chain(ro.response_hooks, co.response_hooks, bo.response_hooks),
    tracing = bo.tracing,
    allowed = { body = "body" },
  }
  if p.header_consts.accept == nil then p.header_consts.accept = "application/json" end
  -- retry: the route's (false: none), else the client's, else the build's;
  -- only for idempotent methods unless it says unsafe = true
  local retry = ro.retry
  if retry == nil then retry = co.retry end
  if retry == nil then retry = bo.retry end
  if retry and (retry.unsafe or options.IDEMPOTENT[route.method]) and retry.attempts > 1 then p.retry = retry end

  local function allow(name, what)
    if p.allowed[name] then
      bad("the argument %q is both a %s and a %s", name, p.allowed[name], what)
    end
    p.allowed[name] = what
  end
  for _, pp in ipairs(params) do
    allow(pp.name, "path parameter")
    p.param_by_name[pp.name] = pp
  end
  for name, sc in pairs(ro.params or EMPTY) do
    if not p.param_by_name[name] then bad("params.%s: the path %s has no {%s} parameter", name, template, name) end
    if sc.is_optional then bad("params.%s: a path parameter is always sent: drop :optional() and :default()", name) end
  end
  p.param_schemas = ro.params and next(ro.params) and ro.params or nil
  if p.query then for _, name in ipairs(p.query.names) do allow(name, "query parameter") end end
  for name in pairs(p.header_args or EMPTY) do allow(name, "header") end
  local names = {}
  for name in pairs(p.allowed) do names[#names + 1] = name end
  table.sort(names)
  p.allowed_text = concat(names, ", ")
  return p
end

---------------------------------------------------------------------------
-- A call's request
---------------------------------------------------------------------------

-- Scratch lists a call fills and drops (request() never yields): the
-- segments of its path, and its errors (handed to the caller, and replaced,
-- only when there are some).
local SEGS, ERRS = {}, {}

local PATH = { from_string = false, loc_prefix = "path" }
local QUERY = { from_string = false, loc_prefix = "query" }
local HEADER = { from_string = false, loc_prefix = "header" }

local function add_all(dst, src)
  for i = 1, #src do dst[#dst + 1] = src[i] end
end

local function not_text(errs, where, name)
  errs[#errs + 1] = { loc = { where, name }, type = "scalar_type",
    msg = "Input should be a string, a number or a boolean" }
end

local function path_value(pp, v, errs)
  if v == nil then
    errs[#errs + 1] = { loc = { "path", pp.name }, msg = "Field required", type = "missing" }
    return nil
  end
  local conv = pp.converter
  if conv == "int" and not (type(v) == "number" and v % 1 == 0) and not (type(v) == "string" and v:find("^%-?%d+$")) then
    errs[#errs + 1] = { loc = { "path", pp.name }, msg = "Input should be a valid integer", type = "int_type" }
    return nil
  end
  local s = text_of(v)
  if s == nil then not_text(errs, "path", pp.name); return nil end
  if s == "" then
    errs[#errs + 1] = { loc = { "path", pp.name }, msg = "A path parameter cannot be empty", type = "string_too_short" }
    return nil
  end
  -- "." and ".." would climb the path at the server or a proxy between
  if s == "." or s == ".." or (conv == "path" and (("/" .. s .. "/"):find("/%.%.?/"))) then
    errs[#errs + 1] = { loc = { "path", pp.name }, msg = "A path parameter cannot be \".\" or \"..\"",
      type = "value_error" }
    return nil
  end
  return segment(s, conv == "path")
end

-- The body's text and content type, or nil and the errors.
local function body_of(p, v, errs)
  local sc = p.body
  if sc and v == nil and sc.is_optional and not sc.has_default then return nil end -- an optional body left out
  if sc then
    local text, _, _, e = sc:encode(v, { loc = { "body" } })
    if not text then add_all(errs, e); return nil end
    return text, p.content_type or "application/json"
  end
  if v == nil then return nil end
  if type(v) == "string" then return v, p.content_type or "application/octet-stream" end
  local text, msg = json.encode(v)
  if not text then
    errs[#errs + 1] = { loc = { "body" }, msg = "Cannot send as JSON: " .. tostring(msg), type = "json_invalid" }
    return nil
  end
  return text, p.content_type or "application/json"
end

--- The request of a call: req | nil, message, "invalid", errors (the
--- arguments that do not fit, every one at once, with loc { "path" |
--- "query" | "header" | "body", name }). Unknown argument names raise.
function M.request(p, args, copts, level)
  if args == nil then
    args = EMPTY
  elseif type(args) ~= "table" then
    error(format("%s(args): args must be a table, got %s", p.label, type(args)), level + 1)
  end
  for k in pairs(args) do
    if not p.allowed[k] then
      error(format("%s: unknown argument %s (expected: %s)", p.label, type(k) == "string" and format("%q", k)
        or tostring(k), p.allowed_text), level + 1)
    end
  end
  local errs = ERRS
  if errs[1] ~= nil then errs = {}; ERRS = errs end -- (a call that raised half way)
  -- path
  local schemas, typed, failed = p.param_schemas, EMPTY, false
  if schemas then
    local v, _, _, e = validate_fields(schemas, args, PATH)
    if v then typed = v else add_all(errs, e); failed = true end
  end
  local parts, path = p.parts, p.static_path
  local segs = SEGS
  for i = 1, path and 0 or #parts do
    local part = parts[i]
    if type(part) == "string" then
      segs[i] = part
    elseif schemas and schemas[part.name] then
      -- (a value its schema refused is reported already)
      segs[i] = not failed and path_value(part, typed[part.name], errs) or ""
    else
      segs[i] = path_value(part, args[part.name], errs) or ""
    end
  end
  -- query
  local query = {}
  local q = p.query
  if q then
    local tv = EMPTY
    if q.typed then
      local v, _, _, e = validate_fields(q.typed, args, QUERY)
      if v then tv = v else add_all(errs, e) end
    end
    for _, name in ipairs(q.names) do
      local v
      if q.typed and q.typed[name] then v = tv[name] else v = args[name] end
      if type(v) == "table" then
        for i = 1, #v do
          local s = text_of(v[i])
          if s == nil then not_text(errs, "query", name) break end
          query[#query + 1] = { name, s }
        end
      elseif v ~= nil then
        local s = text_of(v)
        if s == nil then not_text(errs, "query", name) else query[#query + 1] = { name, s } end
      end
    end
  end
  -- headers
  local headers = {}
  for k, v in pairs(p.header_consts) do headers[k] = v end
  if p.header_args then
    local v, _, _, e = validate_fields(p.header_args, args, HEADER)
    if v then
      for name in pairs(p.header_args) do
        local x = v[name]
        if x ~= nil then
          local s = text_of(x)
          if s == nil or s:find("[\r\n%z]") then not_text(errs, "header", name) else headers[name] = s end
        end
      end
    else
      add_all(errs, e)
    end
  end
  -- body
  local body, ctype = body_of(p, args.body, errs)
  if errs[1] ~= nil then
    ERRS = {}
    return nil, p.label .. ": invalid arguments: " .. describe_errors(errs), "invalid", errs
  end
  if ctype and headers["content-type"] == nil then headers["content-type"] = ctype end
  local timeout = p.timeout
  if copts ~= nil then
    if type(copts) ~= "table" then error(p.label .. "(args, opts): opts must be a table", level + 1) end
    for k in pairs(copts) do
      if k ~= "timeout" and k ~= "headers" then
        error(format("%s(args, opts): unknown option %s (expected headers, timeout)", p.label,
          type(k) == "string" and format("%q", k) or tostring(k)), level + 1)
      end
    end
    if copts.timeout ~= nil then
      if type(copts.timeout) ~= "number" or copts.timeout ~= copts.timeout or copts.timeout <= 0 then
        error(p.label .. "(args, opts): opts.timeout must be a positive number", level + 1)
      end
      timeout = copts.timeout
    end
    if copts.headers ~= nil then
      if type(copts.headers) ~= "table" then error(p.label .. "(args, opts): opts.headers must be a table", level + 1) end
      for k, v in pairs(copts.headers) do
        local text = text_of(v)
        if type(k) ~= "string" or not k:find(HEADER_NAME) or text == nil or text:find("[\r\n%z]") then
          error(format("%s(args, opts): opts.headers[%s]: expected a header name and a string or number without CR, LF or NUL",
            p.label, type(k) == "string" and format("%q", k) or tostring(k)), level + 1)
        end
        headers[lower(k)] = text
      end
    end
  end
  return {
    method = p.method, base_url = p.base_url, path = path or concat(segs, "", 1, #parts), query = query, headers = headers,
    body = body, timeout = timeout, route = p.template, name = p.label, args = args,
  }
end

return M
