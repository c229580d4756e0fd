-- spec/support/wsclient.lua: a small blocking WebSocket client (RFC 6455)
-- over real sockets, for integration specs; built on spec/support/client.lua.
-- Blocking is fine: the server under test is another process. Every read
-- has a timeout.
--
--   local ws, res = wsclient.connect(port, "/chat/lobby?x=1", { headers = {...}, protocols = { "chat" } })
--     -- ws, the 101 response | nil, the response (status ~= 101) or an error string
--   ws:send_text("hi")  ws:send_binary("\0\1")  ws:ping("p")  ws:close(1000, "bye")
--   ws:send_frame(opcode, payload, { fin = false, mask = false, rsv = 4, length = n })   -- protocol tests
--   ws:send_raw(bytes)
--   local msg, kind = ws:receive(timeout)     -- "text" | "binary"; pings are answered
--     -- nil, "close", code, reason when a close frame came (answered unless told)
--     -- nil, "timeout" | "closed" (EOF without a close frame)
--   local f = ws:read_frame(timeout)         -- { fin, rsv, opcode, payload } | nil, err
--   ws:expect_close(timeout) -> code, reason (reads messages until the close frame)
--   ws:closed(timeout) -> true once the server ended the TCP connection
local ffi = require "ffi"
local bit = require "bit"
local client = require "spec.support.client"
local base64 = require "jararaca.base64"
local sys = require "jararaca.core.sys"

-- The binary's own SHA-1 (core/sha1.c, checked against the FIPS 180 vectors
-- by spec/c/test_sha1.c; the binary exports its symbols).
ffi.cdef [[
  void jr_sha1(const void *data, size_t len, unsigned char *out);
]]

local M = {}

local byte, char, concat = string.byte, string.char, table.concat
local band, bxor, rshift = bit.band, bit.bxor, bit.rshift

M.TEXT, M.BINARY, M.CONT, M.CLOSE, M.PING, M.PONG = 1, 2, 0, 8, 9, 10

-- Standard base64 with padding (jararaca.base64 is the URL-safe, unpadded one).
local function b64(s)
  local e = base64.encode(s):gsub("-", "+"):gsub("_", "/")
  return e .. string.rep("=", (4 - #e % 4) % 4)
end
M.b64 = b64

--- What a server must answer in Sec-WebSocket-Accept for key.
function M.accept_for(key)
  local md = ffi.new("unsigned char[20]")
  local s = key .. "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
  ffi.C.jr_sha1(s, #s, md)
  return b64(ffi.string(md, 20))
end

local WS = {}
WS.__index = WS

--- The bytes of an upgrade request (for specs that send their own).
function M.handshake(path, opts)
  opts = opts or {}
  local key = opts.key or b64(sys.random_bytes(16))
  local headers = {
    Upgrade = "websocket", Connection = "Upgrade", ["Sec-WebSocket-Key"] = key,
    ["Sec-WebSocket-Version"] = "13",
  }
  if opts.protocols then headers["Sec-WebSocket-Protocol"] = concat(opts.protocols, ", ") end
  for k, v in pairs(opts.headers or {}) do headers[k] = v or nil end
  return client.format("GET", path, { headers = headers }), key
end

--- Connect and upgrade. Returns ws, the 101 response; or nil and the
--- response (any other status), or nil and an error string.
function M.connect(port, path, opts)
  opts = opts or {}
  local c, err = client.connect(port, opts.timeout or 5)
  if not c then return nil, err end
  local req, key = M.handshake(path, opts)
  local ok, serr = c:send(req)
  if not ok then c:close(); return nil, serr end
  local res, rerr = c:read_response()
  if not res then c:close(); return nil, rerr end
  if res.status ~= 101 then c:close(); return nil, res end
  if res.headers["sec-websocket-accept"] ~= M.accept_for(key) then
    c:close()
    return nil, "bad Sec-WebSocket-Accept: " .. tostring(res.headers["sec-websocket-accept"])
  end
  return setmetatable({ conn = c }, WS), res
end

-- payload XOR the 4-byte mask.
local function masked(payload, mask)
  local n = #payload
  local buf = ffi.new("uint8_t[?]", n)
  local m = { byte(mask, 1, 4) }
  for i = 0, n - 1 do buf[i] = bxor(byte(payload, i + 1), m[i % 4 + 1]) end
  return ffi.string(buf, n)
end

local function be(n, bytes)
  local out = {}
  for i = bytes, 1, -1 do
    out[i] = char(n % 256)
    n = math.floor(n / 256)
  end
  return concat(out)
end

--- Encode one client frame. opts: fin (default true), mask (default true),
--- rsv (bits 1..7 placed in RSV1-3), length (the declared length, to lie).
function M.frame(opcode, payload, opts)
  opts = opts or {}
  payload = payload or ""
  local fin = opts.fin ~= false
  local b1 = (fin and 0x80 or 0) + (opts.rsv or 0) * 16 + opcode
  local len = opts.length or #payload
  local mask = opts.mask ~= false
  local mbit = mask and 0x80 or 0
  local head
  if len < 126 then
    head = char(b1, mbit + len)
  elseif len < 65536 then
    head = char(b1, mbit + 126) .. be(len, 2)
  else
    head = char(b1, mbit + 127) .. be(len, 8)
  end
  if not mask then return head .. payload end
  local key = sys.random_bytes(4)
  return head .. key .. masked(payload, key)
end

function WS:send_raw(bytes) return self.conn:send(bytes) end
function WS:send_frame(opcode, payload, opts) return self.conn:send(M.frame(opcode, payload, opts)) end
function WS:send_text(s) return self:send_frame(M.TEXT, s) end
function WS:send_binary(s) return self:send_frame(M.BINARY, s) end
function WS:ping(s) return self:send_frame(M.PING, s or "") end

--- Send a close frame (code nil: an empty close frame).
function WS:close(code, reason)
  local payload = code and (be(code, 2) .. (reason or "")) or ""
  self.sent_close = true
  return self:send_frame(M.CLOSE, payload)
end

-- Make sure n bytes are buffered; nil, err otherwise.
local function need(c, n)
  while #c.buf < n do
    local ok, err = c:fill()
    if not ok then return nil, err end
  end
  return true
end

local function take(c, n)
  local s = c.buf:sub(1, n)
  c.buf = c.buf:sub(n + 1)
  return s
end

--- Read one server frame: { fin, rsv, opcode, payload } | nil, "timeout" | "closed" | why.
function WS:read_frame(timeout)
  local c = self.conn
  if timeout then c:settimeout(timeout) end
  local ok, err = need(c, 2)
  if not ok then return nil, err end
  local b1, b2 = byte(c.buf, 1, 2)
  if band(b2, 0x80) ~= 0 then return nil, "the server masked a frame" end
  local len, hl = band(b2, 0x7f), 2
  if len == 126 then
    ok, err = need(c, 4)
    if not ok then return nil, err end
    local x, y = byte(c.buf, 3, 4)
    len, hl = x * 256 + y, 4
  elseif len == 127 then
    ok, err = need(c, 10)
    if not ok then return nil, err end
    len = 0
    for i = 3, 10 do len = len * 256 + byte(c.buf, i) end
    hl = 10
  end
  ok, err = need(c, hl + len)
  if not ok then return nil, err end
  take(c, hl)
  return { fin = band(b1, 0x80) ~= 0, rsv = rshift(band(b1, 0x70), 4), opcode = band(b1, 0x0f),
    payload = take(c, len) }
end

local function close_info(payload)
  if #payload < 2 then return 1005, "" end
  local x, y = byte(payload, 1, 2)
  return x * 256 + y, payload:sub(3)
end

--- The next message. Pings are answered (pongs skipped), fragments joined.
--- A close frame: nil, "close", code, reason (answered with the same code
--- unless opts.no_echo or we sent ours first).
function WS:receive(timeout, opts)
  local parts, kind = nil, nil
  while true do
    local f, err = self:read_frame(timeout)
    if not f then return nil, err end
    local op = f.opcode
    if op == M.PING then
      self:send_frame(M.PONG, f.payload)
    elseif op == M.PONG then -- luacheck: ignore 542 (nothing to do)
    elseif op == M.CLOSE then
      local code, reason = close_info(f.payload)
      if not self.sent_close and not (opts and opts.no_echo) then
        self.sent_close = true
        self:send_frame(M.CLOSE, f.payload:sub(1, 2))
      end
      return nil, "close", code, reason
    else
      if op ~= M.CONT then
        parts, kind = {}, op == M.TEXT and "text" or "binary"
      end
      parts[#parts + 1] = f.payload
      if f.fin then return concat(parts), kind end
    end
  end
end

--- Read until the close frame (messages on the way are dropped): code,
--- reason | nil, err.
function WS:expect_close(timeout)
  while true do
    local msg, what, code, reason = self:receive(timeout)
    if msg == nil then
      if what == "close" then return code, reason end
      return nil, what
    end
  end
end

--- true once the server ended the TCP connection (within timeout).
function WS:closed(timeout)
  return self.conn:closed(timeout or 5)
end

function WS:shutdown() self.conn:close() end

return M
