-- An app for spec/integration/trace_chain_spec.lua: tracing on, a chain
-- HTTP request -> publish -> worker -> publish -> worker. Each hop logs
-- "hop <name> inbound=<the traceparent it received>"; the log line itself
-- carries the hop's trace and span ids (jararaca.log); every finished span
-- is logged too (its exporter), so the producer spans of the publishes show.
--   POST /chain         publishes chain.one (its handler publishes chain.two)
--   WS /chain/ws        publishes chain.ws from the connection
--   JARARACA_BUS_URL    the broker (an embedded one shared by both processes)
local j = require "jararaca"

local Http = j.RestController("/chain", { name = "ChainController" })

Http.start = j.Post("", { status = 202 }, function()
  j.log.info("hop http")
  assert(j.use_publisher():publish({ step = 1 }, "chain.one"))
  return { ok = true }
end)

-- WS /chain/ws: publishes chain.ws once accepted, then closes
local Ws = j.RestController("/chain", { name = "ChainSocket" })
Ws.ws = j.WebSocketEndpoint("/ws", function(_, ws)
  assert(ws:accept())
  j.log.info("hop wsconn")
  assert(j.use_publisher():publish({ step = 1 }, "chain.ws"))
  ws:close(1000, "published")
end)

local Worker = j.MessageBusController { name = "Chain" }

Worker.ws = j.IncomingHandler("chain.ws", function(_, msg)
  j.log.info("hop ws inbound=", tostring(msg.headers.traceparent))
end)

Worker.one = j.IncomingHandler("chain.one", function(_, msg)
  j.log.info("hop one inbound=", tostring(msg.headers.traceparent))
  assert(j.use_publisher():publish({ step = 2 }, "chain.two"))
end)

Worker.two = j.IncomingHandler("chain.two", function(_, msg)
  j.start_span("inner", function()
    j.log.info("hop two inbound=", tostring(msg.headers.traceparent))
  end)
end)

return j.Microservice {
  name = "tracechain",
  controllers = { Http, Ws, Worker },
  -- every finished span logged: "span <name> <kind> <span id> parent=<id>"
  tracing = { sample = 1.0, batch_size = 1, exporter = function(batch)
    for _, sp in ipairs(batch) do
      j.log.info("span ", sp.name, " ", sp.kind, " ", sp.span_id, " parent=", tostring(sp.parent_id))
    end
  end },
}
