--- jararaca.base64: URL-safe base64 without padding (RFC 4648 section 5),
-- for opaque tokens that travel in query strings (pagination cursors).
-- @module jararaca.base64
local bit = require "bit"

local band, bor, lshift, rshift = bit.band, bit.bor, bit.lshift, bit.rshift
local byte, char, concat, type = string.byte, string.char, table.concat, type

local M = {}

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local ENC, DEC = {}, {}
for i = 1, 64 do
  local c = ALPHABET:sub(i, i)
  ENC[i - 1] = c
  DEC[byte(c)] = i - 1
end

--- Encode the bytes of s.
function M.encode(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = bor(lshift(a, 16), lshift(b or 0, 8), c or 0)
    out[#out + 1] = ENC[rshift(v, 18)] .. ENC[band(rshift(v, 12), 63)]
      .. (b and ENC[band(rshift(v, 6), 63)] or "") .. (c and ENC[band(v, 63)] or "")
  end
  return concat(out)
end

--- Decode t; nil for anything that is not URL-safe base64.
function M.decode(t)
  if type(t) ~= "string" or #t % 4 == 1 then return nil end
  local out = {}
  for i = 1, #t, 4 do
    local w, x, y, z = byte(t, i, i + 3)
    local a, b = DEC[w], DEC[x]
    local c, d = y and DEC[y], z and DEC[z]
    if a == nil or b == nil or (y and c == nil) or (z and d == nil) then return nil end
    local v = bor(lshift(a, 18), lshift(b, 12), lshift(c or 0, 6), d or 0)
    out[#out + 1] = char(rshift(v, 16)) .. (y and char(band(rshift(v, 8), 255)) or "") .. (z and char(band(v, 255)) or "")
  end
  return concat(out)
end

return M
