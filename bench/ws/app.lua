-- bench/ws/app.lua: the WebSocket fan-out benchmark's server (the anchors'
-- interface, ../shared/bench/anchors/RESULTS.md section 3): every connection
-- to /ws joins room "bench"; GET /broadcast?msg=<text> (or POST with the
-- text as body) sends the text to the room, then answers "ok".
local j = require "jararaca"
local s = j.schema

local Bench = j.RestController("", { name = "BenchController" })

Bench.ws = j.WebSocketEndpoint("/ws", {}, function(_, ws)
  assert(ws:accept())
  local mgr = j.use_ws_manager()
  mgr:join("bench", ws)
  for _ in ws:messages() do end -- clients only listen; the loop ends when they leave
end)

Bench.get_broadcast = j.Get("/broadcast", { query = { msg = s.string():default("") } }, function(_, req)
  assert(j.use_ws_manager():send("bench", req.query.msg))
  return "ok"
end)

Bench.post_broadcast = j.Post("/broadcast", {}, function(_, req)
  assert(j.use_ws_manager():send("bench", req.body))
  return "ok"
end)

return j.Microservice { name = "ws-bench", controllers = { Bench } }
