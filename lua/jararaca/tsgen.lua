--- jararaca.tsgen: TypeScript types and a typed HTTP client for an app
--- (`jararaca gen-tsi`).
--
--   local tsgen = require "jararaca.tsgen"
--   local text, err, code = tsgen.generate(app, { command = "jararaca gen-tsi app.lua app.ts" })
--     -- text | nil, message, "invalid" (the app cannot be expressed)
--   tsgen.cli({ "app.lua", "app.ts" })  -> exit code (0 ok, 1 generation failed, 2 usage)
--
-- The output (docs/typescript.md is the user page):
--   * a header comment naming the command, then a small runtime:
--     HttpBackendRequest, HttpBackend, HttpError, requestUrl, fetchBackend;
--   * every named schema reachable from a route (params, query, headers, body,
--     response, responses) or listed by schema.exposed(), sorted by name:
--     objects -> `export interface`, with `extends Base` when the base of an
--     s.extend is named; named enums -> a string-literal union type plus a
--     const object of the same name (`Priority.HIGH === "high"`);
--   * one client class per controller (sorted by name) with one async method
--     per route (declaration order), named exactly like the Lua member.
-- Field, parameter and header names are the wire names, never converted.
--
-- Route options are read through jararaca.http.route_spec (checked as the
-- server checks them, same messages). Reads the schema model of
-- docs/schema-model.md only; `opts.registry`
-- ({ lookup = fn(name), exposed = fn() }) replaces the app's names in
-- jararaca.schema's registry, schema.registry(app) (tests).
-- @module jararaca.tsgen
local controller = require "jararaca.http.controller"
local route_spec = require "jararaca.http.route_spec"

local M = {}

local type, pairs, ipairs, tostring, error, setmetatable, getmetatable, pcall, xpcall, rawget =
  type, pairs, ipairs, tostring, error, setmetatable, getmetatable, pcall, xpcall, rawget
local format, concat, sort, huge = string.format, table.concat, table.sort, math.huge

---------------------------------------------------------------------------
-- Failures: expected ones travel as a tagged table, anything else is a bug.
---------------------------------------------------------------------------

local Failure = {}
Failure.__tostring = function(f) return f.msg end

local function fail(fmt, ...)
  error(setmetatable({ msg = format(fmt, ...) }, Failure), 0)
end

-- "a string", "an object", "an enum"
local function a(word)
  word = tostring(word)
  return (word:find("^[aeiouAEIOU]") and "an " or "a ") .. word
end

---------------------------------------------------------------------------
-- Names and literals
---------------------------------------------------------------------------

-- Words that cannot name a TypeScript type or value.
local RESERVED = {}
for w in ([[break case catch class const continue debugger default delete do else enum export
  extends false finally for function if import in instanceof new null return super switch this
  throw true try typeof var void while with yield let static implements interface package
  private protected public await any unknown never object string number boolean symbol bigint
  undefined as async declare from get set of type keyof readonly infer is module namespace
  require global satisfies constructor]]):gmatch("%S+") do
  RESERVED[w] = true
end

-- Names the generated file declares or relies on: a schema or controller
-- with one of these names would shadow them. Types: every named schema;
-- values: enums (their const object) and controllers (classes).
local TYPE_TAKEN, VALUE_TAKEN = {}, {}
for w in ([[HttpBackendRequest HttpBackend HttpError Promise Record Array Omit RequestInit Response]]):gmatch("%S+") do
  TYPE_TAKEN[w] = true
end
for w in ([[HttpError requestUrl fetchBackend jrHeaders jrReadBody Promise Object String JSON Array Headers
  URLSearchParams Error encodeURIComponent fetch globalThis]]):gmatch("%S+") do
  VALUE_TAKEN[w] = true
end

local function is_identifier(s)
  return type(s) == "string" and s:find("^[%a_$][%w_$]*$") ~= nil
end

local function is_type_name(s)
  return is_identifier(s) and not RESERVED[s]
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  ["\b"] = "\\b", ["\f"] = "\\f" }

--- A TypeScript (JSON-compatible) string literal.
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or format("\\u%04x", c:byte())
  end) .. '"'
end
M.quote = quote

-- A property key: bare when it is an identifier (reserved words are fine
-- as property names), else quoted.
local function key(name)
  if is_identifier(name) then return name end
  return quote(name)
end

local function literal(v, where)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == huge or v == -huge then fail("%s: literal %s cannot be written in TypeScript", where, tostring(v)) end
    if v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
    return format("%.17g", v)
  end
  if t == "cdata" then
    local s = tostring(v):gsub("U?LL$", "")
    if s:find("^%-?%d+$") then return s end
  end
  if t == "userdata" and tostring(v):find("^userdata: NULL") then return "null" end -- json.null
  fail("%s: unsupported literal value of type %s", where, t)
end

-- Text for a /** ... */ comment, or nil.
local function doc_lines(parts, indent)
  local lines = {}
  for _, p in ipairs(parts) do
    if p == "" then
      if #lines > 0 and lines[#lines] ~= "" then lines[#lines + 1] = "" end
    else
      for line in (p .. "\n"):gmatch("([^\n]*)\n") do
        lines[#lines + 1] = (line:gsub("%*/", "*\\/"):gsub("%s+$", ""))
      end
    end
  end
  while lines[#lines] == "" do lines[#lines] = nil end
  if #lines == 0 then return nil end
  if #lines == 1 then return indent .. "/** " .. lines[1] .. " */" end
  local out = { indent .. "/**" }
  for _, l in ipairs(lines) do out[#out + 1] = l == "" and (indent .. " *") or (indent .. " * " .. l) end
  out[#out + 1] = indent .. " */"
  return concat(out, "\n")
end

local function schema_doc(s, indent)
  local parts = {}
  local title, description = rawget(s, "title"), rawget(s, "description")
  if type(title) == "string" and title ~= "" then parts[#parts + 1] = title end
  if type(description) == "string" and description ~= "" then
    if #parts > 0 then parts[#parts + 1] = "" end
    parts[#parts + 1] = description
  end
  if rawget(s, "deprecated") == true then parts[#parts + 1] = "@deprecated" end
  return doc_lines(parts, indent)
end

local function is_schema(s)
  return type(s) == "table" and type(s.kind) == "string"
end

local function describe(v)
  if type(v) == "table" then return "a table without a 'kind'" end
  return a(type(v))
end

-- Enum member name for a value: upper-case, non-identifier bytes -> "_".
local function member_name(value)
  local n = value:upper():gsub("[^%w_$]", "_")
  if n == "" then n = "EMPTY" end
  if n:find("^%d") then n = "_" .. n end
  return n
end

---------------------------------------------------------------------------
-- The generator
---------------------------------------------------------------------------

local Gen = {}
Gen.__index = Gen

local function new_gen(registry)
  return setmetatable({
    registry = registry,
    named = {},    -- name -> canonical schema
    kinds = {},    -- name -> "object" | "enum"
    pending = {},  -- names waiting to be rendered
    decls = {},    -- name -> declaration text
  }, Gen)
end

function Gen:lookup(name)
  local lookup = self.registry.lookup
  if not lookup then return nil end
  local ok, found = pcall(lookup, name)
  if ok and is_schema(found) then return found end
  return nil
end

function Gen:resolve_ref(s, where)
  if type(s.name) ~= "string" then fail("%s: a ref schema without a name", where) end
  local target = self.named[s.name] or self:lookup(s.name)
  if not target then fail("%s: reference to unknown schema %q (no object of that name was declared)", where, s.name) end
  if target.kind == "ref" then fail("%s: reference %q resolves to another reference", where, s.name) end
  return target
end

-- Register a named object or enum for emission; returns its name.
function Gen:use_named(s, where)
  local name = s.name
  if not is_type_name(name) then
    fail("%s: schema name %s is not a valid TypeScript type name", where, quote(tostring(name)))
  end
  local kind = s.kind
  if TYPE_TAKEN[name] or (kind == "enum" and VALUE_TAKEN[name]) then
    fail("%s: schema name %q clashes with a name the generated file uses; rename the schema", where, name)
  end
  local prev = self.kinds[name]
  if prev then
    if prev ~= kind then fail("%s: two schemas are named %q (%s and %s)", where, name, a(prev), a(kind)) end
    return name
  end
  local canonical = self:lookup(name)
  if not canonical or canonical.kind ~= kind then canonical = s end
  self.kinds[name] = kind
  self.named[name] = canonical
  self.pending[#self.pending + 1] = name
  return name
end

local function array_of(t)
  if t:find("^[%w_$]+$") then return t .. "[]" end
  return "Array<" .. t .. ">"
end

--- The TypeScript type of a schema (registers the named types it uses).
function Gen:type_of(s, where)
  if not is_schema(s) then fail("%s: expected a schema, got %s", where, describe(s)) end
  local k = s.kind
  if k == "string" or k == "uuid" or k == "date" or k == "datetime" then
    return "string"
  elseif k == "integer" or k == "number" then
    return "number"
  elseif k == "boolean" then
    return "boolean"
  elseif k == "any" then
    return "unknown"
  elseif k == "enum" then
    if s.name ~= nil then return self:use_named(s, where) end
    return self:enum_union(s, where)
  elseif k == "literal" then
    return literal(s.value, where)
  elseif k == "array" then
    return array_of(self:type_of(s.items, where .. "[]"))
  elseif k == "map" then
    return "{ [key: string]: " .. self:type_of(s.values, where .. "{}") .. " }"
  elseif k == "object" then
    if s.name ~= nil then return self:use_named(s, where) end
    return self:object_literal(s, where)
  elseif k == "nullable" then
    local inner = self:type_of(s.of, where)
    if inner == "null" or inner:find("| null$") then return inner end
    return inner .. " | null"
  elseif k == "one_of" then
    if type(s.variants) ~= "table" then fail("%s: one_of without variants", where) end
    local parts, seen = {}, {}
    for i, v in ipairs(s.variants) do
      local t = self:type_of(v, where .. "|" .. i)
      if not seen[t] then seen[t] = true; parts[#parts + 1] = t end
    end
    if #parts == 0 then return "never" end
    return concat(parts, " | ")
  elseif k == "ref" then
    return self:use_named(self:resolve_ref(s, where), where)
  end
  fail("%s: unsupported schema kind %q", where, k)
end

function Gen:enum_union(s, where) -- luacheck: ignore 212 (a method like the other renderers)
  if type(s.values) ~= "table" then fail("%s: enum without values", where) end
  local parts = {}
  for i, v in ipairs(s.values) do
    if type(v) ~= "string" then fail("%s: enum value %d is %s, expected a string", where, i, a(type(v))) end
    parts[i] = quote(v)
  end
  if #parts == 0 then return "never" end
  return concat(parts, " | ")
end

local function check_fields(s, where)
  if type(s.fields) ~= "table" then fail("%s: object schema without a fields list", where) end
  for i, f in ipairs(s.fields) do
    if type(f) ~= "table" or type(f.name) ~= "string" then
      fail("%s: field %d of the object has no name", where, i)
    end
  end
  return s.fields
end

-- The type of one object field.
function Gen:field_type(f, where)
  return self:type_of(f.schema, where .. "." .. f.name)
end

local function field_is_optional(f)
  return f.required == false or f.has_default == true
end

-- Fields rendered one per line (interfaces).
function Gen:field_lines(fields, where, indent)
  local out = {}
  for _, f in ipairs(fields) do
    local t = self:field_type(f, where)
    local s = f.schema
    if not (s.kind == "ref" or ((s.kind == "object" or s.kind == "enum") and s.name ~= nil)) then
      local d = schema_doc(s, indent)
      if d then out[#out + 1] = d end
    end
    out[#out + 1] = format("%s%s%s: %s;", indent, key(f.name), field_is_optional(f) and "?" or "", t)
  end
  return out
end

-- The base of an object with `extends`, resolved, or nil.
function Gen:base_of(s, where)
  local base = s.extends
  if base == nil then return nil end
  if not is_schema(base) then fail("%s: extends is %s, expected an object schema", where, describe(base)) end
  if base.kind == "ref" then base = self:resolve_ref(base, where) end
  if base.kind ~= "object" then fail("%s: extends %s schema, expected an object", where, a(base.kind)) end
  return base
end

-- Own fields of an extension and the base fields they override.
local function own_and_overrides(s, base, where)
  local base_fields = {}
  for _, f in ipairs(check_fields(base, where)) do base_fields[f.name] = f end
  local own = s.own_fields
  if type(own) ~= "table" then
    own = {}
    for _, f in ipairs(check_fields(s, where)) do
      local bf = base_fields[f.name]
      if not bf or bf.schema ~= f.schema or bf.required ~= f.required then own[#own + 1] = f end
    end
  end
  local overrides = {}
  for _, f in ipairs(own) do
    if base_fields[f.name] then overrides[#overrides + 1] = quote(f.name) end
  end
  return own, overrides
end

local function heritage(base_name, overrides)
  if #overrides == 0 then return base_name end
  return format("Omit<%s, %s>", base_name, concat(overrides, " | "))
end

-- An anonymous object as a type literal: { a: T; b?: U }.
function Gen:object_literal(s, where)
  local base = self:base_of(s, where)
  local fields, prefix = check_fields(s, where), nil
  if base and base.name ~= nil then
    local own, overrides = own_and_overrides(s, base, where)
    prefix = heritage(self:use_named(base, where), overrides)
    fields = own
  end
  local parts = {}
  for _, f in ipairs(fields) do
    parts[#parts + 1] = format("%s%s: %s", key(f.name), field_is_optional(f) and "?" or "",
      self:field_type(f, where))
  end
  local lit = #parts == 0 and "{}" or ("{ " .. concat(parts, "; ") .. " }")
  if prefix then return #parts == 0 and prefix or (prefix .. " & " .. lit) end
  return lit
end

function Gen:render_object(name, s)
  local where = name
  local base = self:base_of(s, where)
  local fields = check_fields(s, where)
  local head = "export interface " .. name
  if base and base.name ~= nil then
    local own, overrides = own_and_overrides(s, base, where)
    head = head .. " extends " .. heritage(self:use_named(base, where), overrides)
    fields = own
  end
  local lines = {}
  local d = schema_doc(s, "")
  if d then lines[#lines + 1] = d end
  local body = self:field_lines(fields, where, "  ")
  if #body == 0 then
    lines[#lines + 1] = head .. " {}"
  else
    lines[#lines + 1] = head .. " {"
    for _, l in ipairs(body) do lines[#lines + 1] = l end
    lines[#lines + 1] = "}"
  end
  return concat(lines, "\n")
end

function Gen:render_enum(name, s)
  local union = self:enum_union(s, name)
  local lines = {}
  local d = schema_doc(s, "")
  if d then lines[#lines + 1] = d end
  lines[#lines + 1] = format("export type %s = %s;", name, union)
  local members, used = {}, {}
  for _, v in ipairs(s.values) do
    local m = member_name(v)
    if used[m] then
      local n = 2
      while used[m .. "_" .. n] do n = n + 1 end
      m = m .. "_" .. n
    end
    used[m] = true
    members[#members + 1] = format("  %s: %s,", m, quote(v))
  end
  if #members == 0 then
    lines[#lines + 1] = format("export const %s = {} as const;", name)
  else
    lines[#lines + 1] = format("export const %s = {", name)
    for _, m in ipairs(members) do lines[#lines + 1] = m end
    lines[#lines + 1] = "} as const;"
  end
  return concat(lines, "\n")
end

-- Render every pending named type (rendering may add more).
function Gen:flush()
  local i = 1
  while i <= #self.pending do
    local name = self.pending[i]
    local s = self.named[name]
    if s.kind == "object" then
      self.decls[name] = self:render_object(name, s)
    else
      self.decls[name] = self:render_enum(name, s)
    end
    i = i + 1
  end
  self.pending = {}
end

---------------------------------------------------------------------------
-- Routes -> client methods
---------------------------------------------------------------------------

local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

local function all_optional(fields)
  for _, f in ipairs(fields) do if f.required then return false end end
  return true
end

local CONVERTER_TYPES = { int = "number", uuid = "string", str = "string", path = "string" }

-- The client's path template: {name:int} -> {name}; {name:path} is kept
-- (requestUrl encodes it segment by segment).
local function client_path(path)
  return (path:gsub("{([^}:]*):?([^}]*)}", function(name, conv)
    if conv == "path" then return "{" .. name .. ":path}" end
    return "{" .. name .. "}"
  end))
end

-- route.spec (jararaca.http.route_spec) has checked the options; what is
-- left here is what TypeScript cannot express.
function Gen:route_method(r)
  local spec = r.spec
  local member = r.member
  -- "app.lua:12: route TasksController.get (GET /tasks/{id})", as the server names it
  local where = route_spec.where(r)
  if member == "constructor" or member == "backend" then
    fail("%s: a route named %q cannot be a client method (it would clash with the class's %s); rename the member",
      where, member, member == "constructor" and "constructor" or "backend field")
  end
  local typed = spec.typed
  local path = client_path(r.path)

  -- path parameters: typed by params, else by the converter
  local pfields, pvalues = {}, {}
  for _, p in ipairs(spec.path_params) do
    local s, t = p.schema, CONVERTER_TYPES[p.converter]
    local value = "params." .. p.name
    if s then
      -- pathParams holds strings and numbers
      local base = s.kind == "ref" and self:resolve_ref(s, where) or s
      if base.kind == "boolean" or (base.kind == "literal" and type(base.value) == "boolean") then
        value = "String(" .. value .. ")"
      end
      t = self:type_of(s, where .. " params." .. p.name)
    end
    pfields[#pfields + 1] = p.name .. ": " .. t
    pvalues[#pvalues + 1] = p.name .. ": " .. value
  end

  local args = {} -- { name, type, optional = true | default = "{}" }, in signature order
  if #pfields > 0 then
    args[#args + 1] = { name = "params", type = "{ " .. concat(pfields, "; ") .. " }" }
  end

  local function object_param(name, g)
    local parts = {}
    for _, f in ipairs(g.fields) do
      parts[#parts + 1] = format("%s%s: %s", key(f.name), f.required and "" or "?",
        self:type_of(f.schema, where .. " " .. name .. "." .. f.name))
    end
    return { name = name, type = "{ " .. concat(parts, "; ") .. " }", default = all_optional(g.fields) and "{}" or nil }
  end

  local has_body, has_query, has_headers = false, false, false
  if spec.body then
    args[#args + 1] = { name = "body", type = self:type_of(spec.body.schema, where .. " body"),
      optional = not spec.body.required }
    has_body = true
  elseif not typed and BODY_METHODS[r.method] then
    args[#args + 1] = { name = "body", type = "unknown", optional = true }
    has_body = true
  end
  if spec.query and #spec.query.fields > 0 then
    args[#args + 1] = object_param("query", spec.query)
    has_query = true
  elseif not typed then
    args[#args + 1] = { name = "query", type = "Record<string, unknown>", default = "{}" }
    has_query = true
  end
  if spec.headers and #spec.headers.fields > 0 then
    args[#args + 1] = object_param("headers", spec.headers)
    has_headers = true
    self.uses_headers = true
  end

  -- optional only when every later argument is optional too
  local later_required = false
  local sig = {}
  for i = #args, 1, -1 do
    local arg = args[i]
    local can_skip = (arg.optional or arg.default) and not later_required
    if can_skip and arg.optional then
      sig[i] = arg.name .. "?: " .. arg.type
    elseif can_skip then
      sig[i] = arg.name .. ": " .. arg.type .. " = " .. arg.default
    else
      sig[i] = arg.name .. ": " .. arg.type
      later_required = true
    end
  end

  -- extra documented responses: their types are emitted too
  for _, e in ipairs(spec.responses) do
    if e.schema then self:type_of(e.schema, where .. " responses[" .. e.status .. "]") end
  end

  local ret
  local success = spec.success
  if success.status == 204 then
    ret = "void"
  elseif success.schema ~= nil then
    ret = self:type_of(success.schema, where .. (spec.response and " response" or
      (" responses[" .. success.status .. "]")))
  else
    ret = "unknown"
  end

  local docs = {}
  if spec.summary and spec.summary ~= "" then docs[#docs + 1] = spec.summary end
  if spec.description and spec.description ~= "" then
    if #docs > 0 then docs[#docs + 1] = "" end
    docs[#docs + 1] = spec.description
  end
  if #docs > 0 then docs[#docs + 1] = "" end
  docs[#docs + 1] = "`" .. r.method .. " " .. r.path .. "`"
  if spec.deprecated then docs[#docs + 1] = "@deprecated" end

  local lines = { doc_lines(docs, "  ") }
  lines[#lines + 1] = format("  async %s(%s): Promise<%s> {", key(member), concat(sig, ", "), ret)
  lines[#lines + 1] = format("    return this.backend.request<%s>({", ret)
  lines[#lines + 1] = format("      method: %s,", quote(r.method))
  lines[#lines + 1] = format("      path: %s,", quote(path))
  lines[#lines + 1] = "      pathParams: " .. (#pvalues > 0 and ("{ " .. concat(pvalues, ", ") .. " }") or "{}") .. ","
  lines[#lines + 1] = "      query: " .. (has_query and "{ ...query }" or "{}") .. ","
  lines[#lines + 1] = "      headers: " .. (has_headers and "jrHeaders(headers)" or "{}") .. ","
  if has_body then lines[#lines + 1] = "      body," end
  lines[#lines + 1] = "    });"
  lines[#lines + 1] = "  }"
  return concat(lines, "\n")
end

function Gen:render_controller(cls, name, routes)
  local info = rawget(cls, "__controller")
  local lines = {}
  local d = doc_lines({ format("Client for `%s` (routes under `%s`).", name,
    info.prefix == "" and "/" or info.prefix) }, "")
  lines[#lines + 1] = d
  lines[#lines + 1] = "export class " .. name .. " {"
  lines[#lines + 1] = "  private readonly backend: HttpBackend;"
  lines[#lines + 1] = ""
  lines[#lines + 1] = "  constructor(backend: HttpBackend) {"
  lines[#lines + 1] = "    this.backend = backend;"
  lines[#lines + 1] = "  }"
  for _, r in ipairs(routes) do
    lines[#lines + 1] = ""
    lines[#lines + 1] = self:route_method(r)
  end
  lines[#lines + 1] = "}"
  return concat(lines, "\n")
end

---------------------------------------------------------------------------
-- The fixed runtime part of every file
---------------------------------------------------------------------------

local RUNTIME = [[
/** One request, as a generated client hands it to an HttpBackend. */
export interface HttpBackendRequest {
  method: string;
  /** The route template, e.g. "/tasks/{task_id}"; each `{name}` is filled from pathParams. */
  path: string;
  pathParams: Record<string, string | number>;
  /** Query parameters: undefined and null are skipped, arrays repeat the name. */
  query: Record<string, unknown>;
  headers: Record<string, string>;
  /** The JSON body, when the route takes one. */
  body?: unknown;
}

/** Sends the clients' requests: fetchBackend, or your own (auth, retries, mocks). */
export interface HttpBackend {
  request<T>(req: HttpBackendRequest): Promise<T>;
}

/** A non-2xx answer: the status and the decoded body (JSON when the server sent JSON, else text). */
export class HttpError extends Error {
  readonly status: number;
  readonly body: unknown;

  constructor(status: number, body: unknown, message?: string) {
    super(message ?? `HTTP ${status}`);
    this.name = "HttpError";
    this.status = status;
    this.body = body;
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** The full URL of a request: path parameters substituted (percent-encoded), query string appended. */
export function requestUrl(baseUrl: string, req: HttpBackendRequest): string {
  const path = req.path.replace(/\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}/g,
    (_match: string, name: string, conv: string | undefined): string => {
      const value = req.pathParams[name];
      if (value === undefined || value === null) {
        throw new Error(`missing path parameter "${name}" for ${req.method} ${req.path}`);
      }
      const text = String(value);
      return conv === "path" ? text.split("/").map(encodeURIComponent).join("/") : encodeURIComponent(text);
    });
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(req.query)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item === undefined || item === null) continue;
      search.append(name, typeof item === "object" ? JSON.stringify(item) : String(item));
    }
  }
  const qs = search.toString();
  return baseUrl.replace(/\/+$/, "") + path + (qs === "" ? "" : "?" + qs);
}

/**
 * An HttpBackend over `fetch` (browsers, Node 18+): sends JSON, decodes JSON
 * answers, resolves undefined for 204 and throws HttpError for non-2xx.
 * `init` is merged into every request (headers, credentials, signal...).
 */
export function fetchBackend(baseUrl: string, init?: RequestInit, fetchFn?: typeof fetch): HttpBackend {
  return {
    async request<T>(req: HttpBackendRequest): Promise<T> {
      const headers = new Headers(init?.headers);
      for (const [name, value] of Object.entries(req.headers)) headers.set(name, value);
      if (!headers.has("accept")) headers.set("accept", "application/json");
      let body: string | null = null;
      if (req.body !== undefined) {
        body = JSON.stringify(req.body);
        if (!headers.has("content-type")) headers.set("content-type", "application/json");
      }
      const url = requestUrl(baseUrl, req);
      const res = await (fetchFn ?? fetch)(url, { ...init, method: req.method, headers, body });
      const data = await jrReadBody(res);
      if (!res.ok) throw new HttpError(res.status, data, `${req.method} ${url} answered ${res.status}`);
      return data as T;
    },
  };
}

async function jrReadBody(res: Response): Promise<unknown> {
  if (res.status === 204 || res.status === 205 || res.status === 304) return undefined;
  const text = await res.text();
  if (text === "") return undefined;
  if (/[/+]json\b/i.test(res.headers.get("content-type") ?? "")) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}
]]

local RUNTIME_HEADERS = [[
function jrHeaders(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && value !== null) out[name] = String(value);
  }
  return out;
}
]]

---------------------------------------------------------------------------
-- Public API
---------------------------------------------------------------------------

local function schema_registry(app)
  return require("jararaca.schema").registry(app)
end

local function run(app, opts)
  local registry = opts.registry or schema_registry(app)
  local gen = new_gen(registry)

  -- controllers, sorted by class name
  local ctrls, by_name = {}, {}
  for i, cls in ipairs(app.controllers or {}) do
    -- message-bus controllers have no HTTP client (their payloads: j.ExposeType)
    if rawget(cls, "__bus_controller") == nil then
      if not controller.is_controller(cls) then fail("controllers[%d] is not a RestController class", i) end
      local name = rawget(cls, "__name")
      if not is_type_name(name) then
        fail("controller %s: its name is not a valid TypeScript class name; set RestController(prefix, { name = \"...\" })",
          quote(tostring(name)))
      end
      if TYPE_TAKEN[name] or VALUE_TAKEN[name] then
        fail("controller %s: the name clashes with a name the generated file uses; rename it", name)
      end
      if by_name[name] then
        if by_name[name] ~= cls then fail("two controllers are named %s; give one another name", name) end
      else
        by_name[name] = cls
        ctrls[#ctrls + 1] = name
      end
    end
  end
  sort(ctrls)
  -- every route checked once, as the server checks them (same messages)
  local routes, rerr = route_spec.routes(app.controllers or {})
  if not routes then fail("%s", rerr) end
  -- the operations OpenAPI documents: a route left out of the schema
  -- (include_in_schema = false, which every WebSocket endpoint is) gets no
  -- client method, and a controller left with no method no class
  local by_class, left_out = {}, {}
  for _, r in ipairs(routes) do
    if r.spec.include_in_schema then
      local list = by_class[r.controller] or {}
      list[#list + 1] = r
      by_class[r.controller] = list
    else
      left_out[r.controller] = true
    end
  end
  local classes = {}
  for _, name in ipairs(ctrls) do
    local cls = by_name[name]
    if by_class[cls] or not left_out[cls] then
      classes[#classes + 1] = gen:render_controller(cls, name, by_class[cls] or {})
    end
  end

  -- exposed types
  local exposed = registry.exposed and registry.exposed() or {}
  for i, s in ipairs(exposed) do
    if not is_schema(s) then fail("exposed[%d]: expected a schema, got %s", i, describe(s)) end
    if s.kind == "ref" then s = gen:resolve_ref(s, "exposed " .. s.name) end
    if (s.kind ~= "object" and s.kind ~= "enum") or s.name == nil then
      fail("exposed[%d]: only named objects and enums can be exposed (got %s %s schema)", i,
        s.name and "a" or "an anonymous", s.kind)
    end
    gen:use_named(s, "exposed " .. tostring(s.name))
  end

  gen:flush()

  local names = {}
  for name in pairs(gen.decls) do
    if by_name[name] then fail("schema %q has the same name as a controller; rename one of them", name) end
    names[#names + 1] = name
  end
  sort(names)

  local out = {
    "// Generated by `" .. (opts.command or "jararaca gen-tsi"):gsub("[%c`]", "?")
      .. "`. Do not edit: change the app and run the command again.",
    "// Names are the wire (JSON) names; integers are `number` (JavaScript loses precision beyond 2^53).",
    "/* eslint-disable */",
    "",
  }
  if #names > 0 then
    out[#out + 1] = "// ---- Types ----"
    for _, name in ipairs(names) do
      out[#out + 1] = ""
      out[#out + 1] = gen.decls[name]
    end
    out[#out + 1] = ""
  end
  out[#out + 1] = "// ---- HTTP runtime ----"
  out[#out + 1] = ""
  out[#out + 1] = RUNTIME
  if gen.uses_headers then out[#out + 1] = RUNTIME_HEADERS end
  if #classes > 0 then
    out[#out + 1] = "// ---- Clients ----"
    for _, c in ipairs(classes) do
      out[#out + 1] = ""
      out[#out + 1] = c
    end
    out[#out + 1] = ""
  end
  return concat(out, "\n")
end

--- TypeScript for an app. opts: command (for the header comment), registry
--- (see the module comment). Returns the text, or nil, message, "invalid"
--- when the app cannot be expressed (unsupported schema, bad names, ...);
--- an app that is not a table raises (misuse).
function M.generate(app, opts)
  if type(app) ~= "table" then
    error("tsgen.generate(app, opts): expected an app (jararaca.Microservice{...}), got " .. a(type(app)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("tsgen.generate(app, opts): opts must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  local ok, res = pcall(run, app, opts)
  if ok then return res end
  if getmetatable(res) == Failure then return nil, res.msg, "invalid" end
  error(res, 0)
end

---------------------------------------------------------------------------
-- Command line
---------------------------------------------------------------------------

local USAGE = [[
usage: jararaca gen-tsi APP.lua OUT.ts     write TypeScript types and clients for the app
       jararaca gen-tsi APP.lua --stdout   print them on stdout instead

Emits an interface per named object schema, a union type + const object per
named enum, every schema.expose()d type, and one client class per controller
(one async method per route) over a pluggable HttpBackend (fetchBackend
included). The file compiles with `tsc --strict`. See docs/typescript.md.

options:
  --stdout     print the TypeScript instead of writing OUT.ts
  -h, --help   this text

exit status: 0 written, 1 generation failed (bad app, unsupported schema,
unwritable output), 2 bad usage.]]

M.usage = USAGE

local function eprint(...)
  io.stderr:write(concat({ ... }, ""), "\n")
end

local function reason(err)
  return (tostring(err):gsub("^[^:]*: ", ""))
end

-- Write through a temporary file renamed into place, so a reader never sees
-- half a file. Returns true or nil, err.
local function write_file(path, text)
  local ok_sys, sys = pcall(require, "jararaca.core.sys")
  local tmp = path .. ".tmp" .. (ok_sys and sys.pid and tostring(sys.pid()) or tostring(os.time()))
  local f, err = io.open(tmp, "wb")
  if not f then return nil, format("cannot write %s: %s", path, reason(err)) end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    return nil, format("cannot write %s: %s", path, reason(werr or cerr))
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    return nil, format("cannot write %s: %s", path, reason(rerr))
  end
  return true
end

--- `jararaca gen-tsi ...`: returns the exit code.
function M.cli(args)
  local stdout, pos = false, {}
  for _, arg in ipairs(args or {}) do
    if arg == "-h" or arg == "--help" then
      print(USAGE)
      return 0
    elseif arg == "--stdout" then
      stdout = true
    elseif arg:sub(1, 1) == "-" and arg ~= "-" then
      eprint("jararaca gen-tsi: unknown option ", arg, " (see jararaca gen-tsi --help)")
      return 2
    else
      pos[#pos + 1] = arg
    end
  end
  if #pos == 0 then
    eprint("jararaca gen-tsi: missing the app file (usage: jararaca gen-tsi APP.lua OUT.ts | --stdout)")
    return 2
  end
  if #pos > 2 then
    eprint("jararaca gen-tsi: too many arguments (usage: jararaca gen-tsi APP.lua OUT.ts | --stdout)")
    return 2
  end
  if not stdout and #pos < 2 then
    eprint("jararaca gen-tsi: missing the output path: give OUT.ts, or --stdout to print the TypeScript")
    return 2
  end
  if stdout and #pos == 2 then
    eprint("jararaca gen-tsi: give either an output path or --stdout, not both")
    return 2
  end
  local app_path, out_path = pos[1], pos[2]

  local runtime = require "jararaca.runtime"
  local app, lerr = runtime.load_app(app_path)
  if not app then
    eprint("jararaca gen-tsi: ", lerr)
    return 1
  end
  local command = "jararaca gen-tsi " .. app_path .. " " .. (stdout and "--stdout" or out_path)
  local ok, text, gerr = xpcall(M.generate, debug.traceback, app, { command = command })
  if not ok then
    eprint("jararaca gen-tsi: internal error while generating TypeScript for ", app_path, ": ", tostring(text))
    return 1
  end
  if not text then
    eprint("jararaca gen-tsi: cannot generate TypeScript for ", app_path, ": ", gerr)
    return 1
  end
  if stdout then
    io.stdout:write(text)
    io.stdout:flush()
    return 0
  end
  local wok, werr = write_file(out_path, text)
  if not wok then
    eprint("jararaca gen-tsi: ", werr)
    return 1
  end
  eprint("jararaca gen-tsi: wrote ", out_path)
  return 0
end

return M
