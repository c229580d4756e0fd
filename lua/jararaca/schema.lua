--- jararaca.schema: typed data for requests, responses and generated clients
-- (the pydantic part of the original).
--
--     local s = require "jararaca.schema"
--
--     local Task = s.object("Task", {
--       { "id", s.uuid() },
--       { "title", s.string{ min_length = 1, max_length = 200 } },
--       { "done", s.boolean():default(false) },
--       { "due", s.datetime():nullable():optional() },
--     })
--
--     local task, msg, code, errs = Task:validate(json.decode(body))
--       -- cleaned | nil, "title: String should have at least 1 character ...", "invalid", errors
--     local text = assert(Task:encode(task))                -- JSON in field order
--
-- Schemas are the plain tables described in docs/schema-model.md (a `kind`
-- plus kind fields) with methods in their metatable. They are immutable:
-- modifiers (:optional(), :default(v), :nullable(), :describe(text),
-- :example(v)) return new schemas. The user guide is docs/schema.md.
--
-- Each schema is compiled once into a validator closure (cached per schema
-- table, see jararaca.schema.compile); validation allocates only its output
-- (and errors). Cleaned objects carry their schema's json.object_mt (field
-- order) and cleaned arrays json.array_mt, so json.encode keeps the shape.
--
-- Misuse (bad options, a bad default, a duplicate name) raises at the
-- caller; invalid values return nil, a message (describe_errors of the
-- errors), "invalid" and the list of errors (docs/errors.md).
-- @module jararaca.schema
local ffi = require "ffi"
local json = require "jararaca.json"
local compile_mod = require "jararaca.schema.compile"

local M = {}

local type, pairs, ipairs, setmetatable, getmetatable, tostring, error, pcall, select, rawget =
  type, pairs, ipairs, setmetatable, getmetatable, tostring, error, pcall, select, rawget
local format, find = string.format, string.find
local concat, sort, insert = table.concat, table.sort, table.insert
local huge = math.huge
local getinfo = debug.getinfo

local array_mt = json.array_mt
local new_error, deep_copy, fmtnum = compile_mod.new_error, compile_mod.deep_copy, compile_mod.fmtnum
local istype, int64_ct = ffi.istype, ffi.typeof("int64_t")

---------------------------------------------------------------------------
-- Registry (named objects and enums; exposed types), one scope per app
---------------------------------------------------------------------------
-- Names are scoped per app, so two apps loaded in one process (a
-- `jararaca test` run) may both define "Task". runtime.load_app runs an app
-- file inside M.with_scope(path, ...): every name defined while it runs (in
-- the file or in the modules it requires) goes to that app's scope, and
-- every ref made then remembers it. Names defined outside any app load (a
-- spec, a module required before) go to the root scope, which every app
-- sees. A name is resolved in its scope, then the root; a ref or an app
-- lookup that finds neither takes a definition from another scope if there
-- is exactly one (a module two apps share belongs to the app that loaded it
-- first). One scope defining a name twice at two places is an error.

local scope_mt = {}
local function pack(...) return { n = select("#", ...), ... } end

local function new_scope(label)
  return setmetatable({ label = label, names = {}, defined_at = {}, exposed_list = {}, exposed_at = {} }, scope_mt)
end

local root = new_scope(nil)
local scopes, scope_list = {}, {} -- key -> scope; every scope but root, in creation order
local current = root              -- where definitions go now
local ref_scope = setmetatable({}, { __mode = "k" }) -- ref schema -> the scope it was made in

local function is_scope(v) return getmetatable(v) == scope_mt end

-- The scope `from` stands for: a scope, an app (its __schemas), a ref made
-- in a scope; nil for anything else.
local function scope_from(from)
  if type(from) ~= "table" then return nil end
  if is_scope(from) then return from end
  local s = ref_scope[from]
  if s then return s end
  s = rawget(from, "__schemas")
  if is_scope(s) then return s end
  return nil
end

-- The one definition of `name` outside `scope` and root, or nil (and why
-- when several scopes define it).
local function elsewhere(name, scope)
  local found, labels = nil, {}
  for _, other in ipairs(scope_list) do
    local sc = other ~= scope and other.names[name]
    if sc then
      found = found == nil and sc or false
      labels[#labels + 1] = other.label
    end
  end
  if found == false then
    return nil, format("schema name '%s' is defined by several apps (%s); look it up in one app's scope", name,
      concat(labels, ", "))
  end
  return found
end

-- name in scope, then root, then (fallback) a single definition elsewhere.
local function resolve(name, scope, fallback)
  local sc = scope.names[name]
  if sc then return sc end
  if scope ~= root then
    sc = root.names[name]
    if sc then return sc end
  end
  if fallback then return elsewhere(name, scope) end
  return nil
end

local C = compile_mod.new(function(name, ref) return resolve(name, ref_scope[ref] or root, true) end)
local compile, compiled = C.compile, C.cache

-- "file:line" of the function `level` frames above the caller.
local function where(level)
  local info = getinfo(level + 1, "Sl")
  if not info then return "?" end
  return info.short_src .. ":" .. (info.currentline or 0)
end

local function check_name(what, name, lvl)
  if type(name) ~= "string" or not find(name, "^[%a_][%w_]*$") then
    error(format("%s: the name must be an identifier (letters, digits, _), got %s", what,
      type(name) == "string" and format("%q", name) or type(name)), lvl + 1)
  end
  -- The same definition run again (an app file loaded twice, e.g. by a
  -- test client per spec) replaces the entry; another place is a clash.
  local at = current.defined_at[name]
  if at and at ~= where(lvl + 1) then
    error(format("schema name '%s' is already defined at %s%s", name, at,
      current.label and (" (both in app " .. current.label .. ")") or ""), lvl + 1)
  end
end

local function register(name, sc, at)
  current.names[name] = sc
  current.defined_at[name] = at
end

--- with_scope(key, fn, ...): run fn(...) with the names it defines (and
--- the refs it makes) in the scope `key` (an app file's path; created on
--- first use, the same one again after). Returns fn's results; restores
--- the previous scope also when fn raises.
function M.with_scope(key, fn, ...)
  if type(key) ~= "string" or key == "" then
    error("schema.with_scope(key, fn): key must be a non-empty string, got " .. type(key), 2)
  end
  if type(fn) ~= "function" then
    error("schema.with_scope(key, fn): fn must be a function, got " .. type(fn), 2)
  end
  local scope = scopes[key]
  if not scope then
    scope = new_scope(key)
    scopes[key] = scope
    scope_list[#scope_list + 1] = scope
  end
  local previous = current
  current = scope
  local res = pack(pcall(fn, ...))
  current = previous
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

--- The scope with key `key` (see with_scope), or nil.
function M.scope(key)
  return scopes[key]
end

--- lookup(name [, from]) -> the named object or enum, or nil (and a reason
--- when several apps define it). from: an app (loaded by runtime.load_app),
--- a scope, or a ref schema: its names, then the root's, then a single
--- definition elsewhere. Without from: while an app file loads, its names
--- and the root's; otherwise the root's, then a single definition anywhere.
function M.lookup(name, from)
  local scope = scope_from(from)
  if scope then return resolve(name, scope, true) end
  return resolve(name, current, current == root)
end

--- { lookup = fn(name), exposed = fn() } for one app (what jararaca.openapi
--- and jararaca.tsgen read).
function M.registry(app)
  local scope = scope_from(app) or root
  return {
    lookup = function(name) return (resolve(name, scope, true)) end,
    exposed = function() return M.exposed(scope) end,
  }
end

--- Every named schema (objects and enums) of `from` (as for lookup; default:
--- the app loading now, or the root) and of the root, sorted by name.
function M.named(from)
  local scope = scope_from(from) or current
  local by = {}
  for name, sc in pairs(root.names) do by[name] = sc end
  for name, sc in pairs(scope.names) do by[name] = sc end
  local names = {}
  for name in pairs(by) do names[#names + 1] = name end
  sort(names)
  local out = {}
  for i, name in ipairs(names) do out[i] = by[name] end
  return out
end

--- TEST-ONLY: forget every named schema and exposed type of every scope
-- (and the compiled validators), so specs can define "Task" again.
function M._reset_registry()
  root = new_scope(nil)
  scopes, scope_list = {}, {}
  current = root
  C.reset()
end

---------------------------------------------------------------------------
-- Schema objects
---------------------------------------------------------------------------

local Schema = {}
local schema_mt = { __index = Schema }
function schema_mt.__tostring(sc)
  local name = rawget(sc, "name")
  return "schema<" .. sc.kind .. (name and (" " .. name) or "") .. ">"
end

local function is_schema(v)
  return type(v) == "table" and getmetatable(v) == schema_mt
end
M.is_schema = is_schema

-- A schema is not callable, except one a framework module gave a
-- constructor (a j.Message type: `TaskCreated { id = 7 }` is a message).
local constructors = setmetatable({}, { __mode = "k" })

--- schema.set_constructor(sc, fn): `sc(...)` is then `fn(sc, ...)`.
function M.set_constructor(sc, fn)
  constructors[sc] = fn
end

function schema_mt.__call(sc, ...)
  local make = constructors[sc]
  if make == nil then error(format("%s is not callable (only a j.Message type is)", tostring(sc)), 2) end
  return make(sc, ...)
end

-- Every schema carries the field flags as booleans (readers need no nil checks).
local function new(kind, t)
  t.kind = kind
  t.is_optional = t.is_optional == true
  t.has_default = t.has_default == true
  return setmetatable(t, schema_mt)
end

local function copy_schema(sc)
  local t = {}
  for k, v in pairs(sc) do t[k] = v end
  ref_scope[t] = ref_scope[sc]
  return setmetatable(t, schema_mt)
end

local function show(v)
  if type(v) == "string" then return format("%q", v) end
  return tostring(v)
end

---------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------

local function is_count(v)
  if type(v) == "number" and v >= 0 and v % 1 == 0 and v < huge then return nil end
  return "a non-negative integer"
end

local function is_bound(v)
  if type(v) == "number" and v == v and v > -huge and v < huge then return nil end
  if type(v) == "cdata" and istype(int64_ct, v) then return nil end
  return "a finite number or an int64"
end

local function is_pattern(v)
  if type(v) ~= "string" then return "a string (a Lua pattern)" end
  local ok, err = pcall(find, "", v)
  if not ok then return "a valid Lua pattern (" .. tostring(err):gsub("^.-:%d+: ", "") .. ")" end
  return nil
end

local function is_type(t)
  return function(v)
    if type(v) == t then return nil end
    return "a " .. t
  end
end

local COMMON = {
  description = is_type("string"),
  title = is_type("string"),
  deprecated = is_type("boolean"),
  example = function() return nil end,
  examples = is_type("table"),
}

local NO_OPTS = {}
local STRING_OPTS = { min_length = is_count, max_length = is_count, pattern = is_pattern, format = is_type("string") }
local NUMBER_OPTS = { minimum = is_bound, maximum = is_bound, exclusive_minimum = is_bound, exclusive_maximum = is_bound }
local ARRAY_OPTS = { min_items = is_count, max_items = is_count }
local OBJECT_OPTS = {
  additional = function(v)
    if v == "drop" or v == "forbid" then return nil end
    return '"drop" or "forbid"'
  end,
}

-- Checks opts against COMMON + allowed; returns a new schema table holding
-- the common fields (description, title, deprecated, examples) and opts.
local function options(what, opts, allowed, lvl)
  local t = {}
  if opts == nil then return t, NO_OPTS end
  if type(opts) ~= "table" or is_schema(opts) then
    error(format("%s: options must be a table, got %s", what, is_schema(opts) and "a schema" or type(opts)), lvl + 1)
  end
  for k, v in pairs(opts) do
    local check = COMMON[k] or allowed[k]
    if not check then
      error(format("%s: unknown option %s", what, show(k)), lvl + 1)
    end
    local expected = check(v)
    if expected then
      error(format("%s: option %s must be %s, got %s", what, k, expected, show(v)), lvl + 1)
    end
  end
  t.description, t.title, t.deprecated = opts.description, opts.title, opts.deprecated
  if opts.examples ~= nil then
    local ex = setmetatable({}, array_mt)
    for i, x in ipairs(opts.examples) do ex[i] = x end
    t.examples = ex
  end
  if opts.example ~= nil then
    t.examples = t.examples or setmetatable({}, array_mt)
    insert(t.examples, opts.example)
  end
  return t, opts
end

local function check_range(what, opts, lo, hi, lvl)
  local a, b = opts[lo], opts[hi]
  if a ~= nil and b ~= nil and compile_mod.cmp(a, b) > 0 then
    error(format("%s: %s (%s) is greater than %s (%s)", what, lo, fmtnum(a), hi, fmtnum(b)), lvl + 1)
  end
end

local function check_schema(what, v, lvl)
  if not is_schema(v) then
    error(format("%s must be a schema, got %s", what, type(v)), lvl + 1)
  end
end

---------------------------------------------------------------------------
-- Scalars
---------------------------------------------------------------------------

--- s.string{min_length=, max_length=, pattern=, format=}
function M.string(opts)
  local t, o = options("schema.string", opts, STRING_OPTS, 2)
  check_range("schema.string", o, "min_length", "max_length", 2)
  t.min_length, t.max_length, t.pattern, t.format = o.min_length, o.max_length, o.pattern, o.format
  return new("string", t)
end

local function numeric(kind)
  local what = "schema." .. kind
  return function(opts)
    local t, o = options(what, opts, NUMBER_OPTS, 2)
    check_range(what, o, "minimum", "maximum", 2)
    t.minimum, t.maximum = o.minimum, o.maximum
    t.exclusive_minimum, t.exclusive_maximum = o.exclusive_minimum, o.exclusive_maximum
    return new(kind, t)
  end
end

--- s.integer{minimum=, maximum=, exclusive_minimum=, exclusive_maximum=}
M.integer = numeric("integer")
--- s.number{...}: same options as integer
M.number = numeric("number")

local function plain(kind)
  local what = "schema." .. kind
  return function(opts)
    local t = options(what, opts, NO_OPTS, 2)
    return new(kind, t)
  end
end

--- s.boolean(), s.uuid(), s.date(), s.datetime(), s.any() (common options only)
M.boolean = plain("boolean")
M.uuid = plain("uuid")
M.date = plain("date")
M.datetime = plain("datetime")
M.any = plain("any")

--- s.enum({"a", "b"} [, opts]) or s.enum("Status", {"open", "done"} [, opts]) (named)
function M.enum(a, b, c)
  local name, values, opts
  if type(a) == "string" then name, values, opts = a, b, c else values, opts = a, b end
  local what = name and format("schema.enum('%s')", name) or "schema.enum"
  if name then check_name(what, name, 2) end
  if type(values) ~= "table" or is_schema(values) or values[1] == nil then
    error(what .. ": values must be a non-empty list of strings", 2)
  end
  local list, seen = setmetatable({}, array_mt), {}
  for k in pairs(values) do
    if type(k) ~= "number" or k < 1 or k > #values or k % 1 ~= 0 then
      error(what .. ": values must be a list of strings, found key " .. show(k), 2)
    end
  end
  for i, v in ipairs(values) do
    if type(v) ~= "string" then error(format("%s: values[%d] must be a string, got %s", what, i, type(v)), 2) end
    if seen[v] then error(format("%s: value %q is listed twice", what, v), 2) end
    seen[v] = true
    list[i] = v
  end
  local t = options(what, opts, NO_OPTS, 2)
  t.name, t.values = name, list
  local sc = new("enum", t)
  if name then register(name, sc, where(2)) end
  return sc
end

--- s.literal(v [, opts]): exactly v (a string, finite number or boolean)
function M.literal(value, opts)
  local tv = type(value)
  if not (tv == "string" or tv == "boolean" or (tv == "number" and value == value and value > -huge and value < huge)) then
    error("schema.literal(v): v must be a string, a finite number or a boolean, got " .. show(value), 2)
  end
  local t = options("schema.literal", opts, NO_OPTS, 2)
  t.value = value
  return new("literal", t)
end

---------------------------------------------------------------------------
-- Containers
---------------------------------------------------------------------------

--- s.array(of [, {min_items=, max_items=}])
function M.array(of, opts)
  check_schema("schema.array(of): of", of, 2)
  local t, o = options("schema.array", opts, ARRAY_OPTS, 2)
  check_range("schema.array", o, "min_items", "max_items", 2)
  t.items, t.min_items, t.max_items = of, o.min_items, o.max_items
  return new("array", t)
end

--- s.map(of [, opts]): an object with arbitrary string keys, values of `of`
function M.map(of, opts)
  check_schema("schema.map(of): of", of, 2)
  local t = options("schema.map", opts, NO_OPTS, 2)
  t.values = of
  return new("map", t)
end

local function field_entry(name, sc)
  return {
    name = name, schema = sc, required = not sc.is_optional,
    has_default = sc.has_default == true, default = sc.default_value,
  }
end

-- Field list from the map form { name = schema } (sorted by name) or the
-- list form { {"name", schema}, ... } (declaration order).
local function parse_fields(what, fields, lvl)
  lvl = lvl + 1
  if type(fields) ~= "table" or is_schema(fields) then
    error(format("%s: fields must be a table { name = schema } or a list { {name, schema}, ... }, got %s",
      what, is_schema(fields) and "a schema" or type(fields)), lvl)
  end
  local list = {}
  if fields[1] ~= nil then
    local n = #fields
    for k in pairs(fields) do
      if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
        error(format("%s: fields mixes the list form with the key %s", what, show(k)), lvl)
      end
    end
    local seen = {}
    for i = 1, n do
      local e = fields[i]
      if type(e) ~= "table" or is_schema(e) then
        error(format("%s: fields[%d] must be { name, schema }, got %s", what, i, is_schema(e) and "a schema" or type(e)), lvl)
      end
      local name, sc = e[1], e[2]
      if type(name) ~= "string" or name == "" then
        error(format("%s: fields[%d][1] must be a field name (a non-empty string), got %s", what, i, show(name)), lvl)
      end
      if not is_schema(sc) then
        error(format("%s: field '%s' must be a schema, got %s", what, name, type(sc)), lvl)
      end
      if seen[name] then error(format("%s: field '%s' is declared twice", what, name), lvl) end
      seen[name] = true
      list[i] = field_entry(name, sc)
    end
  else
    local names = {}
    for k, v in pairs(fields) do
      if type(k) ~= "string" or k == "" then
        error(format("%s: field names must be non-empty strings, got %s", what, show(k)), lvl)
      end
      if not is_schema(v) then
        error(format("%s: field '%s' must be a schema, got %s", what, k, type(v)), lvl)
      end
      names[#names + 1] = k
    end
    sort(names)
    for i, name in ipairs(names) do list[i] = field_entry(name, fields[name]) end
  end
  return list
end

--- s.object("Task", fields [, opts]) (named, registered) or s.object(fields [, opts])
-- opts: common + additional = "drop" (default) | "forbid"
-- lvl: the level (as error()'s, from here) of the code defining it.
local function object(lvl, a, b, c)
  local name, fields, opts
  if type(a) == "string" then name, fields, opts = a, b, c else fields, opts = a, b end
  local what = name and format("schema.object('%s')", name) or "schema.object"
  if name then check_name(what, name, lvl) end
  local t, o = options(what, opts, OBJECT_OPTS, lvl)
  local list = parse_fields(what, fields, lvl)
  t.name, t.fields, t.own_fields, t.additional = name, list, list, o.additional or "drop"
  local sc = new("object", t)
  if name then register(name, sc, where(lvl)) end
  return sc
end

function M.object(a, b, c)
  local sc = object(3, a, b, c)
  return sc
end

--- schema.object_at(level, "Name", fields [, opts]): s.object for a
-- framework function defining an object on its caller's behalf (j.Message):
-- errors and the definition's place are `level` frames above that function
-- (as error()'s level: 2 = its caller).
function M.object_at(level, a, b, c)
  local sc = object(level + 2, a, b, c)
  return sc
end

--- s.extend(Base, "Name", fields [, opts]) or s.extend(Base, fields [, opts]):
-- an object with Base's fields first (a field redeclared here replaces the
-- base's, in the base's position), then the new ones.
function M.extend(base, a, b, c)
  if is_schema(base) and base.kind == "ref" then
    local target = resolve(base.name, ref_scope[base] or current, true)
    if not target then error(format("schema.extend: ref('%s') is not defined (yet)", base.name), 2) end
    base = target
  end
  if not is_schema(base) or base.kind ~= "object" then
    error("schema.extend(Base, ...): Base must be an object schema, got " ..
      (is_schema(base) and base.kind or type(base)), 2)
  end
  local name, fields, opts
  if type(a) == "string" then name, fields, opts = a, b, c else fields, opts = a, b end
  local what = name and format("schema.extend('%s')", name) or "schema.extend"
  if name then check_name(what, name, 2) end
  local t, o = options(what, opts, OBJECT_OPTS, 2)
  local own = parse_fields(what, fields, 2)
  local all, index = {}, {}
  for i, f in ipairs(base.fields) do
    all[i] = f
    index[f.name] = i
  end
  for _, f in ipairs(own) do
    local i = index[f.name]
    if i then all[i] = f else all[#all + 1] = f end
  end
  t.name, t.fields, t.own_fields, t.extends = name, all, own, base
  t.additional = o.additional or base.additional
  local sc = new("object", t)
  if name then register(name, sc, where(2)) end
  return sc
end

-- Field-level flags move to the wrapper: the outermost schema is the field.
local function carry_flags(t, inner)
  t.is_optional, t.has_default, t.default_value = inner.is_optional, inner.has_default, inner.default_value
end

--- s.nullable(x [, opts]): null or x. Idempotent.
function M.nullable(x, opts)
  check_schema("schema.nullable(x): x", x, 2)
  if x.kind == "nullable" and opts == nil then return x end
  local t = options("schema.nullable", opts, NO_OPTS, 2)
  t.of = x.kind == "nullable" and x.of or x
  carry_flags(t, x)
  return new("nullable", t)
end

--- s.one_of(a, b, ... [, opts]): the first variant that validates.
function M.one_of(...)
  local n = select("#", ...)
  local args = { ... }
  local opts
  if n > 0 and type(args[n]) == "table" and not is_schema(args[n]) then
    opts = args[n]
    n = n - 1
  end
  if n < 1 then error("schema.one_of(a, b, ...): at least one variant is needed", 2) end
  local variants = setmetatable({}, array_mt)
  for i = 1, n do
    check_schema(format("schema.one_of: variant %d", i), args[i], 2)
    variants[i] = args[i]
  end
  local t = options("schema.one_of", opts, NO_OPTS, 2)
  t.variants = variants
  return new("one_of", t)
end

--- s.ref("Task" [, opts]): the named object (resolved lazily: recursive types work).
function M.ref(name, opts)
  if type(name) ~= "string" or not find(name, "^[%a_][%w_]*$") then
    error("schema.ref(name): name must be a schema name, got " .. show(name), 2)
  end
  local t = options("schema.ref", opts, NO_OPTS, 2)
  t.name = name
  local sc = new("ref", t)
  ref_scope[sc] = current
  return sc
end

---------------------------------------------------------------------------
-- Validation
---------------------------------------------------------------------------

-- Prefix every error's loc with `prefix` (a string or a list).
local function prefix_errors(errs, prefix)
  if prefix == nil then return errs end
  if type(prefix) ~= "table" then prefix = { prefix } end
  local n = #prefix
  if n == 0 then return errs end
  for _, e in ipairs(errs) do
    local loc = e.loc
    for i = n, 1, -1 do insert(loc, 1, prefix[i]) end
  end
  return errs
end

local function missing_error()
  return setmetatable({ new_error("missing", "Field required") }, array_mt)
end

-- The expected failure of validate, encode and validate_fields
-- (docs/errors.md): nil, one sentence for people, "invalid", the errors.
local function invalid(errs)
  return nil, M.describe_errors(errs), "invalid", errs
end

--- schema:validate(v [, opts]) -> cleaned | nil, message, "invalid", errors.
-- opts.from_string: coerce strings for scalars (path/query/header values);
-- opts.loc: a prefix (string or list) for every error's loc.
-- A nil v gives the default if the schema has one, nil (and no errors) if it
-- is :optional(), else a "missing" error.
function Schema:validate(v, opts)
  local f = compiled[self] or compile(self)
  local fs, loc
  if opts ~= nil then
    if type(opts) ~= "table" then error("schema:validate(v, opts): opts must be a table, got " .. type(opts), 2) end
    fs, loc = opts.from_string, opts.loc
  end
  if v == nil then
    if self.has_default then return deep_copy(self.default_value) end
    if self.is_optional then return nil end
    return invalid(prefix_errors(missing_error(), loc))
  end
  local r, e = f(v, fs)
  if e then
    if loc then prefix_errors(e, loc) end
    return invalid(e)
  end
  return r
end

--- schema:encode(v [, opts]) -> JSON text | nil, message, "invalid", errors:
-- validate, then json.encode (field order and null/absent follow the schema).
function Schema:encode(v, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("schema:encode(v, opts): opts must be a table, got " .. type(opts), 2)
  end
  if v == nil and not self.has_default then
    return invalid(prefix_errors(missing_error(), opts and opts.loc))
  end
  local r, msg, code, e = Schema.validate(self, v, opts)
  if e then return nil, msg, code, e end
  local text, err = json.encode(r)
  if not text then
    return invalid(prefix_errors(setmetatable({ new_error("serialization_error", "Unable to serialize value: " .. tostring(err)) }, array_mt),
      opts and opts.loc))
  end
  return text
end

--- s.validate(schema, v [, opts]) and s.encode(schema, v [, opts]): function forms.
function M.validate(sc, v, opts)
  check_schema("schema.validate(schema, v): schema", sc, 2)
  return Schema.validate(sc, v, opts)
end
function M.encode(sc, v, opts)
  check_schema("schema.encode(schema, v): schema", sc, 2)
  return Schema.encode(sc, v, opts)
end

local EMPTY = {}
local group_fields = setmetatable({}, { __mode = "k" })

--- s.validate_fields(field_map, values [, opts]) -> cleaned table | nil, message, "invalid", errors.
-- field_map: { name = schema } (or the list form, or an object schema);
-- values: table of name -> value (strings, or lists of strings for arrays).
-- Strings are coerced (opts.from_string defaults to true here); errors'
-- loc = { opts.loc_prefix, name }. Unknown names are dropped.
function M.validate_fields(field_map, values, opts)
  local fields = group_fields[field_map]
  if not fields then
    if is_schema(field_map) then
      if field_map.kind ~= "object" then
        error("schema.validate_fields: expected a table { name = schema } or an object schema, got a " ..
          field_map.kind .. " schema", 2)
      end
      fields = field_map.fields
    else
      fields = parse_fields("schema.validate_fields", field_map, 2)
    end
    group_fields[field_map] = fields
  end
  local f = C.compile_group(fields, fields)
  if values == nil then values = EMPTY end
  local fs, prefix = true, nil
  if opts ~= nil then
    if type(opts) ~= "table" then error("schema.validate_fields: opts must be a table, got " .. type(opts), 2) end
    if opts.from_string == false then fs = false end
    prefix = opts.loc_prefix
    if prefix == nil then prefix = opts.loc end
  end
  local r, e = f(values, fs)
  if e then return invalid(prefix_errors(e, prefix)) end
  return r
end

--- One line for logs: "body.items[2].name: String should ... (string_too_long); ..."
function M.describe_errors(errs)
  if type(errs) ~= "table" then return tostring(errs) end
  local parts = {}
  for i, e in ipairs(errs) do
    local loc = {}
    for j, k in ipairs(e.loc or EMPTY) do
      if type(k) == "number" then
        loc[#loc + 1] = "[" .. fmtnum(k) .. "]"
      else
        loc[#loc + 1] = (j > 1 and "." or "") .. tostring(k)
      end
    end
    local l = concat(loc)
    parts[i] = (l ~= "" and (l .. ": ") or "") .. tostring(e.msg) .. " (" .. tostring(e.type) .. ")"
  end
  return concat(parts, "; ")
end

---------------------------------------------------------------------------
-- Modifiers (each returns a new schema)
---------------------------------------------------------------------------

local function check_self(self, method)
  if not is_schema(self) then
    error(format("schema:%s(): call it as a method (schema:%s(...))", method, method), 3)
  end
end

--- :optional(): the field may be absent (absent stays absent).
function Schema:optional()
  check_self(self, "optional")
  local c = copy_schema(self)
  c.is_optional = true
  return c
end

--- :default(v): absent -> a copy of v. v must validate (raises otherwise);
-- the cleaned v is stored.
function Schema:default(v)
  check_self(self, "default")
  if v == nil then error("schema:default(v): v is nil; use :optional() for a field that may be absent", 2) end
  local ok, r, _, _, e = pcall(Schema.validate, self, v)
  if not ok then error("schema:default(v): " .. tostring(r), 2) end
  if e then
    error(format("schema:default(%s): the default does not validate against %s: %s",
      show(v), tostring(self), M.describe_errors(e)), 2)
  end
  local c = copy_schema(self)
  c.is_optional, c.has_default, c.default_value = true, true, r
  return c
end

--- :nullable(): null or this schema (field flags move to the wrapper).
function Schema:nullable()
  check_self(self, "nullable")
  return M.nullable(self)
end

--- :describe(text): a copy with description = text.
function Schema:describe(text)
  check_self(self, "describe")
  if type(text) ~= "string" then error("schema:describe(text): text must be a string, got " .. type(text), 2) end
  local c = copy_schema(self)
  c.description = text
  return c
end

--- :example(v): a copy with v appended to examples.
function Schema:example(v)
  check_self(self, "example")
  if v == nil then error("schema:example(v): v is nil", 2) end
  local c = copy_schema(self)
  local ex = setmetatable({}, array_mt)
  for i, x in ipairs(self.examples or EMPTY) do ex[i] = x end
  ex[#ex + 1] = v
  c.examples = ex
  return c
end

---------------------------------------------------------------------------
-- Exposed types (ExposeType)
---------------------------------------------------------------------------

--- s.expose(schema) -> schema: include a named object or enum in the
-- TypeScript output of the app loading now (or of every app, outside a
-- load) even when no route uses it.
function M.expose(sc)
  if not is_schema(sc) or not (sc.kind == "object" or sc.kind == "enum") or sc.name == nil then
    error("schema.expose(schema): expected a named object or enum schema, got " ..
      (is_schema(sc) and tostring(sc) or type(sc)), 2)
  end
  -- by name: an app file loaded again exposes its new schema in place of the old
  local list = current.exposed_list
  local i = current.exposed_at[sc.name] or #list + 1
  current.exposed_at[sc.name] = i
  list[i] = sc
  return sc
end

--- s.exposed([from]) -> the schemas exposed by the root and by `from` (as
--- for lookup; default: the app loading now), in expose order.
function M.exposed(from)
  local scope = scope_from(from) or current
  local out = {}
  for _, sc in ipairs(root.exposed_list) do out[#out + 1] = sc end
  if scope ~= root then
    for _, sc in ipairs(scope.exposed_list) do out[#out + 1] = sc end
  end
  return out
end

M.Schema = Schema

return M
