-- The app of spec/integration/metrics_builtin_spec.lua: every built-in
-- metric family has something to count.
--   METRICS_DB    its SQLite database (required); the message bus's broker
--                 and the scheduler's store are files next to it
--   GET  /api/pid             { pid } (which worker answered)
--   POST /api/notes/{what}    writes a row (SQLite statements, a commit)
--   POST /api/publish/{topic} publishes {} to topic (staged, sent on commit)
--   WebSocket /ws/lobby       joins room "lobby", echoes each text message
--   handlers: ok.# (acks), fail.# (raises: retried once, then dead-lettered)
--   actions (scheduler): tick (ok), boom (raises), busy (2.5 s, no overlap:
--   the next ticks are skipped)
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local sys = require "jararaca.core.sys"

local db = assert(os.getenv("METRICS_DB"), "METRICS_DB not set")

local Api = j.RestController("/api", { name = "Api" })

Api.pid = j.Get("/pid", function() return { pid = sys.pid() } end)

Api.note = j.Post("/notes/{what}", { status = 201 }, function(_, req)
  assert(j.use_session():execute("INSERT INTO notes (what, pid) VALUES (?, ?)", { req.params.what, sys.pid() }))
  return { ok = true }
end)

Api.publish = j.Post("/publish/{topic}", { status = 202 }, function(_, req)
  assert(j.use_publisher():publish({}, req.params.topic))
  return { ok = true }
end)

local Ws = j.RestController("/ws", { name = "Ws" })

Ws.lobby = j.WebSocketEndpoint("/lobby", function(_, ws)
  assert(ws:accept())
  j.use_ws_manager():join("lobby", ws)
  for msg in ws:messages() do assert(ws:send_text(msg)) end
end)

local Handlers = j.MessageBusController { name = "Handlers" }

Handlers.ok = j.IncomingHandler("ok.#", function() end)

Handlers.fail = j.IncomingHandler("fail.#", { max_retries = 1, backoff = { initial = 0.01, jitter = 0 } },
  function() error("fails on purpose") end)

local Jobs = j.MessageBusController { name = "Jobs" }

Jobs.tick = j.ScheduledAction("* * * * * *", function() end)
Jobs.boom = j.ScheduledAction("* * * * * *", function() error("boom on purpose") end)
Jobs.busy = j.ScheduledAction("* * * * * *", { allow_overlap = false }, function() j.sleep(2.5) end)

return j.Microservice {
  name = "metricsall",
  controllers = { Api, Ws, Handlers, Jobs },
  metrics = true,
  bus = { url = "sqlite:///" .. db .. ".bus" },
  scheduler = { store = "sqlite:///" .. db .. ".sched" },
  interceptors = {
    persistence.SessionInterceptor { url = "sqlite:///" .. db, migrations = "metrics_all_migrations",
      migrate_on_start = true },
  },
}
