--- jararaca.ws.socket: the socket a WebSocket handler gets.
--
--   assert(ws:accept())                  -- or ws:accept { protocol = "chat" }
--   local msg, kind = ws:receive([timeout])  -- msg, "text" | "binary"
--                                        -- | nil, msg, "closed" | "timeout"
--   for msg, kind in ws:messages() do ... end   -- until the connection closes
--   ws:send_text(s) ws:send_bytes(s) ws:send_json(v)  -- true | nil, msg, code
--   ws:close([code [, reason]])          -- true | nil, msg, "closed"
--   ws.request                           -- the typed upgrade request
--   ws.close_code, ws.close_reason       -- once closed (nil while open)
--   ws.accepted, ws.closed               -- booleans
--
-- Before accept() the handler is still answering an HTTP request: it may
-- raise an HTTPError (that answer is sent) or return (403, or what it
-- returns). Everything but accept() raises before it.
-- Expected failures follow docs/errors.md: "closed" once the connection is
-- closed (by either side), "timeout", "full" (the client stopped reading:
-- the connection is being closed with 1008), "invalid" (text that is not
-- UTF-8, a value JSON cannot hold).
-- @module jararaca.ws.socket
local core = require "jararaca.core.ws"
local sched = require "jararaca.sched"
local json = require "jararaca.json"

local M = {}

local type, error, setmetatable, getmetatable, rawget, rawset, format, tostring =
  type, error, setmetatable, getmetatable, rawget, rawset, string.format, tostring
local csched = require "jararaca.core.sched"
local c_adopt = core.adopt
local clock, c_current, c_wait, c_wake = csched.clock, csched.current, csched.wait, csched.wake
local CANCELLED = sched.CANCELLED
local encode = json.encode

local methods = {}

local Socket = {
  __index = function(ws, k)
    local m = methods[k]
    if m then return m end
    local u = rawget(ws, "_u")
    if k == "close_code" or k == "close_reason" then
      if not u then return nil end
      local code, reason = u:close_info()
      if k == "close_code" then return code end
      return reason
    elseif k == "accepted" then
      return u ~= nil
    elseif k == "closed" then
      return u ~= nil and u:close_info() ~= nil
    end
    return nil
  end,
  __tostring = function(ws)
    return "WebSocket(" .. tostring(ws.request) .. ")"
  end,
}

--- Is v a socket made by new()?
function M.is_socket(v)
  return getmetatable(v) == Socket
end

--- A socket for the upgrade request req of a route whose limits are cfg
--- (route_spec's spec.websocket). Not accepted yet.
function M.new(req, cfg)
  return setmetatable({ request = req, _cfg = cfg }, Socket)
end

-- The client's Sec-WebSocket-Protocol list contains p?
local function offered(req, p)
  local list = req:header("sec-websocket-protocol")
  if not list then return false end
  for item in list:gmatch("[^,]+") do
    if item:match("^%s*(.-)%s*$") == p then return true end
  end
  return false
end

local function accepted(ws, what)
  local u = rawget(ws, "_u")
  if not u then error(what .. ": the connection is not accepted yet (call ws:accept() first)", 3) end
  return u
end

--- Answer the upgrade (101) and take the connection over. opts.protocol: the
--- subprotocol chosen, one of those the client offered. true | nil, msg,
--- code ("closed": the client is gone; "invalid", "nomem", "error").
function methods:accept(opts)
  if rawget(self, "_u") then error("ws:accept(): the connection is already accepted", 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("ws:accept(opts): opts must be a table { protocol = ... }, got " .. type(opts), 2)
  end
  local protocol = opts and opts.protocol
  if protocol ~= nil then
    if type(protocol) ~= "string" or protocol == "" then
      error("ws:accept{ protocol = ... }: expected a non-empty string, got " .. type(protocol), 2)
    end
    if not offered(self.request, protocol) then
      error(format("ws:accept{ protocol = %q }: the client did not offer it (Sec-WebSocket-Protocol: %s)",
        protocol, tostring(self.request:header("sec-websocket-protocol"))), 2)
    end
  end
  local u, msg, code = c_adopt(self.request._h, self._cfg, protocol)
  if not u then
    rawset(self, "_refused", code)
    return nil, msg, code
  end
  rawset(self, "_u", u)
  rawset(self.request, "_ws", self) -- the dispatcher: no HTTP answer for this request
  M.live = M.live + 1
  return true
end

--- The next message: msg, "text" | "binary"; nil, msg, "closed" once the
--- connection is closed (messages that arrived before are received first);
--- nil, msg, "timeout" when none came within timeout seconds.
function methods:receive(timeout)
  local u = accepted(self, "ws:receive()")
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error("ws:receive(timeout): timeout must be a number of seconds >= 0, got " .. tostring(timeout), 2)
  end
  local deadline = timeout and clock() + timeout
  while true do
    local left = deadline and deadline - clock()
    if left and left < 0 then left = 0 end
    local a, b, code = u:receive(left)
    if a ~= true then
      if code == "timeout" then
        u:unpark()
        return nil, format("no message within %g s", timeout), "timeout"
      elseif code == "cancelled" then
        u:unpark()
        error(CANCELLED, 0)
      end
      return a, b, code
    end
    u:unpark() -- woken by something else: wait on
  end
end

--- Iterate over incoming messages: `for msg, kind in ws:messages() do`;
--- ends when the connection closes.
function methods:messages()
  accepted(self, "ws:messages()")
  return function()
    local msg, kind = self:receive()
    if msg == nil then return nil end
    return msg, kind
  end
end

local function send(ws, what, data, is_text)
  local u = accepted(ws, what)
  if type(data) ~= "string" then error(what .. ": expected a string, got " .. type(data), 3) end
  return u:send(data, is_text)
end

--- Send a text message (a UTF-8 string): true | nil, msg, "closed" | "full" | "invalid".
function methods:send_text(s) return send(self, "ws:send_text(s)", s, true) end

--- Send a binary message: true | nil, msg, "closed" | "full".
function methods:send_bytes(s) return send(self, "ws:send_bytes(s)", s, false) end

--- Send v as JSON in a text message: true | nil, msg, code (json.encode's
--- failures: "invalid", "invalid_utf8").
function methods:send_json(v)
  accepted(self, "ws:send_json(v)")
  local text, msg, code = encode(v)
  if not text then return nil, msg, code end
  return send(self, "ws:send_json(v)", text, true)
end

--- Start the closing handshake: code (default 1000) and reason (default "").
--- true | nil, msg, "closed" when it is closed or closing already.
function methods:close(code, reason)
  local u = accepted(self, "ws:close()")
  if code == nil then code = 1000 end
  if type(code) ~= "number" or code % 1 ~= 0 then
    error("ws:close(code, reason): code must be an integer, got " .. tostring(code), 2)
  end
  if reason ~= nil and type(reason) ~= "string" then
    error("ws:close(code, reason): reason must be a string, got " .. type(reason), 2)
  end
  return u:close(code, reason or "")
end

--- Accepted connections whose transaction is not over yet.
M.live = 0
local shutdown_waiters = {}

--- The transaction is over (jararaca.http.dispatch): a connection still open
--- closes with 1000 after a success, 1011 after an error. Once per socket.
function M.finish(ws, ok)
  local u = rawget(ws, "_u")
  if not u or rawget(ws, "_done") then return end
  rawset(ws, "_done", true)
  if not u:close_info() then
    if ok then u:close(1000, "") else u:close(1011, "internal error") end
  end
  M.live = M.live - 1
  if M.live == 0 then
    local ws_ = shutdown_waiters
    shutdown_waiters = {}
    for i = 1, #ws_ do c_wake(ws_[i][1], ws_[i][2]) end
  end
end

--- The server stops: close every connection with 1001 (their handlers see
--- "closed"; no new one is accepted), then wait until their transactions
--- are over, at most grace seconds. true | nil, msg, "timeout".
function M.shutdown(grace)
  core.shutdown()
  local deadline = clock() + grace
  while M.live > 0 do
    local left = deadline - clock()
    if left <= 0 then
      shutdown_waiters = {}
      return nil, format("%d WebSocket handler(s) still running after %g s", M.live, grace), "timeout"
    end
    local h, g = c_current()
    shutdown_waiters[#shutdown_waiters + 1] = { h, g }
    c_wait(left)
  end
  shutdown_waiters = {}
  return true
end

return M
