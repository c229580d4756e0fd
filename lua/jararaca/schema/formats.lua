--- jararaca.schema.formats: parsers for the string formats and numbers the
-- schema validators accept (internal to jararaca.schema).
--
--   uuid(s)          -> lower-case 8-4-4-4-12 string | nil
--   date(s)          -> s | nil, reason
--   datetime(s)      -> normalised RFC 3339 string | nil, reason
--   datetime_from_unix(secs) -> RFC 3339 UTC string | nil, reason
--   integer_string(s) -> exact integer (number, or int64 cdata beyond 2^53) | nil, "int_parsing" | "int_parsing_size"
--   number_string(s) -> number | nil
--   utf8_len(s)      -> number of code points
-- @module jararaca.schema.formats
local ffi = require "ffi"

local M = {}

local find, match, lower, byte, sub, format, gsub =
  string.find, string.match, string.lower, string.byte, string.sub, string.format, string.gsub
local tonumber, floor, huge = tonumber, math.floor, math.huge

local int64_ct = ffi.typeof("int64_t")
local int64 = require("jararaca.json").int64

local MAX_SAFE = 9007199254740992 -- 2^53

---------------------------------------------------------------------------
-- UUID
---------------------------------------------------------------------------

-- Byte loops rather than patterns: string.find with a pattern is not
-- compiled by the JIT and would abort the caller's trace.

-- byte -> 1 (0-9 a-f), 2 (A-F), 3 ("-"); position -> expected class
local CLASS, EXPECT = {}, {}
for c = 48, 57 do CLASS[c] = 1 end
for c = 97, 102 do CLASS[c] = 1; CLASS[c - 32] = 2 end
CLASS[45] = 3
for i = 1, 36 do EXPECT[i] = 1 end
EXPECT[9], EXPECT[14], EXPECT[19], EXPECT[24] = 3, 3, 3, 3

--- A UUID in canonical (hyphenated, 36 chars) or compact (32 hex digits)
-- form, returned lower-case and hyphenated; nil when malformed.
function M.uuid(s)
  local n = #s
  if n == 36 then
    local upper = false
    for i = 1, 36 do
      local c = CLASS[byte(s, i)]
      if c ~= EXPECT[i] then
        if c == 2 and EXPECT[i] == 1 then upper = true else return nil end
      end
    end
    if upper then return lower(s) end
    return s
  elseif n == 32 then
    for i = 1, 32 do
      local c = CLASS[byte(s, i)]
      if c ~= 1 and c ~= 2 then return nil end
    end
    s = lower(s)
    return sub(s, 1, 8) .. "-" .. sub(s, 9, 12) .. "-" .. sub(s, 13, 16) .. "-" ..
      sub(s, 17, 20) .. "-" .. sub(s, 21, 32)
  end
  return nil
end

---------------------------------------------------------------------------
-- Dates and times
---------------------------------------------------------------------------

local DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function days_in(y, m)
  if m == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then return 29 end
  return DAYS[m]
end

-- y, m, d numbers: nil or reason
local function check_date(y, m, d)
  if y < 1 then return "year value is outside expected range" end
  if m < 1 or m > 12 then return "month value is outside expected range" end
  if d < 1 or d > days_in(y, m) then return "day value is outside expected range" end
  return nil
end

-- Value of the 2 / 4 decimal digits at s[i..], or nil.
local function d2(s, i)
  local a, b = byte(s, i, i + 1)
  if not b or a < 48 or a > 57 or b < 48 or b > 57 then return nil end
  return (a - 48) * 10 + b - 48
end
local function d4(s, i)
  local hi, lo = d2(s, i), d2(s, i + 2)
  if not hi or not lo then return nil end
  return hi * 100 + lo
end

-- "YYYY-MM-DD" at the start of s: nil or reason
local function date_prefix(s)
  local y, m, d = d4(s, 1), d2(s, 6), d2(s, 9)
  if not (y and m and d and byte(s, 5) == 45 and byte(s, 8) == 45) then
    if #s < 10 then return "input is too short" end
    return "invalid format"
  end
  return check_date(y, m, d)
end

--- A calendar date "YYYY-MM-DD": returns s, or nil and a reason.
function M.date(s)
  local why = date_prefix(s)
  if why then return nil, why end
  if #s ~= 10 then return nil, "unexpected extra characters at the end of the input" end
  return s
end

--- An RFC 3339 date-time ("2026-11-27T21:00:00Z", "...T21:00:00.123+02:00"):
-- returns the string normalised ('t' / ' ' -> 'T', 'z' -> 'Z'), or nil and
-- a reason. A timezone (Z or +hh:mm / -hh:mm) is required; seconds 00..59.
function M.datetime(s)
  local n = #s
  local why = date_prefix(s)
  if why then return nil, why end
  if n == 10 then return nil, "input is too short" end
  local sep = byte(s, 11)
  if sep ~= 84 and sep ~= 116 and sep ~= 32 then return nil, "invalid date separator, expected `T`" end
  local h, mi, se = d2(s, 12), d2(s, 15), d2(s, 18)
  if not (h and mi and se and byte(s, 14) == 58 and byte(s, 17) == 58) then
    if n < 19 then return nil, "input is too short" end
    return nil, "invalid format"
  end
  if h > 23 then return nil, "hour value is outside expected range" end
  if mi > 59 then return nil, "minute value is outside expected range" end
  if se > 59 then return nil, "second value is outside expected range" end
  local i = 20
  if byte(s, i) == 46 then -- "."
    local j = i + 1
    while true do
      local c = byte(s, j)
      if not c or c < 48 or c > 57 then break end
      j = j + 1
    end
    if j == i + 1 or j - i - 1 > 9 then return nil, "invalid fraction of a second" end
    i = j
  end
  local tz = byte(s, i)
  local lower_z = false
  if tz == nil then return nil, "timezone offset is required" end
  if tz == 90 or tz == 122 then -- Z z
    if n ~= i then return nil, "invalid timezone offset" end
    lower_z = tz == 122
  elseif tz == 43 or tz == 45 then -- + -
    local oh, om = d2(s, i + 1), d2(s, i + 4)
    if not (oh and om and byte(s, i + 3) == 58 and n == i + 5) then return nil, "invalid timezone offset" end
    if oh > 23 or om > 59 then return nil, "timezone offset is outside expected range" end
  else
    return nil, "invalid timezone offset"
  end
  if sep ~= 84 or lower_z then
    s = sub(s, 1, 10) .. "T" .. sub(s, 12, lower_z and n - 1 or n) .. (lower_z and "Z" or "")
  end
  return s
end

-- Days since 1970-01-01 -> y, m, d (proleptic Gregorian; H. Hinnant's algorithm).
local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in Unix seconds
local MIN_UNIX, MAX_UNIX = -62135596800, 253402300799

--- Unix time in seconds (fraction kept to the microsecond) -> an RFC 3339
-- UTC string, or nil and a reason.
function M.datetime_from_unix(t)
  if t ~= t or t == huge or t == -huge then return nil, "invalid number" end
  local us = floor(t * 1e6 + 0.5)
  local secs = floor(us / 1e6)
  if secs < MIN_UNIX or secs > MAX_UNIX then return nil, "value is outside expected range" end
  us = us - secs * 1e6
  local days = floor(secs / 86400)
  local rem = secs - days * 86400
  local y, m, d = civil_from_days(days)
  local out = format("%04d-%02d-%02dT%02d:%02d:%02d", y, m, d,
    floor(rem / 3600), floor(rem % 3600 / 60), rem % 60)
  if us > 0 then
    out = out .. (gsub(format(".%06d", us), "0+$", ""))
  end
  return out .. "Z"
end

---------------------------------------------------------------------------
-- Numbers from strings (path, query and header values)
---------------------------------------------------------------------------

--- An integer from a decimal string (optional sign, surrounding spaces):
-- a number when |v| <= 2^53, else an exact int64 cdata. nil and
-- "int_parsing" when not an integer, "int_parsing_size" beyond int64.
function M.integer_string(s)
  local sign, digits = match(s, "^%s*([+-]?)(%d+)%s*$")
  if not sign then return nil, "int_parsing" end
  digits = match(digits, "^0*(%d-)$")
  if digits == "" then return 0 end
  local n = #digits
  if n <= 15 then
    local v = tonumber(digits)
    if sign == "-" then v = -v end
    return v
  end
  if n > 19 or (n == 19 and digits > (sign == "-" and "9223372036854775808" or "9223372036854775807")) then
    return nil, "int_parsing_size"
  end
  local v = int64(sign .. digits)
  if v >= -MAX_SAFE and v <= MAX_SAFE then return tonumber(v) end
  return int64_ct(v)
end

--- A finite number from a decimal string (no hex, inf or nan); nil when not one.
function M.number_string(s)
  local t = match(s, "^%s*(.-)%s*$")
  if not (find(t, "^[+-]?%d+%.?%d*$") or find(t, "^[+-]?%.%d+$") or
          find(t, "^[+-]?%d+%.?%d*[eE][+-]?%d+$") or find(t, "^[+-]?%.%d+[eE][+-]?%d+$")) then
    return nil
  end
  local v = tonumber(t)
  if v == nil or v == huge or v == -huge then return nil end
  return v
end

---------------------------------------------------------------------------
-- UTF-8
---------------------------------------------------------------------------

--- Length of s in code points (bytes that are not continuation bytes).
function M.utf8_len(s)
  local count = 0
  for i = 1, #s do
    local b = byte(s, i)
    if b < 128 or b >= 192 then count = count + 1 end
  end
  return count
end

return M
