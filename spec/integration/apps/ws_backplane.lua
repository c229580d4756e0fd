-- spec/integration/apps/ws_backplane.lua: instances that share WebSocket
-- rooms through a backplane (websocket_backplane_spec.lua). /ws?room=r joins
-- room r and first sends "pid <worker pid>"; GET /broadcast?msg= and
-- GET /send?room=&msg= fan out and answer the pid that served them.
local j = require "jararaca"
local s = j.schema
local sys = require "jararaca.core.sys"

local C = j.RestController("", { name = "BackplaneController" })

C.ws = j.WebSocketEndpoint("/ws", { query = { room = s.string():default("r") } }, function(_, ws)
  assert(ws:accept())
  assert(j.use_ws_manager():join(ws.request.query.room, ws))
  assert(ws:send_text("pid " .. sys.pid()))
  for _ in ws:messages() do end
end)

C.broadcast = j.Get("/broadcast", { query = { msg = s.string() } }, function(_, req)
  assert(j.use_ws_manager():broadcast(req.query.msg))
  return { pid = sys.pid() }
end)

C.send = j.Get("/send", { query = { room = s.string(), msg = s.string() } }, function(_, req)
  assert(j.use_ws_manager():send(req.query.room, req.query.msg))
  return { pid = sys.pid() }
end)

return j.Microservice { name = "ws-backplane", controllers = { C } }
