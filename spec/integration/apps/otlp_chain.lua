-- An app for spec/integration/otlp_export_spec.lua: tracing on, exported
-- over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT: the test receiver).
--   POST /chain      counts otlp_chain_requests_total, logs "hop http",
--                    publishes chain.one (its handler publishes chain.two)
--   WS /chain/ws     a span "ws inner" inside the handler, logs "hop ws"
--   tick             every second (exclusive = false: no store), a span
--                    "tick inner", logs "hop tick"
--   JARARACA_BUS_URL the broker (an embedded one shared by the processes)
local j = require "jararaca"

local requests = j.metrics.counter("otlp_chain_requests_total", "Chain requests.", { "kind" })

local Http = j.RestController("/chain", { name = "ChainController" })

Http.start = j.Post("", { status = 202 }, function()
  requests:inc { kind = "http" }
  j.log.info("hop http")
  assert(j.use_publisher():publish({ step = 1 }, "chain.one"))
  return { ok = true }
end)

local Ws = j.RestController("/chain", { name = "ChainSocket" })
Ws.ws = j.WebSocketEndpoint("/ws", function(_, ws)
  assert(ws:accept())
  j.start_span("ws inner", function() j.log.info("hop ws") end)
  ws:close(1000, "done")
end)

local Worker = j.MessageBusController { name = "Chain" }

Worker.one = j.IncomingHandler("chain.one", function()
  j.log.info("hop one")
  assert(j.use_publisher():publish({ step = 2 }, "chain.two"))
end)

Worker.two = j.IncomingHandler("chain.two", function()
  j.start_span("inner", function() j.log.info("hop two") end)
end)

Worker.tick = j.ScheduledAction("* * * * * *", { exclusive = false }, function()
  j.start_span("tick inner", function() j.log.info("hop tick") end)
end)

return j.Microservice {
  name = "otlpchain",
  controllers = { Http, Ws, Worker },
  tracing = { sample = 1.0 },
}
