--- jararaca.rpc.url: the text of request values and their percent-encoding
-- (RFC 3986), for the RPC client's paths and query strings.
--
--   url.text(v)            -> the text of a string, number, boolean or int64 | nil
--   url.component(s)       -> s with everything but unreserved characters encoded
--   url.segment(s, slash)  -> as component; slash = true keeps "/" ({x:path})
--   url.query(pairs)       -> "a=1&b=x%20y" from { {name, text}, ... }
-- @module jararaca.rpc.url
local M = {}

local type, tostring, tonumber, gsub, format, concat =
  type, tostring, tonumber, string.gsub, string.format, table.concat
local huge = math.huge

-- byte -> "%XX", for gsub with a table (no closure call per character)
local ESC = {}
for i = 0, 255 do ESC[string.char(i)] = format("%%%02X", i) end

--- Text of a scalar the way the server's converters read it back: integers
--- without a fraction, other numbers round-tripping, true/false; nil for
--- anything else (tables, functions, NaN, infinities).
function M.text(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if v ~= v or v == huge or v == -huge then return nil end
    -- (tostring prints integers below 1e14 exactly, and is compiled by the JIT)
    if v % 1 == 0 and v > -1e14 and v < 1e14 then return tostring(v) end
    if v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
    local s = format("%.15g", v)
    if tonumber(s) ~= v then s = format("%.17g", v) end
    return s
  end
  if t == "boolean" then return v and "true" or "false" end
  if t == "cdata" then -- an int64 (json.int64): "123LL" -> "123"
    local s = tostring(v):match("^(%-?%d+)U?LL$")
    return s
  end
  return nil
end

--- Percent-encode everything but the unreserved characters.
function M.component(s)
  return (gsub(s, "[^%w%-%._~]", ESC))
end

--- A path segment; with slash, "/" stays (a {name:path} parameter).
function M.segment(s, slash)
  if slash then return (gsub(s, "[^%w%-%._~/]", ESC)) end
  return (gsub(s, "[^%w%-%._~]", ESC))
end

--- A query string from a list of { name, text } pairs (already text).
function M.query(list)
  local parts = {}
  for i = 1, #list do
    local p = list[i]
    parts[i] = M.component(p[1]) .. "=" .. M.component(p[2])
  end
  return concat(parts, "&")
end

return M
