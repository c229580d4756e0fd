-- jararaca.json: JSON for the framework, on the C codec jararaca.core.json
-- (bindings/l_json.c over core/json.c).
--
--   json.encode(v)        -> string | nil, message, code
--   json.decode(s)        -> value  | nil, message, code  (s not a string raises)
--   json.null             the JSON null (lightuserdata NULL, same as cjson.null)
--   json.array(t)         mark t as an array: an empty one encodes as []
--   json.array_mt         the metatable json.array sets; decoded arrays carry it
--   json.object_mt(keys)  a metatable for objects whose listed keys are
--                         encoded first, in that order (then any others)
--   json.is_array(t)
--   json.int64(v)         an exact int64_t cdata from a string or number
--
-- Decoding: objects -> plain tables, arrays -> tables with array_mt, null ->
-- json.null; integers up to 2^53 in magnitude -> numbers, larger ones ->
-- int64_t cdata (exact), other numbers -> doubles. Refused (code
-- "invalid_json"): bad syntax, strings that are not UTF-8, unpaired \u
-- surrogates, nesting deeper than 1000; (code "out_of_range") integers
-- beyond int64 and magnitudes beyond a double (1e400). Messages give the
-- 1-based byte position.
-- Encoding: integral numbers up to 2^53 print as integers, others with the
-- shortest digits that read back exactly; int64_t/uint64_t cdata print
-- exactly; a plain table is {} when empty, an array when its keys are exactly
-- 1..n, else an object (number keys become strings). Refused, with the path
-- of the value in the message: strings and keys that are not UTF-8 (code
-- "invalid_utf8"); NaN, infinities, functions, userdata, other cdata, other
-- key types and nesting deeper than 1000 or a cycle ("invalid").
-- docs/json.md has the rules.
local core = require "jararaca.core.json"
local ffi = require "ffi"

local type, setmetatable, getmetatable, ipairs, floor = type, setmetatable, getmetatable, ipairs, math.floor

local M = {
  encode = core.encode,
  decode = core.decode,
  null = core.null,
  array_mt = core.array_mt,
}

local array_mt = core.array_mt

function M.array(t)
  return setmetatable(t or {}, array_mt)
end

function M.is_array(t)
  return type(t) == "table" and getmetatable(t) == array_mt
end

function M.object_mt(keys)
  -- __order_set lets the encoder skip the listed keys in one lookup each.
  local set = {}
  for _, k in ipairs(keys) do set[k] = true end
  return { __jsontype = "object", __order = keys, __order_set = set }
end

-- Another module may have declared strtoll already; that is fine.
pcall(ffi.cdef, [[ long long strtoll(const char *s, char **end, int base); ]])
local C = ffi.C
local int64_t = ffi.typeof("int64_t")

-- The decoder has already checked the literal fits int64_t.
core.set_int64_factory(function(s) return C.strtoll(s, nil, 10) end)

local ERANGE = 34
function M.int64(v)
  local t = type(v)
  if t == "string" then
    if not v:find("^%s*[-+]?%d+%s*$") then error("json.int64: not an integer: " .. v, 2) end
    ffi.errno(0)
    local r = C.strtoll(v, nil, 10)
    if ffi.errno() == ERANGE then error("json.int64: out of range: " .. v, 2) end
    return r
  elseif t == "number" then
    if v ~= floor(v) or v < -2 ^ 63 or v >= 2 ^ 63 then
      error("json.int64: not an int64 value: " .. tostring(v), 2)
    end
    return int64_t(v)
  elseif t == "cdata" then
    return int64_t(v)
  end
  error("json.int64: expected a string or a number, got " .. t, 2)
end

return M
