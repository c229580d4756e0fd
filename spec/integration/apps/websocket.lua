-- An app for spec/integration/websocket_spec.lua: WebSocket endpoints, the
-- room manager and staged sends, served by the real server.
--   WS_DB   the SQLite file of the notes (required)
-- GET /ws/closes answers how each named connection ended, as its handler saw
-- it ({ [name] = { code, reason, ended } }): specs assert what the server
-- side saw without guessing delays.
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local sys = require "jararaca.core.sys"
local s = j.schema

local closes = {}
local function note_close(name, ws, how)
  if name then closes[name] = { code = ws.close_code, reason = ws.close_reason, ended = how } end
end

-- An interceptor that marks the transaction: the handler reports what it saw.
local Marker = {}
function Marker.enter(_, ctx) ctx.marker = "entered " .. ctx.kind end

local Ws = j.RestController("/ws", { name = "WsController" })

-- Echo: text back as text, bytes back as bytes; commands for the specs.
Ws.echo = j.WebSocketEndpoint("/echo", { query = { name = s.string():optional() } }, function(self, ws)
  local name = ws.request.query.name
  assert(ws:accept())
  for msg, kind in ws:messages() do
    if msg == "close-me" then
      ws:close(4000, "asked")
    elseif msg == "boom" then
      closes[name or "boom"] = { ended = "raised" }
      error("boom in the handler")
    elseif msg == "json" then
      assert(ws:send_json({ answer = 42 }))
    elseif msg == "bad-text" then
      local ok, err, code = ws:send_text("\255")
      assert(ws:send_text(tostring(ok) .. " " .. tostring(code) .. " " .. tostring(err ~= nil)))
    elseif msg == "return" then
      note_close(name, ws, "returned")
      return
    elseif kind == "binary" then
      assert(ws:send_bytes(msg))
    else
      assert(ws:send_text(msg))
    end
  end
  note_close(name, ws, "iterated")
end)

-- Path params, typed query and headers, the interceptor's context.
Ws.room = j.WebSocketEndpoint("/rooms/{room}", {
  params = { room = s.string() }, query = { n = s.integer() }, headers = { ["X-Who"] = s.string():optional() },
}, function(self, ws)
  local req = ws.request
  local ctx = j.use_app_context()
  assert(ws:accept())
  assert(ws:send_json({
    room = req.params.room, n = req.query.n, who = req.header_params["x-who"], kind = ctx.kind,
    marker = ctx.marker, member = ctx.member, request_id = ctx.request_id ~= nil,
  }))
  ws:receive() -- until the client closes
end)

Ws.protocol = j.WebSocketEndpoint("/protocol", function(self, ws)
  assert(ws:accept { protocol = "chat.v2" })
  ws:receive()
end)

Ws.bad_protocol = j.WebSocketEndpoint("/bad-protocol", function(self, ws)
  ws:accept { protocol = "not-offered" } -- raises: a misuse answered 500
end)

Ws.reject = j.WebSocketEndpoint("/reject", function(self, ws) end)
Ws.deny = j.WebSocketEndpoint("/deny", function(self, ws)
  error(j.HTTPError(401, "no token"))
end)
Ws.answer = j.WebSocketEndpoint("/answer", function(self, ws)
  return { detail = "go away" }, 409
end)

-- receive(timeout), then echo once.
Ws.timeout = j.WebSocketEndpoint("/timeout", function(self, ws)
  assert(ws:accept())
  local msg, err, code = ws:receive(0.2)
  assert(ws:send_text(tostring(msg) .. " " .. tostring(code) .. " " .. tostring(err)))
  msg = ws:receive(5)
  if msg then ws:send_text(msg) end
  ws:receive()
end)

-- A receive inside j.timeout: the cancelled wait loses no message.
Ws.cancel = j.WebSocketEndpoint("/cancel", function(self, ws)
  assert(ws:accept())
  local ok, err, code = j.timeout(0.1, function() return ws:receive() end)
  assert(ws:send_text(tostring(ok) .. " " .. tostring(code) .. " " .. tostring(err ~= nil)))
  for msg in ws:messages() do ws:send_text("got " .. msg) end
end)

-- The connection is one transaction: a session opted into, and staged
-- messages delivered when the handler ends well (dropped when it raises).
Ws.session = j.WebSocketEndpoint("/session", { persistence = true }, function(self, ws)
  assert(ws:accept())
  local msg = ws:receive()
  assert(persistence.use_session():execute("INSERT INTO notes (text) VALUES (?)", { msg }))
  assert(j.WebSocketMessage("ws note " .. msg):broadcast())
  assert(ws:send_text("inserted"))
  if ws:receive() == "fail" then error("the connection's transaction fails") end
end)

Ws.small = j.WebSocketEndpoint("/small", { max_message_size = 16, query = { name = s.string():optional() } },
  function(self, ws)
    assert(ws:accept())
    for msg in ws:messages() do ws:send_text(msg) end
    note_close(ws.request.query.name, ws, "iterated")
  end)

-- Rooms: the client's commands drive the manager.
local mgr = j.use_ws_manager()

-- The socket's and the manager's answers once the client has closed
-- (docs/errors.md: nil, a message, a code), read by GET /ws/after-close-report.
local after_close = {}
local function triple(...)
  local a, msg, code = ...
  return { first = a == nil and "nil" or tostring(a), msg = type(msg) == "string" and #msg > 0 and msg or false,
    code = code or false, n = select("#", ...) }
end
Ws.after_close = j.WebSocketEndpoint("/after-close", { query = { name = s.string() } }, function(self, ws)
  assert(ws:accept())
  for _ in ws:messages() do end
  after_close[ws.request.query.name] = {
    receive = triple(ws:receive()),
    receive_timeout = triple(ws:receive(1)),
    send_text = triple(ws:send_text("late")),
    send_bytes = triple(ws:send_bytes("late")),
    send_json = triple(ws:send_json({ late = true })),
    close = triple(ws:close(1000)),
    add_websocket = triple(mgr:add_websocket(ws)),
    join = triple(mgr:join("late", ws)),
  }
end)

local function chat(self, ws)
  local q = ws.request.query
  assert(ws:accept())
  if q.add == "1" then assert(mgr:add_websocket(ws)) end
  if q.rooms and q.rooms ~= "" then
    local list = {}
    for r in q.rooms:gmatch("[^,]+") do list[#list + 1] = r end
    assert(mgr:join(list, ws))
  end
  assert(ws:send_text("ready"))
  for msg in ws:messages() do
    local cmd, a, b = msg:match("^(%w+):?([^:]*):?(.*)$")
    if cmd == "leave" then
      mgr:leave(a, ws)
      ws:send_text("left " .. a)
    elseif cmd == "remove" then
      mgr:remove_websocket(ws)
      ws:send_text("removed")
    elseif cmd == "bcast" then
      mgr:broadcast(a)
    elseif cmd == "send" then
      mgr:send(a, b)
    elseif cmd == "sendmany" then
      local rooms = {}
      for r in a:gmatch("[^,]+") do rooms[#rooms + 1] = r end
      mgr:send(rooms, b)
    elseif cmd == "bin" then
      mgr:send(a, b, { binary = true })
    elseif cmd == "json" then
      mgr:send(a, { room = a, text = b })
    elseif cmd == "invalid" then
      local n, err, code = mgr:broadcast("\255\254")
      ws:send_text(tostring(n) .. " " .. tostring(code) .. " " .. tostring(err ~= nil))
    elseif cmd == "size" then
      ws:send_text(tostring(mgr:room_size(a)))
    end
  end
  note_close(q.name, ws, "iterated")
end
local chat_opts = { query = { rooms = s.string():optional(), add = s.string():optional(), name = s.string():optional() } }
Ws.chat = j.WebSocketEndpoint("/chat", chat_opts, chat)
-- the same with a 64 KiB send queue: a reader that stops is closed early
Ws.slow = j.WebSocketEndpoint("/slow", {
  query = chat_opts.query, max_send_queue = 65536,
}, chat)

-- A member of the manager that says which process serves it (workers,
-- several instances: a broadcast must reach it wherever it was made).
Ws.who = j.WebSocketEndpoint("/who", function(self, ws)
  assert(ws:accept())
  assert(mgr:add_websocket(ws))
  assert(ws:send_text("pid " .. sys.pid()))
  for _ in ws:messages() do end
end)

local Http = j.RestController("", { name = "HttpController" })

Http.broadcast = j.Get("/broadcast", { query = { msg = s.string() } }, function(self, req)
  return { reached = assert(mgr:broadcast(req.query.msg)), pid = sys.pid() }
end)

Http.backplane = j.Get("/ws/backplane", function()
  return require("jararaca.core.ws").backplane_stats() or { kind = "not started" }
end)

Http.closes = j.Get("/ws/closes", function() return closes end)
Http.after_close = j.Get("/ws/after-close-report", function() return after_close end)

-- n messages of size bytes to a room, a millisecond apart, from a task of
-- their own (the answer comes at once: the spec reads while they go out).
Http.flood = j.Get("/flood", { query = { room = s.string(), n = s.integer(), size = s.integer() } }, function(self, req)
  local q = req.query
  local payload = string.rep("x", q.size)
  j.spawn(function()
    for _ = 1, q.n do
      mgr:send(q.room, payload)
      j.sleep(0.001)
    end
  end)
  return { started = true }
end)

-- A note: inserted, and announced to the room "notes" once committed.
Http.add_note = j.Post("/notes", { body = { text = s.string() }, query = { fail = s.boolean():optional() } },
  function(self, req)
    local sess = persistence.use_session()
    assert(sess:execute("INSERT INTO notes (text) VALUES (?)", { req.json.text }))
    assert(j.WebSocketMessage({ note = req.json.text }):send("notes"))
    assert(j.WebSocketMessage("note " .. req.json.text):broadcast())
    if req.query.fail then error("failed after staging") end
    return { ok = true }
  end)

Http.notes = j.Get("/notes", function()
  local rows = assert(persistence.use_session():query("SELECT text FROM notes ORDER BY id"))
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.text end
  return { notes = out }
end)

return j.Microservice {
  name = "websocket-app",
  controllers = { Ws, Http },
  interceptors = {
    persistence.SessionInterceptor {
      path = assert(os.getenv("WS_DB"), "WS_DB is required"),
      migrations = "websocket_migrations", migrate_on_start = true,
    },
    Marker,
  },
}
