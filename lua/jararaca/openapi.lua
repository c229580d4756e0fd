--- jararaca.openapi: the OpenAPI 3.1 document of a microservice.
--
--     local openapi = require "jararaca.openapi"
--     local doc = openapi.document(app)          -- a Lua table
--     local text = require("jararaca.json").encode(doc)
--     local cfg = openapi.config(app)            -- nil when app.openapi == false
--     --> { path = "/openapi.json", docs_path = "/docs" | nil, title, version, description }
--
-- The document is built from the RestControllers of the app and the schema
-- model of docs/schema-model.md. Route options (params, query, headers,
-- body, response, status, responses, summary, description, tags,
-- operation_id, deprecated, include_in_schema) are read through
-- jararaca.http.route_spec, as the server and gen-tsi read them. JSON objects carry json.object_mt so their
-- keys keep a stable, readable order; lists are json.array so an empty one
-- is still [].
--
-- Choices (see docs/openapi.md):
--   * nullable: a plain typed schema gets a type array (["string","null"]);
--     anything else (a $ref, enum, const, union) becomes
--     oneOf [inner, {type:"null"}].
--   * extends: a named object whose base is named is
--     allOf [ {$ref base}, {type:"object", properties: own fields} ]; when
--     it redeclares a base field (allOf cannot override) or the base has no
--     name, its fields are flattened.
--   * string patterns are Lua patterns: they are translated to an ECMA
--     regex for `pattern` when that is exact, and always kept verbatim in
--     `x-lua-pattern`.
--   * a route without a response schema documents `application/json` with
--     the empty (any) schema, like FastAPI; status 204 has no content.
--   * 422 (HTTPValidationError) is listed when the route declares params,
--     query, headers or body (what typed dispatch validates).
-- @module jararaca.openapi
local json = require "jararaca.json"
local route_spec = require "jararaca.http.route_spec"

local M = {}

local type, pairs, ipairs, error, tostring, setmetatable, getmetatable, select, next, pcall, require, rawget =
  type, pairs, ipairs, error, tostring, setmetatable, getmetatable, select, next, pcall, require, rawget
local format, concat, sort, floor = string.format, table.concat, table.sort, math.floor
local jarray, object_mt = json.array, json.object_mt

local REF = "#/components/schemas/"

---------------------------------------------------------------------------
-- Ordered JSON objects
---------------------------------------------------------------------------

local mt_cache = {}

-- The object metatable for a key order (memoised by the joined key list).
local function mt_for(keys)
  local id = concat(keys, "\0")
  local mt = mt_cache[id]
  if not mt then
    local copy = {}
    for i = 1, #keys do copy[i] = keys[i] end
    mt = object_mt(copy)
    mt_cache[id] = mt
  end
  return mt
end

--- O("k1", v1, "k2", v2, ...): an ordered object; nil values are skipped.
local function O(...)
  local n = select("#", ...)
  local t, keys = {}, {}
  for i = 1, n, 2 do
    local k, v = select(i, ...)
    if v ~= nil then
      t[k] = v
      keys[#keys + 1] = k
    end
  end
  return setmetatable(t, mt_for(keys))
end

-- An ordered object built incrementally: set(k, v) ... done() -> table.
local function builder()
  local t, keys = {}, {}
  local b = {}
  function b.set(k, v)
    if t[k] == nil then keys[#keys + 1] = k end
    t[k] = v
  end
  function b.has(k) return t[k] ~= nil end
  function b.done() return setmetatable(t, object_mt(keys)) end
  return b
end

-- Every JSON Schema object uses one key order.
local SCHEMA_MT = object_mt({
  "$ref", "title", "description", "type", "format", "const", "enum",
  "properties", "required", "additionalProperties", "items",
  "allOf", "oneOf", "anyOf", "discriminator",
  "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum",
  "minLength", "maxLength", "pattern", "x-lua-pattern", "minItems", "maxItems",
  "default", "examples", "deprecated",
})

local function S(t) return setmetatable(t or {}, SCHEMA_MT) end

---------------------------------------------------------------------------
-- Lua patterns -> ECMA regular expressions
---------------------------------------------------------------------------

local CLASS = {
  a = "A-Za-z", d = "0-9", l = "a-z", u = "A-Z", s = " \\t\\n\\r\\f\\v",
  w = "A-Za-z0-9", x = "0-9A-Fa-f", p = "!-\\/:-@\\[-`{-~", c = "\\x00-\\x1f\\x7f",
  g = "!-~",
}
local ECMA_SPECIAL = "[%^%$%\\%.%*%+%?%(%)%[%]%{%}%|%/%-]"

local function esc_char(c)
  if c:find(ECMA_SPECIAL) then return "\\" .. c end
  return c
end

--- Translate a Lua pattern to an equivalent ECMA regex, or nil when it uses
--- something without an exact equivalent (%b, %f, back-references, ()).
function M.lua_pattern_to_regex(p)
  if type(p) ~= "string" then return nil end
  local out, i, n = {}, 1, #p
  local function class_item(c, in_set)
    local lower = c:lower()
    local body = CLASS[lower]
    if body then
      if c == lower then return in_set and body or ("[" .. body .. "]") end
      if in_set then return nil end -- a negated class inside a set: no exact form
      return "[^" .. body .. "]"
    end
    if c:find("%w") then return nil end -- %1, %b, %f, %z, ...
    return esc_char(c)
  end
  while i <= n do
    local c = p:sub(i, i)
    if c == "^" and i == 1 then
      out[#out + 1] = "^"
      i = i + 1
    elseif c == "$" and i == n then
      out[#out + 1] = "$"
      i = i + 1
    elseif c == "%" then
      local nc = p:sub(i + 1, i + 1)
      if nc == "" then return nil end
      local item = class_item(nc, false)
      if not item then return nil end
      out[#out + 1] = item
      i = i + 2
    elseif c == "[" then
      local j = i + 1
      local set = { "[" }
      if p:sub(j, j) == "^" then set[#set + 1] = "^"; j = j + 1 end
      local first = true
      while true do
        if j > n then return nil end
        local sc = p:sub(j, j)
        if sc == "]" and not first then break end
        if sc == "%" then
          local nc = p:sub(j + 1, j + 1)
          if nc == "" then return nil end
          local item = class_item(nc, true)
          if not item then return nil end
          set[#set + 1] = item
          j = j + 2
        elseif p:sub(j + 1, j + 1) == "-" and p:sub(j + 2, j + 2) ~= "]" and j + 2 <= n then
          set[#set + 1] = esc_char(sc) .. "-" .. esc_char(p:sub(j + 2, j + 2))
          j = j + 3
        else
          set[#set + 1] = esc_char(sc)
          j = j + 1
        end
        first = false
      end
      set[#set + 1] = "]"
      out[#out + 1] = concat(set)
      i = j + 1
    elseif c == "(" then
      if p:sub(i + 1, i + 1) == ")" then return nil end -- position capture
      out[#out + 1] = "("
      i = i + 1
    elseif c == ")" then
      out[#out + 1] = ")"
      i = i + 1
    elseif c == "." then
      out[#out + 1] = "[\\s\\S]"
      i = i + 1
    elseif c == "*" or c == "+" or c == "?" then
      if #out == 0 then out[#out + 1] = esc_char(c) else out[#out + 1] = c end
      i = i + 1
    elseif c == "-" then
      if #out == 0 then out[#out + 1] = "\\-" else out[#out + 1] = "*?" end
      i = i + 1
    else
      out[#out + 1] = esc_char(c)
      i = i + 1
    end
  end
  return concat(out)
end

---------------------------------------------------------------------------
-- Schema model -> JSON Schema (2020-12, as OpenAPI 3.1 uses it)
---------------------------------------------------------------------------

-- A default/example value as JSON: an empty Lua table where the schema is
-- an array must encode as [], not {}.
local function json_value(v, schema)
  if type(v) ~= "table" or getmetatable(v) ~= nil then return v end
  local kind = schema and schema.kind
  while kind == "nullable" do schema = schema.of; kind = schema and schema.kind end
  if kind == "array" or (next(v) ~= nil and #v > 0) then
    local out = {}
    local items = kind == "array" and schema.items or nil
    for i = 1, #v do out[i] = json_value(v[i], items) end
    return jarray(out)
  end
  local out = {}
  for k, x in pairs(v) do out[k] = json_value(x, nil) end
  return out
end

-- `examples` of a schema as a JSON array (or nil).
local function examples_of(s)
  local ex = rawget(s, "examples")
  if type(ex) ~= "table" or #ex == 0 then return nil end
  local out = {}
  for i = 1, #ex do out[i] = json_value(ex[i], s) end
  return jarray(out)
end

-- Copy the documentation fields every schema may carry. (Only data fields
-- are read: `default` and `example` are methods of built schemas.)
local function annotate(out, s, skip_title)
  if s.title ~= nil and not skip_title then out.title = s.title end
  if s.description ~= nil then out.description = s.description end
  out.examples = examples_of(s)
  if s.deprecated then out.deprecated = true end
  return out
end

local function bounds(out, s)
  if s.minimum ~= nil then out.minimum = s.minimum end
  if s.maximum ~= nil then out.maximum = s.maximum end
  local emin, emax = s.exclusive_minimum, s.exclusive_maximum
  if emin == true then out.exclusiveMinimum, out.minimum = s.minimum, nil
  elseif emin ~= nil and emin ~= false then out.exclusiveMinimum = emin end
  if emax == true then out.exclusiveMaximum, out.maximum = s.maximum, nil
  elseif emax ~= nil and emax ~= false then out.exclusiveMaximum = emax end
  return out
end

local function is_plain_typed(x)
  return type(x.type) == "string" and x["$ref"] == nil and x.enum == nil and x.const == nil
    and x.allOf == nil and x.oneOf == nil and x.anyOf == nil
end

local function is_empty_schema(x)
  return next(x) == nil
end

-- nullable(inner): a type array when inner is a plain typed schema, else oneOf.
local function make_nullable(inner)
  if is_empty_schema(inner) then return inner end -- any: already allows null
  if is_plain_typed(inner) then
    inner.type = jarray({ inner.type, "null" })
    return inner
  end
  if type(inner.type) == "table" then -- already a type array
    for _, t in ipairs(inner.type) do if t == "null" then return inner end end
  end
  return S { oneOf = jarray({ inner, S { type = "null" } }) }
end

local Ctx = {}
Ctx.__index = Ctx

local function new_ctx(lookup)
  return setmetatable({
    lookup = lookup,
    models = {},      -- name -> model schema
    components = {},  -- name -> JSON schema (false while being built)
    wanted = {},      -- names referenced by schema.ref, in order
  }, Ctx)
end

local convert -- forward

-- The object schema a `ref` or base points to, when it is a model table.
local function schema_name(s)
  if type(s) ~= "table" then return nil end
  if s.kind == "ref" then return s.name end
  if (s.kind == "object" or s.kind == "enum") and type(s.name) == "string" then return s.name end
  return nil
end

local function field_list(s)
  local fields = s.fields
  if type(fields) ~= "table" then return {} end
  return fields
end

-- { properties = ..., required = ... } of a list of fields.
local function properties_of(fields, ctx)
  if #fields == 0 then return nil, nil end
  local props = builder()
  local required = {}
  for _, f in ipairs(fields) do
    local prop = convert(f.schema, ctx)
    local has_default = f.has_default
    if has_default == nil then has_default = f.default ~= nil end
    if has_default and f.default ~= nil then
      prop.default = json_value(f.default, f.schema)
    end
    props.set(f.name, prop)
    local req = f.required
    if req == nil then req = not has_default end
    if req then required[#required + 1] = f.name end
  end
  return props.done(), #required > 0 and jarray(required) or nil
end

local function object_schema(s, ctx, fields)
  local out = S { type = "object" }
  out.properties, out.required = properties_of(fields, ctx)
  if s.additional == "forbid" then out.additionalProperties = false end
  return out
end

-- The body of a named object's component.
local function object_component(s, ctx)
  local base = s.extends
  local base_name = schema_name(base)
  if base_name then
    local own = s.own_fields
    local base_fields = {}
    local base_model = base.kind == "ref" and (ctx.models[base_name] or ctx.lookup(base_name)) or base
    for _, f in ipairs(base_model and field_list(base_model) or {}) do base_fields[f.name] = true end
    if own == nil then
      own = {}
      for _, f in ipairs(field_list(s)) do
        if not base_fields[f.name] then own[#own + 1] = f end
      end
    end
    local overrides = false
    for _, f in ipairs(own) do
      if base_fields[f.name] then overrides = true end
    end
    if not overrides then
      local parts = { convert(base, ctx) }
      parts[1].title, parts[1].description, parts[1].deprecated, parts[1].examples = nil, nil, nil, nil
      if #own > 0 then parts[2] = object_schema(s, ctx, own) end
      return annotate(S { allOf = jarray(parts) }, s, true)
    end
  end
  return annotate(object_schema(s, ctx, field_list(s)), s, true)
end

local function enum_schema(s)
  local values = {}
  for i, v in ipairs(s.values or {}) do values[i] = v end
  return S { type = "string", enum = jarray(values) }
end

-- Register a named object/enum as a component (once per name).
function Ctx:register(s)
  local name = s.name
  if self.models[name] ~= nil then return end
  -- a modified copy (:optional(), :describe(...)) keeps the name: the
  -- component is built from the registered original
  local original = self.lookup(name)
  if type(original) == "table" and original.kind == s.kind then s = original end
  self.models[name] = s
  self.components[name] = false -- being built: recursive refs stop here
  local body
  if s.kind == "enum" then
    body = annotate(enum_schema(s), s, true)
  else
    body = object_component(s, self)
  end
  body.title = s.title or name
  self.components[name] = body
end

function Ctx:want(name)
  if self.models[name] == nil and not self.wanted[name] then
    self.wanted[name] = true
    self.wanted[#self.wanted + 1] = name
  end
end

-- Resolve every schema.ref(name) that no reachable schema defined.
function Ctx:close()
  local i = 1
  while i <= #self.wanted do
    local name = self.wanted[i]
    if self.models[name] == nil then
      local model = self.lookup(name)
      if type(model) ~= "table" then
        error(format("openapi: schema.ref(%q) names no registered schema", name), 0)
      end
      self:register(model)
    end
    i = i + 1
  end
end

-- A $ref to a component, with the use-site annotations that differ from it.
local function ref_to(name, s, model)
  local out = S { ["$ref"] = REF .. name }
  model = model or {}
  if s.description ~= nil and s.description ~= model.description then out.description = s.description end
  if s.deprecated and not model.deprecated then out.deprecated = true end
  if rawget(s, "examples") ~= nil and rawget(s, "examples") ~= rawget(model, "examples") then
    out.examples = examples_of(s)
  end
  return out
end

-- one_of of named objects that each require a string literal under one
-- common field: add an OpenAPI discriminator.
local function discriminator(variants, ctx)
  local prop, mapping = nil, builder()
  for _, v in ipairs(variants) do
    local name = schema_name(v)
    if not name or v.kind == "enum" then return nil end
    local model = v.kind == "ref" and (ctx.models[name] or ctx.lookup(name)) or v
    if type(model) ~= "table" or model.kind ~= "object" then return nil end
    local found
    for _, f in ipairs(field_list(model)) do
      local fs = f.schema
      if f.required ~= false and type(fs) == "table" and fs.kind == "literal" and type(fs.value) == "string"
        and (prop == nil or prop == f.name) then
        found = f
        break
      end
    end
    if not found or mapping.has(found.schema.value) then return nil end
    prop = found.name
    mapping.set(found.schema.value, REF .. name)
  end
  if prop == nil then return nil end
  return O("propertyName", prop, "mapping", mapping.done())
end

local FORMAT = { uuid = "uuid", date = "date", datetime = "date-time" }

function convert(s, ctx)
  if type(s) ~= "table" or type(s.kind) ~= "string" then
    error("openapi: expected a schema (a table with a kind), got " .. type(s), 0)
  end
  local kind = s.kind
  if kind == "ref" then
    ctx:want(s.name)
    return ref_to(s.name, s, ctx.models[s.name])
  end
  if (kind == "object" or kind == "enum") and type(s.name) == "string" then
    ctx:register(s)
    return ref_to(s.name, s, ctx.models[s.name])
  end
  local out
  if kind == "string" then
    out = S { type = "string", format = s.format, minLength = s.min_length, maxLength = s.max_length }
    if s.pattern ~= nil then
      out.pattern = M.lua_pattern_to_regex(s.pattern)
      out["x-lua-pattern"] = s.pattern
    end
  elseif kind == "integer" then
    out = bounds(S { type = "integer", format = "int64" }, s)
  elseif kind == "number" then
    out = bounds(S { type = "number" }, s)
  elseif kind == "boolean" then
    out = S { type = "boolean" }
  elseif FORMAT[kind] then
    out = S { type = "string", format = FORMAT[kind] }
  elseif kind == "enum" then
    out = enum_schema(s)
  elseif kind == "literal" then
    local v = s.value
    local t = type(v)
    local jt = t == "string" and "string" or t == "boolean" and "boolean"
      or (t == "number" and v == floor(v)) and "integer" or "number"
    out = S { type = jt, const = v }
  elseif kind == "array" then
    out = S { type = "array", items = convert(s.items, ctx), minItems = s.min_items, maxItems = s.max_items }
  elseif kind == "map" then
    out = S { type = "object", additionalProperties = s.values and convert(s.values, ctx) or nil }
  elseif kind == "object" then
    out = object_schema(s, ctx, field_list(s))
  elseif kind == "nullable" then
    out = make_nullable(convert(s.of, ctx))
    -- the wrapper's own docs go on the outside
    return annotate(out, s)
  elseif kind == "one_of" then
    local parts = {}
    for i, v in ipairs(s.variants or {}) do parts[i] = convert(v, ctx) end
    out = S { oneOf = jarray(parts), discriminator = discriminator(s.variants or {}, ctx) }
  elseif kind == "any" then
    out = S {}
  else
    error(format("openapi: unknown schema kind %q", kind), 0)
  end
  return annotate(out, s)
end

---------------------------------------------------------------------------
-- Operations
---------------------------------------------------------------------------

local METHODS = {
  GET = "get", PUT = "put", POST = "post", DELETE = "delete",
  OPTIONS = "options", HEAD = "head", PATCH = "patch", TRACE = "trace",
}

local REASON = {
  [200] = "OK", [201] = "Created", [202] = "Accepted", [203] = "Non-Authoritative Information",
  [204] = "No Content", [205] = "Reset Content", [206] = "Partial Content",
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [406] = "Not Acceptable", [408] = "Request Timeout",
  [409] = "Conflict", [410] = "Gone", [412] = "Precondition Failed", [413] = "Content Too Large",
  [415] = "Unsupported Media Type", [422] = "Unprocessable Content", [423] = "Locked",
  [428] = "Precondition Required", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local CONVERTER = {
  int = function() return S { type = "integer", format = "int64" } end,
  uuid = function() return S { type = "string", format = "uuid" } end,
  str = function() return S { type = "string" } end,
  path = function() return S { type = "string" } end,
}

--- The OpenAPI form of a router template: "/items/{id:int}" -> "/items/{id}".
function M.path_template(path)
  return (path:gsub("{([^}:]+):[^}]*}", "{%1}"))
end

local function parameter(name, where, schema_json, required, s)
  return O("name", name, "in", where,
    "description", s and s.description or nil,
    "required", required,
    "deprecated", (s and s.deprecated) and true or nil,
    "schema", schema_json)
end

local function json_content(schema_json)
  return O("application/json", O("schema", schema_json))
end

-- "get_task" -> "Get Task" (FastAPI's default summary).
local function humanize(member)
  local words = {}
  for w in tostring(member):gmatch("[^_]+") do
    words[#words + 1] = w:sub(1, 1):upper() .. w:sub(2)
  end
  return concat(words, " ")
end

local NO_CONTENT = { [204] = true, [304] = true }

-- One documented answer: its description, and its content when it has a
-- schema (sj: the JSON Schema) and a status that carries a body.
local function response_object(status, description, sj, content_type)
  local content
  if sj ~= nil and not NO_CONTENT[status] then
    content = O(content_type or "application/json", O("schema", sj))
  end
  return O("description", description, "content", content)
end

local function validation_error_schema()
  return O(
    "title", "ValidationError",
    "type", "object",
    "properties", O(
      "loc", S { title = "Location", type = "array",
        items = S { oneOf = jarray({ S { type = "string" }, S { type = "integer" } }) } },
      "msg", S { title = "Message", type = "string" },
      "type", S { title = "Error Type", type = "string" }),
    "required", jarray({ "loc", "msg", "type" }))
end

local function http_validation_error_schema()
  return O(
    "title", "HTTPValidationError",
    "type", "object",
    "properties", O(
      "detail", S { title = "Detail", type = "array", items = S { ["$ref"] = REF .. "ValidationError" } }))
end

-- The parameters of one group (route_spec: params / query / headers).
local function group_parameters(out, g, where, ctx)
  if g == nil then return end
  for _, f in ipairs(g.fields) do
    local sj = convert(f.schema, ctx)
    if f.has_default then sj.default = json_value(f.default, f.schema) end
    out[#out + 1] = parameter(f.name, where, sj, f.required, f.schema)
  end
end

local function operation(route, ctx, tags_seen, tags_list)
  local spec = route.spec
  local params = jarray({})

  -- path parameters: typed by params, else by the template converter
  for _, p in ipairs(spec.path_params) do
    local sj = p.schema and convert(p.schema, ctx) or (CONVERTER[p.converter] or CONVERTER.str)()
    params[#params + 1] = parameter(p.name, "path", sj, true, p.schema)
  end
  group_parameters(params, spec.query, "query", ctx)
  group_parameters(params, spec.headers, "header", ctx)

  local body
  if spec.body then
    local b = spec.body
    body = O("description", b.schema.description,
      "content", json_content(convert(b.schema, ctx)),
      "required", b.required)
  end

  -- responses
  local resp = {}
  local success = spec.success
  -- a success answer without a schema documents any JSON, like FastAPI
  resp[success.status] = response_object(success.status, success.description or "Successful Response",
    success.schema and convert(success.schema, ctx) or S {}, success.content_type)
  for _, e in ipairs(spec.responses) do
    resp[e.status] = response_object(e.status, e.description or REASON[e.status] or "Response",
      e.schema and convert(e.schema, ctx), e.content_type)
  end
  if spec.validated and not resp[422] then
    ctx.needs_validation = true
    resp[422] = O("description", "Validation Error",
      "content", json_content(S { ["$ref"] = REF .. "HTTPValidationError" }))
  end
  local codes = {}
  for k in pairs(resp) do codes[#codes + 1] = k end
  local rank = route_spec.response_rank
  sort(codes, function(x, y) return rank(x) < rank(y) end)
  local responses = builder()
  for _, k in ipairs(codes) do responses.set(tostring(k), resp[k]) end

  local tag_list
  if #spec.tags > 0 then
    tag_list = jarray({})
    for i, t in ipairs(spec.tags) do
      tag_list[i] = t
      if not tags_seen[t] then
        tags_seen[t] = true
        tags_list[#tags_list + 1] = O("name", t)
      end
    end
  end

  return O(
    "tags", tag_list,
    "summary", spec.summary or humanize(route.member),
    "description", spec.description,
    "operationId", false, -- filled once every id is known
    "parameters", #params > 0 and params or nil,
    "requestBody", body,
    "responses", responses.done(),
    "deprecated", spec.deprecated or nil)
end

---------------------------------------------------------------------------
-- Public API
---------------------------------------------------------------------------

--- The documentation settings of an app, or nil when `openapi = false`:
--- { path, docs_path (nil when disabled), title, version, description }.
function M.config(app)
  if type(app) ~= "table" then
    error("openapi.config(app): expected a Microservice, got " .. type(app), 2)
  end
  local oa = app.openapi
  if oa == false then return nil end
  if type(oa) ~= "table" then oa = {} end
  local docs = oa.docs_path
  if docs == nil then docs = "/docs" end
  return {
    path = oa.path or "/openapi.json",
    docs_path = docs or nil,
    title = oa.title or app.name or "jararaca app",
    version = oa.version or "0.1.0",
    description = oa.description,
  }
end

local function default_lookup(name)
  local ok, schema = pcall(require, "jararaca.schema")
  if ok and type(schema) == "table" and type(schema.lookup) == "function" then
    return schema.lookup(name)
  end
  return nil
end

-- The app's own schema names (jararaca.schema scopes them per app file).
local function app_lookup(app)
  local ok, schema = pcall(require, "jararaca.schema")
  if ok and type(schema) == "table" and type(schema.registry) == "function" then
    return schema.registry(app).lookup
  end
  return default_lookup
end

--- The OpenAPI 3.1.0 document of an app (a Lua table; encode it with
--- jararaca.json). opts (all optional): title, version, description
--- (override app.openapi), servers (list of { url, description }),
--- lookup (function(name) -> named schema, default the app's: schema.registry(app).lookup).
function M.document(app, opts)
  if type(app) ~= "table" then
    error("openapi.document(app): expected a Microservice, got " .. type(app), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("openapi.document(app, opts): opts must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  local oa = type(app.openapi) == "table" and app.openapi or {}
  local cfg = M.config(app) or {}
  local ctx = new_ctx(opts.lookup or app_lookup(app))

  local paths = builder()
  local path_items = {} -- openapi path -> builder
  local ops = {}        -- { op=, member=, controller=, explicit= }
  local tags_seen, tags_list = {}, {}
  local skip = {}
  if cfg.path then skip[cfg.path] = true end
  if cfg.docs_path then skip[cfg.docs_path] = true end

  local routes, rerr = route_spec.routes(app.controllers or {})
  if not routes then error(rerr, 0) end
  for _, route in ipairs(routes) do
    local spec = route.spec
    local m = METHODS[route.method]
    local p = M.path_template(route.path)
    if m and spec.include_in_schema and not skip[route.path] then
      local item = path_items[p]
      if not item then
        item = builder()
        path_items[p] = item
        paths.set(p, item)
      end
      if not item.has(m) then -- same method + path twice (e.g. {id:int} and {id:uuid}): keep the first
        local ok, op = pcall(operation, route, ctx, tags_seen, tags_list)
        if not ok then error(route_spec.message(route, tostring(op)), 0) end
        item.set(m, op)
        ops[#ops + 1] = { op = op, id = spec.operation_id or route.member,
          controller = tostring(spec.controller_name or "Controller") }
      end
    end
  end

  -- operationIds: a clash prefixes every holder with its controller name;
  -- a clash left after that gets a numeric suffix.
  local count = {}
  for _, o in ipairs(ops) do count[o.id] = (count[o.id] or 0) + 1 end
  local used = {}
  for _, o in ipairs(ops) do
    local id = o.id
    if count[id] > 1 then id = o.controller .. "_" .. id end
    local final, n = id, 1
    while used[final] do
      n = n + 1
      final = id .. "_" .. n
    end
    used[final] = true
    o.op.operationId = final
  end

  local ok, err = pcall(ctx.close, ctx)
  if not ok then error(err, 2) end
  if ctx.needs_validation then
    if ctx.components.ValidationError == nil then ctx.components.ValidationError = validation_error_schema() end
    if ctx.components.HTTPValidationError == nil then
      ctx.components.HTTPValidationError = http_validation_error_schema()
    end
  end

  local names = {}
  for name in pairs(ctx.components) do names[#names + 1] = name end
  sort(names)
  local components
  if #names > 0 then
    local schemas = builder()
    for _, name in ipairs(names) do schemas.set(name, ctx.components[name]) end
    components = O("schemas", schemas.done())
  end

  local path_table = paths.done()
  for p, item in pairs(path_items) do path_table[p] = item.done() end

  local servers
  if opts.servers then
    servers = jarray({})
    for i, sv in ipairs(opts.servers) do
      servers[i] = O("url", sv.url, "description", sv.description)
    end
  end

  return O(
    "openapi", "3.1.0",
    "info", O(
      "title", opts.title or oa.title or app.name or "jararaca app",
      "description", opts.description or oa.description,
      "version", opts.version or oa.version or "0.1.0"),
    "servers", servers,
    "paths", path_table,
    "components", components,
    "tags", #tags_list > 0 and jarray(tags_list) or nil)
end

--- A JSON Schema (as in the document) for one model schema, with the
--- components it needs: returns schema, components (name -> schema).
function M.schema(s, opts)
  if type(s) ~= "table" or s.kind == nil then
    error("openapi.schema(s): expected a schema, got " .. type(s), 2)
  end
  local ctx = new_ctx((opts and opts.lookup) or default_lookup)
  local out = convert(s, ctx)
  ctx:close()
  return out, ctx.components
end

return M
