--- jararaca.ws.manager: rooms of WebSocket connections, and sending to them.
--
--   local mgr = j.use_ws_manager()             -- one per process
--   mgr:add_websocket(ws)                      -- a member: broadcasts reach it
--   mgr:join({ "tasks", "admins" }, ws)        -- rooms: a string or a list of strings
--   mgr:leave("admins", ws)
--   mgr:broadcast("hello")                     -- every member
--   mgr:send({ "tasks" }, { kind = "joined" }) -- the members of any of the rooms, once each
--   mgr:remove_websocket(ws)                   -- safe for a socket that is not a member
--
--   j.WebSocketMessage(payload [, opts]):send(rooms)   -- delivered when the
--   j.WebSocketMessage(payload [, opts]):broadcast()   -- transaction commits
--
-- A payload is a string (a text message: it must be UTF-8, else nil, msg,
-- "invalid") or a table (sent as JSON text); opts.binary = true sends it as
-- a binary message instead. The fan-out is done in C (jararaca.core.ws):
-- the frame is encoded once and shared by every recipient. A closed socket
-- leaves every room by itself. broadcast and send return the number of
-- connections of this process they reached.
-- @module jararaca.ws.manager
local core = require "jararaca.core.ws"
local json = require "jararaca.json"
local staged = require "jararaca.staged"
local socket = require "jararaca.ws.socket"

local M = {}

local type, error, rawget, setmetatable, tostring, format =
  type, error, rawget, setmetatable, tostring, string.format
local c_add, c_remove, c_join, c_leave, c_broadcast, c_send_rooms =
  core.add, core.remove, core.join, core.leave, core.broadcast, core.send_rooms
local encode, is_socket, utf8_valid = json.encode, socket.is_socket, core.utf8_valid

-- The C socket of ws (an accepted socket), or raise naming what.
local function c_socket(ws, what)
  if not is_socket(ws) then
    error(format("%s: expected the socket a WebSocket handler got, got %s", what, type(ws)), 3)
  end
  local u = rawget(ws, "_u")
  if not u then error(what .. ": the connection is not accepted yet (call ws:accept() first)", 3) end
  return u
end

-- rooms: a string or a list of strings -> a list.
local function room_list(rooms, what)
  if type(rooms) == "string" then return { rooms } end
  if type(rooms) ~= "table" then
    error(format("%s: rooms must be a string or a list of strings, got %s", what, type(rooms)), 3)
  end
  for i = 1, #rooms do
    if type(rooms[i]) ~= "string" then
      error(format("%s: rooms[%d] must be a string, got %s", what, i, type(rooms[i])), 3)
    end
  end
  return rooms
end

-- A payload and its options -> the bytes and whether they are text, or nil,
-- msg, code: text that is not UTF-8, a table JSON cannot hold.
local function message(payload, opts, what)
  if opts ~= nil and type(opts) ~= "table" then
    error(format("%s: opts must be a table { binary = true }, got %s", what, type(opts)), 3)
  end
  local binary = opts ~= nil and opts.binary == true
  local t = type(payload)
  if t == "string" then
    if not binary and not utf8_valid(payload) then
      return nil, "a text message must be valid UTF-8 (send bytes with { binary = true })", "invalid"
    end
    return payload, not binary
  end
  if t == "table" then
    local text, msg, code = encode(payload)
    if not text then return nil, msg, code end
    return text, not binary
  end
  error(format("%s: the message must be a string or a table (sent as JSON), got %s", what, t), 3)
end

local Manager = {}
Manager.__index = Manager
Manager.__name = "WebSocketManager"

local the = setmetatable({}, Manager)

--- The process's manager.
function M.use_ws_manager()
  return the
end

--- Make ws a member (broadcasts reach it). true | nil, msg, "closed".
function Manager.add_websocket(_, ws)
  return c_add(c_socket(ws, "add_websocket(ws)"))
end

--- ws leaves every room and the manager; a socket that is not a member (or
--- not accepted) is fine. true.
function Manager.remove_websocket(_, ws)
  if not is_socket(ws) then
    error("remove_websocket(ws): expected the socket a WebSocket handler got, got " .. type(ws), 2)
  end
  local u = rawget(ws, "_u")
  if u then c_remove(u) end
  return true
end

--- Put ws in each room (making it a member first). true | nil, msg, "closed".
function Manager.join(_, rooms, ws)
  local list = room_list(rooms, "join(rooms, ws)")
  local u = c_socket(ws, "join(rooms, ws)")
  for i = 1, #list do
    local ok, msg, code = c_join(u, list[i])
    if not ok then return nil, msg, code end
  end
  return true
end

--- Take ws out of each room (it stays a member). true.
function Manager.leave(_, rooms, ws)
  local list = room_list(rooms, "leave(rooms, ws)")
  local u = c_socket(ws, "leave(rooms, ws)")
  for i = 1, #list do c_leave(u, list[i]) end
  return true
end

--- Send msg to every member: the number reached | nil, msg, "invalid".
function Manager.broadcast(_, msg, opts)
  local data, is_text, code = message(msg, opts, "broadcast(msg, opts)")
  if data == nil then return nil, is_text, code end
  return c_broadcast(data, is_text)
end

--- Send msg to the members of the rooms (each once): the number reached |
--- nil, msg, "invalid".
function Manager.send(_, rooms, msg, opts)
  local list = room_list(rooms, "send(rooms, msg, opts)")
  local data, is_text, code = message(msg, opts, "send(rooms, msg, opts)")
  if data == nil then return nil, is_text, code end
  return c_send_rooms(list, data, is_text)
end

--- Members in room (for tests and diagnostics).
function Manager.room_size(_, room)
  if type(room) ~= "string" then error("room_size(room): room must be a string, got " .. type(room), 2) end
  return core.room_size(room)
end

---------------------------------------------------------------------------
-- Staged messages
---------------------------------------------------------------------------

local Message = {}
Message.__index = Message
Message.__name = "WebSocketMessage"

--- A message to send once the current transaction commits, or nil, msg,
--- "invalid" (as broadcast's). The payload is encoded now, so a bad one
--- fails in the handler that made it, not after the commit.
function M.WebSocketMessage(payload, opts)
  local data, is_text, code = message(payload, opts, "WebSocketMessage(payload, opts)")
  if data == nil then return nil, is_text, code end
  return setmetatable({ data = data, is_text = is_text }, Message)
end

local function deliver(send, ...)
  local ok, msg = send(...)
  if not ok then require("jararaca.log").warn("a staged WebSocket message was not sent: ", tostring(msg)) end
end

--- Stage a send to the rooms: delivered when the transaction succeeds,
--- dropped when it fails; at once outside a transaction. true.
function Message:send(rooms)
  local list = room_list(rooms, "WebSocketMessage:send(rooms)")
  -- the rooms as they are now (the caller may reuse its list before the commit)
  local copy = {}
  for i = 1, #list do copy[i] = list[i] end
  staged.add(nil, deliver, c_send_rooms, copy, self.data, self.is_text)
  return true
end

--- Stage a broadcast (as send). true.
function Message:broadcast()
  staged.add(nil, deliver, c_broadcast, self.data, self.is_text)
  return true
end

return M
