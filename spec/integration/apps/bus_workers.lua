-- An app for spec/integration/bus_workers_spec.lua and bus_trace_spec.lua:
-- `jararaca worker --workers N` and `--broker-url`, and the trace context of
-- an HTTP request / a WebSocket handshake on the messages it publishes.
--   BUS_W_DB    the SQLite file of the app (required)
--   BUS_W_URL   Microservice.bus.url (optional; --broker-url and
--               JARARACA_BUS_URL win over it)
-- Handlers: "work.#" records (message id, n, pid) in `handled`; "hold.#"
-- notes in `started`, waits for the gate, then does the same; "trace.#"
-- records the message's headers (JSON) in `seen`.
-- POST /trace { id, own? } publishes { id } to trace.http (own: the
-- publish sets its own traceparent); POST /trace/later { id } publishes it
-- from a task, after the request; WS /ws/trace?id=ID publishes { id } to
-- trace.ws once accepted, then closes.
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local sys = require "jararaca.core.sys"
local s = j.schema

local Http = j.RestController("/trace", { name = "TraceController" })

Http.trace = j.Post("", { body = s.object { id = s.string(), own = s.string():optional() }, status = 201 },
  function(_, req)
    local opts = req.json.own and { headers = { traceparent = req.json.own } } or nil
    assert(j.use_publisher():publish({ id = req.json.id }, "trace.http", opts))
    return { id = req.json.id }
  end)

-- A task the request leaves running publishes once the request is over:
-- the request cannot be read any more, so no trace context (and no error).
Http.later = j.Post("/later", { body = s.object { id = s.string() }, status = 202 }, function(_, req)
  local id = req.json.id
  j.spawn(function()
    j.sleep(0.1)
    assert(j.use_publisher():publish({ id = id }, "trace.later"))
  end)
  return { id = id }
end)

local Ws = j.RestController("/ws", { name = "TraceSocket" })

Ws.trace = j.WebSocketEndpoint("/trace", { query = { id = s.string() } }, function(_, ws)
  assert(ws:accept())
  assert(j.use_publisher():publish({ id = ws.request.query.id }, "trace.ws"))
  ws:close(1000, "published")
end)

local Worker = j.MessageBusController { name = "Recorder" }

Worker.work = j.IncomingHandler("work.#", { payload = s.object { n = s.integer() } }, function(_, msg)
  assert(j.use_session():execute("INSERT INTO handled (id, n, pid) VALUES (?, ?, ?)",
    { msg.id, msg:payload().n, sys.pid() }))
  -- a little work, so one process cannot drain the queue alone before the other wakes up
  j.sleep(0.005)
end)

-- For SIGTERM: notes that it started (a transaction of its own), waits
-- until the spec inserts the row gates(name = 'open'), then records the
-- message like "work.#": a stop must let it finish.
local function gate_open()
  return j.providing_new_session(function(session)
    return session:first("SELECT name FROM gates WHERE name = 'open'") ~= nil
  end)
end

Worker.hold = j.IncomingHandler("hold.#", { payload = s.object { n = s.integer() } }, function(_, msg)
  j.providing_new_session(function(session)
    assert(session:execute("INSERT INTO started (id, pid) VALUES (?, ?)", { msg.id, sys.pid() }))
  end)
  while not gate_open() do j.sleep(0.02) end
  assert(j.use_session():execute("INSERT INTO handled (id, n, pid) VALUES (?, ?, ?)",
    { msg.id, msg:payload().n, sys.pid() }))
end)

Worker.trace = j.IncomingHandler("trace.#", function(_, msg)
  assert(j.use_session():execute("INSERT INTO seen (id, headers) VALUES (?, ?)",
    { msg:payload().id, assert(j.json.encode(msg.headers)) }))
end)

local url = os.getenv("BUS_W_URL")
return j.Microservice {
  name = "busworkers",
  controllers = { Http, Ws, Worker },
  bus = url and url ~= "" and { url = url } or nil,
  interceptors = {
    persistence.SessionInterceptor {
      url = "sqlite:///" .. assert(os.getenv("BUS_W_DB"), "BUS_W_DB not set"),
      migrations = "bus_workers_migrations", migrate_on_start = true,
    },
  },
}
