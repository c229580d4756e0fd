-- spec/support/client.lua: a raw, blocking HTTP/1.1 client over real sockets
-- (LuaJIT FFI), for integration specs. Blocking is fine here: the server
-- under test is another process. Every read has a timeout.
--
--   local c = client.connect(port)            -- 127.0.0.1
--   c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
--   local res = c:read_response()            -- { status=, headers= (lower-case), body=, raw= }
--   c:closed(timeout)  -> true when the server closed the connection
--   client.request(port, "GET", "/hello?name=x", { headers=..., body=... })
--   client.get_json(port, "/items")           -- the decoded body of a 200
local ffi = require "ffi"

ffi.cdef [[
  typedef unsigned int socklen_t;
  struct sockaddr_in_ { uint16_t sin_family; uint16_t sin_port; uint32_t sin_addr; uint8_t zero[8]; };
  struct timeval_ { long tv_sec; long tv_usec; };
  int socket(int domain, int type, int protocol);
  int connect(int fd, const void *addr, socklen_t len);
  int bind(int fd, const void *addr, socklen_t len);
  int getsockname(int fd, void *addr, socklen_t *len);
  int setsockopt(int fd, int level, int name, const void *val, socklen_t len);
  long send(int fd, const void *buf, size_t n, int flags);
  long recv(int fd, void *buf, size_t n, int flags);
  int close(int fd);
  int shutdown(int fd, int how);
  uint16_t htons(uint16_t v);
  uint16_t ntohs(uint16_t v);
  char *strerror(int errnum);
]]

local C = ffi.C
local AF_INET, SOCK_STREAM, SOL_SOCKET, SO_RCVTIMEO, SO_SNDTIMEO = 2, 1, 1, 20, 21
local MSG_NOSIGNAL = 0x4000
local LOOPBACK = 0x0100007f -- 127.0.0.1 in network order on little-endian

local M = {}

local Conn = {}
Conn.__index = Conn

local function addr(port)
  local sa = ffi.new("struct sockaddr_in_")
  sa.sin_family = AF_INET
  sa.sin_port = C.htons(port)
  sa.sin_addr = LOOPBACK
  return sa
end

local function set_timeout(fd, seconds)
  local tv = ffi.new("struct timeval_")
  tv.tv_sec = math.floor(seconds)
  tv.tv_usec = math.floor((seconds - math.floor(seconds)) * 1e6)
  C.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, ffi.sizeof(tv))
  C.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv, ffi.sizeof(tv))
end

--- A port that is free right now (bind to 0, read it, close).
function M.free_port()
  local fd = C.socket(AF_INET, SOCK_STREAM, 0)
  local sa = addr(0)
  assert(C.bind(fd, sa, ffi.sizeof(sa)) == 0, "bind failed")
  local len = ffi.new("socklen_t[1]", ffi.sizeof(sa))
  C.getsockname(fd, sa, len)
  local port = C.ntohs(sa.sin_port)
  C.close(fd)
  return port
end

--- Connect to 127.0.0.1:port. Returns conn or nil, err.
function M.connect(port, timeout)
  local fd = C.socket(AF_INET, SOCK_STREAM, 0)
  if fd < 0 then return nil, "socket failed" end
  local sa = addr(port)
  if C.connect(fd, sa, ffi.sizeof(sa)) ~= 0 then
    C.close(fd)
    return nil, "connect failed: " .. ffi.string(C.strerror(ffi.errno()))
  end
  set_timeout(fd, timeout or 5)
  return setmetatable({ fd = fd, buf = "", timeout = timeout or 5 }, Conn)
end

function Conn:settimeout(seconds)
  self.timeout = seconds
  set_timeout(self.fd, seconds)
end

--- Send all of data. Returns true or nil, err.
function Conn:send(data)
  local off = 0
  while off < #data do
    local n = C.send(self.fd, ffi.cast("const char *", data) + off, #data - off, MSG_NOSIGNAL)
    if n <= 0 then return nil, "send failed: " .. ffi.string(C.strerror(ffi.errno())) end
    off = off + tonumber(n)
  end
  return true
end

local rbuf = ffi.new("char[65536]")

-- Read more bytes into self.buf. Returns true, or nil, "closed"/"timeout".
function Conn:fill()
  local n = C.recv(self.fd, rbuf, 65536, 0)
  if n == 0 then return nil, "closed" end
  if n < 0 then
    local e = ffi.errno()
    if e == 11 then return nil, "timeout" end
    if e == 104 then return nil, "closed" end -- reset
    return nil, "recv failed: " .. ffi.string(C.strerror(e))
  end
  self.buf = self.buf .. ffi.string(rbuf, n)
  return true
end

--- Read one response. Returns { status, reason, headers, body, raw } or nil, err.
-- head_only: do not read a body (responses to HEAD).
function Conn:read_response(head_only)
  while true do
    local hend = self.buf:find("\r\n\r\n", 1, true)
    if hend then
      local head = self.buf:sub(1, hend - 1)
      local status, reason = head:match("^HTTP/1%.%d (%d%d%d) ?([^\r\n]*)")
      if not status then return nil, "bad status line: " .. head:sub(1, 80) end
      local headers = {}
      for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
        local k = name:lower()
        headers[k] = headers[k] and (headers[k] .. ", " .. value) or value
      end
      status = tonumber(status)
      local len = tonumber(headers["content-length"] or "0")
      if head_only or status == 204 or status == 304 or status < 200 then len = 0 end
      while #self.buf < hend + 3 + len do
        local ok, err = self:fill()
        if not ok then return nil, err end
      end
      local body = self.buf:sub(hend + 4, hend + 3 + len)
      local raw = self.buf:sub(1, hend + 3 + len)
      self.buf = self.buf:sub(hend + 4 + len)
      return { status = status, reason = reason, headers = headers, body = body, raw = raw }
    end
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
end

--- true when the peer closed the connection (EOF or reset) within timeout.
function Conn:closed(timeout)
  if timeout then self:settimeout(timeout) end
  while true do
    local ok, err = self:fill()
    if not ok then return err == "closed", err end
  end
end

function Conn:close()
  if self.fd then C.close(self.fd); self.fd = nil end
end

--- Format a request. opts: headers (table), body (string), version ("1.1").
function M.format(method, target, opts)
  opts = opts or {}
  local lines = { ("%s %s HTTP/%s"):format(method, target, opts.version or "1.1") }
  local headers = opts.headers or {}
  if not headers.Host and not headers.host then lines[#lines + 1] = "Host: 127.0.0.1" end
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  if opts.body and not headers["Content-Length"] and not headers["Transfer-Encoding"] then
    lines[#lines + 1] = "Content-Length: " .. #opts.body
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (opts.body or "")
end

--- GET target and decode its JSON answer, which must be a 200.
function M.get_json(port, target)
  local res = assert(M.request(port, "GET", target))
  assert(res.status == 200, ("GET %s: %d %s"):format(target, res.status, res.body))
  return require("cjson").decode(res.body)
end

--- One request on a fresh connection. Returns the response or nil, err.
function M.request(port, method, target, opts)
  local c, err = M.connect(port, opts and opts.timeout)
  if not c then return nil, err end
  local ok, serr = c:send(M.format(method, target, opts))
  if not ok then c:close(); return nil, serr end
  local res, rerr = c:read_response(method == "HEAD")
  c:close()
  return res, rerr
end

return M
