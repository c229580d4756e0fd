--- jararaca.schema.compile: turns a schema (the plain tables of
-- docs/schema-model.md) into a validator closure (internal to jararaca.schema).
--
--   local C = require("jararaca.schema.compile").new(resolve)
--   local fn = C.compile(schema)      -- cached per schema table
--   local value, errs = fn(v, from_string)
--
-- A validator returns the cleaned value, or nil and a list of errors whose
-- `loc` is relative to the value it was given; containers prepend their key
-- (so the success path allocates nothing but the output). `v` is never nil.
-- `resolve(name, ref)` returns the named schema for the `ref` schema (looked
-- up lazily, on the first value that reaches the ref, so recursive types
-- compile), or nil and why.
-- @module jararaca.schema.compile
local ffi = require "ffi"
local json = require "jararaca.json"
local formats = require "jararaca.schema.formats"

local M = {}

local type, pairs, ipairs, next, setmetatable, getmetatable, tostring, tonumber, error =
  type, pairs, ipairs, next, setmetatable, getmetatable, tostring, tonumber, error
local format, find, gsub, lower = string.format, string.find, string.gsub, string.lower
local concat, insert = table.concat, table.insert
local huge, floor = math.huge, math.floor
local istype, cast = ffi.istype, ffi.cast
local load, assert = loadstring or load, assert
local new_table = require "table.new"

local null = json.null
local array_mt = json.array_mt
local int64_ct = ffi.typeof("int64_t")
local uint64_ct = ffi.typeof("uint64_t")
local MAX_SAFE = 9007199254740992 -- 2^53
local TWO63 = 9223372036854775808 -- 2^63 (exact as a double)
local MAX_I64_U = ffi.new("uint64_t", 0x7fffffffffffffffULL)

local parse_uuid, parse_date, parse_datetime = formats.uuid, formats.date, formats.datetime
local datetime_from_unix, integer_string, number_string, utf8_len =
  formats.datetime_from_unix, formats.integer_string, formats.number_string, formats.utf8_len

---------------------------------------------------------------------------
-- Errors
---------------------------------------------------------------------------

--- Metatable of error tables: encodes as {"type":..,"loc":[..],"msg":..}.
local err_mt = json.object_mt({ "type", "loc", "msg" })
M.err_mt = err_mt

local function new_error(typ, msg, loc)
  return setmetatable({ type = typ, loc = setmetatable(loc or {}, array_mt), msg = msg }, err_mt)
end
M.new_error = new_error

local function fail(typ, msg)
  return nil, setmetatable({ new_error(typ, msg) }, array_mt)
end
M.fail = fail

-- Prefix every error of `errs` with key and append them to `into` (created
-- when nil); returns into.
local function merge(into, errs, key)
  if not into then into = setmetatable({}, array_mt) end
  local n = #into
  for i = 1, #errs do
    local e = errs[i]
    insert(e.loc, 1, key)
    into[n + i] = e
  end
  return into
end
M.merge = merge

local function push(into, e)
  if not into then into = setmetatable({}, array_mt) end
  into[#into + 1] = e
  return into
end

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

--- A number or int64 for messages: 3, 2.5, 9007199254740993.
local function fmtnum(v)
  if type(v) == "cdata" then return (gsub(tostring(v), "U?LL$", "")) end
  if v % 1 == 0 and v > -1e15 and v < 1e15 then return format("%d", v) end
  return tostring(v)
end
M.fmtnum = fmtnum

-- Exact three-way comparison of numbers and int64 cdata (bounds checks on
-- values beyond 2^53). -1, 0, 1.
local function cmp(a, b)
  local ta, tb = type(a), type(b)
  if ta == "number" and tb == "number" then
    return a < b and -1 or (a > b and 1 or 0)
  end
  if ta == "number" then return -cmp(b, a) end
  if tb == "cdata" then
    return a < b and -1 or (a > b and 1 or 0)
  end
  -- a int64, b number
  if b >= TWO63 then return -1 end
  if b < -TWO63 then return 1 end
  local fb = floor(b)
  local ib = int64_ct(fb)
  if a < ib then return -1 end
  if a > ib then return 1 end
  return fb == b and 0 or -1
end
M.cmp = cmp

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return setmetatable(t, getmetatable(v))
end
M.deep_copy = deep_copy

local function is_object_like(v)
  -- a table that is not a JSON array
  local mt = getmetatable(v)
  if mt == array_mt then return false end
  if v[1] ~= nil then return false end
  return true
end

-- Human name of a schema for union messages.
local function short_name(sc)
  local k = sc.kind
  if k == "object" then return sc.name or "object" end
  if k == "ref" then return sc.name end
  if k == "enum" then return sc.name or "enum" end
  if k == "nullable" then return short_name(sc.of) .. " or null" end
  if k == "array" then return "array of " .. short_name(sc.items) end
  if k == "map" then return "map of " .. short_name(sc.values) end
  if k == "literal" then
    return type(sc.value) == "string" and format("'%s'", sc.value) or tostring(sc.value)
  end
  return k
end
M.short_name = short_name

local function quote_list(values, fmt)
  local parts = {}
  for i = 1, #values do parts[i] = fmt(values[i]) end
  if #parts == 1 then return parts[1] end
  return concat(parts, ", ", 1, #parts - 1) .. " or " .. parts[#parts]
end

local function show_literal(v)
  if type(v) == "string" then return format("'%s'", v) end
  if type(v) == "number" then return fmtnum(v) end
  return tostring(v)
end

---------------------------------------------------------------------------
-- Bounds (integer and number)
---------------------------------------------------------------------------

-- Returns nil when the schema has no bounds, else check(v) -> nil | type, msg.
local function make_bounds(sc)
  local ge, le, gt, lt = sc.minimum, sc.maximum, sc.exclusive_minimum, sc.exclusive_maximum
  if ge == nil and le == nil and gt == nil and lt == nil then return nil end
  local m_ge = ge ~= nil and "Input should be greater than or equal to " .. fmtnum(ge)
  local m_le = le ~= nil and "Input should be less than or equal to " .. fmtnum(le)
  local m_gt = gt ~= nil and "Input should be greater than " .. fmtnum(gt)
  local m_lt = lt ~= nil and "Input should be less than " .. fmtnum(lt)
  local all_numbers = type(ge) ~= "cdata" and type(le) ~= "cdata" and type(gt) ~= "cdata" and type(lt) ~= "cdata"
  return function(v)
    if all_numbers and type(v) == "number" then
      if ge and v < ge then return "greater_than_equal", m_ge end
      if gt and v <= gt then return "greater_than", m_gt end
      if le and v > le then return "less_than_equal", m_le end
      if lt and v >= lt then return "less_than", m_lt end
    else
      if ge and cmp(v, ge) < 0 then return "greater_than_equal", m_ge end
      if gt and cmp(v, gt) <= 0 then return "greater_than", m_gt end
      if le and cmp(v, le) > 0 then return "less_than_equal", m_le end
      if lt and cmp(v, lt) >= 0 then return "less_than", m_lt end
    end
    return nil
  end
end

---------------------------------------------------------------------------
-- Kinds
---------------------------------------------------------------------------

local MSG_STRING = "Input should be a valid string"
local MSG_INT = "Input should be a valid integer"
local MSG_INT_PARSING = "Input should be a valid integer, unable to parse string as an integer"
local MSG_INT_FLOAT = "Input should be a valid integer, got a number with a fractional part"
local MSG_INT_SIZE = "Unable to parse input as an integer, exceeded maximum size"
local MSG_FINITE = "Input should be a finite number"
local MSG_NUMBER = "Input should be a valid number"
local MSG_NUMBER_PARSING = "Input should be a valid number, unable to parse string as a number"
local MSG_BOOL = "Input should be a valid boolean"
local MSG_BOOL_PARSING = "Input should be a valid boolean, unable to interpret input"
local MSG_UUID_TYPE = "UUID input should be a string"
local MSG_UUID = "Input should be a valid UUID"
local MSG_DATE_TYPE = "Input should be a valid date"
local MSG_DATETIME_TYPE = "Input should be a valid datetime"
local MSG_LIST = "Input should be a valid list"
local MSG_DICT = "Input should be a valid dictionary"
local MSG_MISSING = "Field required"
local MSG_EXTRA = "Extra inputs are not permitted"

local BOOL_STRINGS = {
  ["true"] = true, ["false"] = false, ["1"] = true, ["0"] = false,
  yes = true, no = false, on = true, off = false, t = true, f = false, y = true, n = false,
}

local builders = {}

function builders.any()
  return function(v) return v end
end

function builders.string(sc)
  local minl, maxl, pat = sc.min_length, sc.max_length, sc.pattern
  if not minl and not maxl and not pat then
    return function(v)
      if type(v) == "string" then return v end
      return fail("string_type", MSG_STRING)
    end
  end
  local m_short = minl and format("String should have at least %d character%s", minl, minl == 1 and "" or "s")
  local m_long = maxl and format("String should have at most %d character%s", maxl, maxl == 1 and "" or "s")
  local m_pat = pat and format("String should match pattern '%s'", pat)
  return function(v)
    if type(v) ~= "string" then return fail("string_type", MSG_STRING) end
    if minl or maxl then
      local n = #v
      -- bytes >= code points; count them only when the byte count is not conclusive
      if (maxl and n > maxl) or (minl and n < minl * 4) then n = utf8_len(v) end
      if minl and n < minl then return fail("string_too_short", m_short) end
      if maxl and n > maxl then return fail("string_too_long", m_long) end
    end
    if pat and not find(v, pat) then return fail("string_pattern_mismatch", m_pat) end
    return v
  end
end

-- int64 / uint64 cdata -> exact integer value (number when |v| <= 2^53,
-- else int64 cdata), or nil, type, msg
local function int_from_cdata(v)
  if not istype(int64_ct, v) then
    if not istype(uint64_ct, v) then return nil, "int_type", MSG_INT end
    if v > MAX_I64_U then return nil, "int_parsing_size", MSG_INT_SIZE end
    v = cast(int64_ct, v)
  end
  if v >= -MAX_SAFE and v <= MAX_SAFE then return tonumber(v) end
  return v
end

function builders.integer(sc)
  local bounds = make_bounds(sc)
  return function(v, fs)
    local t = type(v)
    if t == "number" then
      if v % 1 ~= 0 then
        if v ~= v or v == huge or v == -huge then return fail("finite_number", MSG_FINITE) end
        return fail("int_from_float", MSG_INT_FLOAT)
      end
      if v > MAX_SAFE or v < -MAX_SAFE then
        if v >= TWO63 or v < -TWO63 then return fail("int_parsing_size", MSG_INT_SIZE) end
        v = int64_ct(v)
      end
    elseif t == "cdata" then
      local r, typ, msg = int_from_cdata(v)
      if r == nil then return fail(typ, msg) end
      v = r
    elseif fs and t == "string" then
      local r, typ = integer_string(v)
      if r == nil then return fail(typ, typ == "int_parsing" and MSG_INT_PARSING or MSG_INT_SIZE) end
      v = r
    else
      return fail("int_type", MSG_INT)
    end
    if bounds then
      local typ, msg = bounds(v)
      if typ then return fail(typ, msg) end
    end
    return v
  end
end

function builders.number(sc)
  local bounds = make_bounds(sc)
  return function(v, fs)
    local t = type(v)
    if t == "number" then
      if v ~= v or v == huge or v == -huge then return fail("finite_number", MSG_FINITE) end
    elseif t == "cdata" then
      local r, typ = int_from_cdata(v)
      if r == nil then return fail(typ == "int_type" and "float_type" or typ, typ == "int_type" and MSG_NUMBER or MSG_INT_SIZE) end
      if type(r) == "cdata" then
        local d = tonumber(r)
        if d < TWO63 and d >= -TWO63 and int64_ct(d) == r then r = d end
      end
      v = r
    elseif fs and t == "string" then
      local r = number_string(v)
      if r == nil then return fail("float_parsing", MSG_NUMBER_PARSING) end
      if r % 1 == 0 and (r >= MAX_SAFE or r <= -MAX_SAFE) then
        -- a long digit string: keep it exact when it is an int64
        local i = integer_string(v)
        if i ~= nil then r = i end
      end
      v = r
    else
      return fail("float_type", MSG_NUMBER)
    end
    if bounds then
      local typ, msg = bounds(v)
      if typ then return fail(typ, msg) end
    end
    return v
  end
end

function builders.boolean()
  return function(v, fs)
    if v == true or v == false then return v end
    if fs and type(v) == "string" then
      local b = BOOL_STRINGS[lower(v)]
      if b ~= nil then return b end
      return fail("bool_parsing", MSG_BOOL_PARSING)
    end
    return fail("bool_type", MSG_BOOL)
  end
end

function builders.uuid()
  return function(v)
    if type(v) ~= "string" then return fail("uuid_type", MSG_UUID_TYPE) end
    local r = parse_uuid(v)
    if r == nil then return fail("uuid_parsing", MSG_UUID) end
    return r
  end
end

function builders.date()
  return function(v)
    if type(v) ~= "string" then return fail("date_type", MSG_DATE_TYPE) end
    local r, why = parse_date(v)
    if r == nil then return fail("date_parsing", "Input should be a valid date in the format YYYY-MM-DD, " .. why) end
    return r
  end
end

function builders.datetime()
  return function(v, fs)
    local t = type(v)
    local r, why
    if t == "string" then
      r, why = parse_datetime(v)
      if r == nil and fs then
        local n = number_string(v)
        if n then r, why = datetime_from_unix(n) end
      end
    elseif t == "number" then
      r, why = datetime_from_unix(v)
    else
      return fail("datetime_type", MSG_DATETIME_TYPE)
    end
    if r == nil then return fail("datetime_parsing", "Input should be a valid datetime, " .. why) end
    return r
  end
end

function builders.enum(sc)
  local set = {}
  for _, x in ipairs(sc.values) do set[x] = true end
  local msg = "Input should be " .. quote_list(sc.values, show_literal)
  return function(v)
    if type(v) == "string" and set[v] then return v end
    return fail("enum", msg)
  end
end

function builders.literal(sc)
  local value = sc.value
  local vt = type(value)
  local msg = "Input should be " .. show_literal(value)
  return function(v, fs)
    local t = type(v)
    if t == vt then
      if v == value then return value end
    elseif t == "cdata" and vt == "number" then
      if istype(int64_ct, v) and v == value then return value end
    elseif fs and t == "string" then
      if vt == "number" then
        if number_string(v) == value then return value end
      elseif vt == "boolean" then
        local b = BOOL_STRINGS[lower(v)]
        if b == value then return value end
      end
    end
    return fail("literal_error", msg)
  end
end

local function compile_items(compile, sc)
  local item = compile(sc.items)
  local minn, maxn = sc.min_items, sc.max_items
  local m_short = minn and format("List should have at least %d item%s after validation, not ", minn, minn == 1 and "" or "s")
  local m_long = maxn and format("List should have at most %d item%s after validation, not ", maxn, maxn == 1 and "" or "s")
  return function(v, fs)
    if type(v) ~= "table" then
      if fs and type(v) == "string" then
        v = { v }
      else
        return fail("list_type", MSG_LIST)
      end
    elseif getmetatable(v) ~= array_mt and v[1] == nil and next(v) ~= nil then
      return fail("list_type", MSG_LIST)
    end
    local n = #v
    local out = setmetatable({}, array_mt)
    local errs
    for i = 1, n do
      local r, e = item(v[i], fs)
      if e then errs = merge(errs, e, i) else out[i] = r end
    end
    if minn and n < minn then errs = push(errs, new_error("too_short", m_short .. n)) end
    if maxn and n > maxn then errs = push(errs, new_error("too_long", m_long .. n)) end
    if errs then return nil, errs end
    return out
  end
end

local function compile_map(compile, sc)
  local value = compile(sc.values)
  local map_mt = json.object_mt({})
  return function(v, fs)
    if type(v) ~= "table" or not is_object_like(v) then return fail("dict_type", MSG_DICT) end
    local out = setmetatable({}, map_mt)
    local errs
    for k, x in pairs(v) do
      if type(k) ~= "string" then
        errs = push(errs, new_error("string_type", MSG_STRING, { k, "[key]" }))
      else
        local r, e = value(x, fs)
        if e then errs = merge(errs, e, k) else out[k] = r end
      end
    end
    if errs then return nil, errs end
    return out
  end
end

-- Source of the generated object validator: one unrolled block per field,
-- so every call site sees a single validator (monomorphic for the JIT) and
-- plain strings / booleans are checked inline.
local function fields_source(fields, inline)
  local out = {
    "local F, D, CD, type, setmetatable, new_table, deep_copy, push, merge, new_error, fail,",
    "  is_object_like, pairs, known, forbid, mt, MISSING, EXTRA, STRING, BOOL, TYPE_CODE, TYPE_MSG = ...",
    "return function(v, fs)",
    "  if type(v) ~= 'table' or not is_object_like(v) then return fail(TYPE_CODE, TYPE_MSG) end",
    "  local out = setmetatable(new_table(0, " .. #fields .. "), mt)",
    "  local errs, x, r, e",
  }
  for i, f in ipairs(fields) do
    local key = format("%q", f.name)
    out[#out + 1] = "  x = v[" .. key .. "]"
    out[#out + 1] = "  if x == nil then"
    if f.has_default then
      if type(f.default) == "table" then
        out[#out + 1] = "    out[" .. key .. "] = deep_copy(D[" .. i .. "])"
      else
        out[#out + 1] = "    out[" .. key .. "] = D[" .. i .. "]"
      end
    elseif f.required then
      out[#out + 1] = "    errs = push(errs, new_error('missing', MISSING, { " .. key .. " }))"
    end
    local kind = inline[i]
    if kind == "string" then
      out[#out + 1] = "  elseif type(x) == 'string' then out[" .. key .. "] = x"
      out[#out + 1] = "  else errs = push(errs, new_error('string_type', STRING, { " .. key .. " }))"
    elseif kind == "boolean" then
      out[#out + 1] = "  elseif x == true or x == false then out[" .. key .. "] = x"
      out[#out + 1] = "  elseif fs then r, e = F[" .. i .. "](x, fs)"
      out[#out + 1] = "    if e then errs = merge(errs, e, " .. key .. ") else out[" .. key .. "] = r end"
      out[#out + 1] = "  else errs = push(errs, new_error('bool_type', BOOL, { " .. key .. " }))"
    else
      out[#out + 1] = "  else"
      out[#out + 1] = "    r, e = F[" .. i .. "](x, fs)"
      out[#out + 1] = "    if e then errs = merge(errs, e, " .. key .. ") else out[" .. key .. "] = r end"
    end
    out[#out + 1] = "  end"
  end
  out[#out + 1] = [[
  if forbid then
    for k in pairs(v) do
      if not known[k] then errs = push(errs, new_error('extra_forbidden', EXTRA, { k })) end
    end
  end
  if errs then return nil, errs end
  return out
end]]
  return concat(out, "\n")
end

-- Plain scalar schemas checked inline by the generated code.
local function inline_kind(sc)
  local k = sc.kind
  if k == "string" and not sc.min_length and not sc.max_length and not sc.pattern then return "string" end
  if k == "boolean" then return "boolean" end
  return nil
end

local MAX_UNROLLED = 150

--- The validator of a list of object field entries ({name, schema, required,
-- has_default, default}). mt: metatable of the output (nil: plain table);
-- additional: "drop" | "forbid"; type_code / type_msg: the error for a
-- non-object input.
local function compile_fields(compile, fields, mt, additional, type_code, type_msg)
  local n = #fields
  local names, fns, required, defaults, copy_default, inline = {}, {}, {}, {}, {}, {}
  local known = {}
  for i = 1, n do
    local f = fields[i]
    names[i] = f.name
    known[f.name] = true
    fns[i] = compile(f.schema)
    required[i] = f.required
    inline[i] = inline_kind(f.schema)
    if f.has_default then
      defaults[i] = f.default
      copy_default[i] = type(f.default) == "table"
    end
  end
  local forbid = additional == "forbid"
  if n <= MAX_UNROLLED then
    local chunk = assert(load(fields_source(fields, inline), "=jararaca.schema(object validator)"))
    return chunk(fns, defaults, copy_default, type, setmetatable, new_table, deep_copy, push, merge,
      new_error, fail, is_object_like, pairs, known, forbid, mt, MSG_MISSING, MSG_EXTRA, MSG_STRING,
      MSG_BOOL, type_code, type_msg)
  end
  return function(v, fs)
    if type(v) ~= "table" or not is_object_like(v) then return fail(type_code, type_msg) end
    local out = setmetatable(new_table(0, n), mt)
    local errs
    for i = 1, n do
      local name = names[i]
      local x = v[name]
      if x == nil then
        local d = defaults[i]
        if d ~= nil then
          if copy_default[i] then d = deep_copy(d) end
          out[name] = d
        elseif required[i] then
          errs = push(errs, new_error("missing", MSG_MISSING, { name }))
        end
      else
        local r, e = fns[i](x, fs)
        if e then errs = merge(errs, e, name) else out[name] = r end
      end
    end
    if forbid then
      for k in pairs(v) do
        if not known[k] then errs = push(errs, new_error("extra_forbidden", MSG_EXTRA, { k })) end
      end
    end
    if errs then return nil, errs end
    return out
  end
end
M.compile_fields = compile_fields

-- One json.object_mt per object schema: keyed by its (shared, immutable)
-- `fields` list so modifier copies of an object share it.
local object_mts = setmetatable({}, { __mode = "k" })

--- The json metatable for objects validated by `sc` (an object schema).
local function object_mt(sc)
  local mt = object_mts[sc.fields]
  if not mt then
    local keys = {}
    for i, f in ipairs(sc.fields) do keys[i] = f.name end
    mt = json.object_mt(keys)
    object_mts[sc.fields] = mt
  end
  return mt
end
M.object_mt = object_mt

---------------------------------------------------------------------------
-- Compiler
---------------------------------------------------------------------------

--- A compiler bound to `resolve(name, ref) -> schema | nil, why` (for refs).
function M.new(resolve)
  local C = {}
  local cache = setmetatable({}, { __mode = "k" })
  local compile

  local kind_builders = setmetatable({
    array = function(sc) return compile_items(compile, sc) end,
    map = function(sc) return compile_map(compile, sc) end,
    object = function(sc)
      local what = sc.name and ("Input should be a valid dictionary or instance of " .. sc.name) or MSG_DICT
      return compile_fields(compile, sc.fields, object_mt(sc), sc.additional, "model_type", what)
    end,
    nullable = function(sc)
      local inner = compile(sc.of)
      return function(v, fs)
        if v == null then return v end
        return inner(v, fs)
      end
    end,
    one_of = function(sc)
      local fns, names = {}, {}
      for i, variant in ipairs(sc.variants) do
        fns[i] = compile(variant)
        names[i] = short_name(variant)
      end
      local n = #fns
      local msg = "Input should match one of: " .. concat(names, ", ")
      return function(v, fs)
        for i = 1, n do
          local r, e = fns[i](v, fs)
          if not e then return r end
        end
        return fail("union_no_match", msg)
      end
    end,
    ref = function(sc)
      local name, target = sc.name, nil
      return function(v, fs)
        local f = target
        if not f then
          local s, why = resolve(name, sc)
          if not s then
            error(format("jararaca.schema: ref('%s'): %s", name, why or format("no schema named '%s' is defined", name)), 0)
          end
          f = compile(s)
          target = f
        end
        return f(v, fs)
      end
    end,
  }, { __index = builders })

  function compile(sc)
    local f = cache[sc]
    if f then return f end
    local b = kind_builders[sc.kind]
    if not b then error("jararaca.schema: cannot compile a schema of kind " .. tostring(sc.kind), 0) end
    f = b(sc)
    cache[sc] = f
    return f
  end
  C.compile = compile
  C.cache = cache

  --- Validator of a list of field entries, plain table output (parameter groups).
  local fields_cache = setmetatable({}, { __mode = "k" })
  function C.compile_group(key, fields)
    local f = fields_cache[key]
    if f then return f end
    f = compile_fields(compile, fields, nil, "drop", "dict_type", MSG_DICT)
    fields_cache[key] = f
    return f
  end

  function C.reset()
    for k in pairs(cache) do cache[k] = nil end
    for k in pairs(fields_cache) do fields_cache[k] = nil end
  end

  return C
end

return M
