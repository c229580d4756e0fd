-- An app for spec/integration/bus_spec.lua: HTTP publishes (staged), a
-- MessageBusController handles, under `jararaca worker`, on the embedded
-- broker (the default file next to the app's database).
--   BUS_APP_DB   the SQLite file of the app (required)
-- POST /jobs { id, kind, tenant? } inserts a job and publishes "job.<kind>";
-- POST /jobs/fail-after-publish publishes and then fails (nothing is sent);
-- GET /jobs/{id} answers the job.
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local s = j.schema

local Job = s.object { id = s.string { min_length = 1 }, kind = s.string() }

-- A message type: a named schema carrying its topic (j.Message).
local JobTyped = j.Message("JobTyped", { topic = "job.typed",
  fields = { id = s.string { min_length = 1 }, n = s.integer { minimum = 0 } } })

local Jobs = j.RestController("/jobs", { name = "JobsController" })

-- Publishes a typed message (its topic is the type's); a payload that does
-- not fit the type is refused by the publisher: 422 with its message.
Jobs.typed = j.Post("/typed", { body = s.object { id = s.string(), n = s.any() }, status = 201 }, function(_, req)
  local ok, err, code = j.use_publisher():publish(JobTyped { id = req.json.id, n = req.json.n })
  if not ok then error(j.HTTPError(422, code .. ": " .. err)) end
  return { id = req.json.id }
end)

Jobs.create = j.Post("", { body = s.object { id = s.string(), kind = s.string(), tenant = s.string():optional() },
  status = 201 }, function(_, req)
  local b = req.json
  assert(j.use_session():execute("INSERT INTO jobs (id, kind, status) VALUES (?, ?, 'new')", { b.id, b.kind }))
  local headers = b.tenant and { ["x-tenant"] = b.tenant } or nil
  assert(j.use_publisher():publish({ id = b.id, kind = b.kind }, "job." .. b.kind, { headers = headers }))
  return { id = b.id }
end)

Jobs.fail_after_publish = j.Post("/fail-after-publish", { body = s.object { id = s.string() } }, function(_, req)
  assert(j.use_session():execute("INSERT INTO jobs (id, kind, status) VALUES (?, 'ok', 'new')", { req.json.id }))
  assert(j.use_publisher():publish({ id = req.json.id, kind = "ok" }, "job.ok"))
  error(j.HTTPError(409, "refused after publishing"))
end)

Jobs.get_item = j.Get("/{id}", function(_, req)
  local row = j.use_session():first("SELECT id, kind, status, attempt FROM jobs WHERE id = ?", { req.params.id })
  if not row then error(j.HTTPError(404, "no such job")) end
  return row
end)

-- A run's trace, in a transaction of its own: kept whatever the run does.
local function note_run(msg, handler)
  j.providing_new_session(function(session)
    assert(session:execute("INSERT INTO runs (id, handler, attempt, retry_count, tenant) VALUES (:id, :handler, "
      .. ":attempt, :retries, :tenant)", { id = msg:payload().id, handler = handler, attempt = msg.attempt,
      retries = msg.headers["x-retry-count"], tenant = msg.headers["x-tenant"] or "-" }))
  end)
end

local function finish(msg, status)
  assert(j.use_session():execute("UPDATE jobs SET status = ?, attempt = ? WHERE id = ?",
    { status, msg.attempt, msg:payload().id }))
end

local function gate_open(name)
  return j.providing_new_session(function(session)
    return session:first("SELECT name FROM gates WHERE name = ?", { name }) ~= nil
  end)
end

local FAST = { initial = 0.05, factor = 1, max = 0.05, jitter = 0 }

local Worker = j.MessageBusController { name = "JobWorker", group = "jobs" }

Worker.process = j.IncomingHandler("job.ok", { payload = Job }, function(_, msg)
  note_run(msg, "process")
  finish(msg, "done")
  assert(j.use_publisher():publish({ id = msg:payload().id }, "job.done"))
end)

Worker.on_done = j.IncomingHandler("job.done", { group = "follow-up" }, function(_, msg)
  assert(j.use_session():execute("INSERT INTO done (id) VALUES (?)", { msg:payload().id }))
end)

Worker.flaky = j.IncomingHandler("job.flaky", { max_retries = 3, backoff = FAST, payload = Job }, function(_, msg)
  note_run(msg, "flaky")
  finish(msg, "failing")
  if msg.attempt < 3 then error("flaky: attempt " .. msg.attempt .. " fails") end
  finish(msg, "done")
end)

Worker.always_fails = j.IncomingHandler("job.fail", { max_retries = 2, backoff = FAST, payload = Job }, function(_, msg)
  note_run(msg, "always_fails")
  error("this handler always fails")
end)

Worker.slow = j.IncomingHandler("job.slow", { timeout = 0.5, max_retries = 2, backoff = FAST, payload = Job },
  function(_, msg)
    note_run(msg, "slow")
    if msg.attempt == 1 then j.sleep(3600) end
    finish(msg, "done")
  end)

Worker.rollback = j.IncomingHandler("job.rollback", { max_retries = 0, payload = Job }, function(_, msg)
  finish(msg, "written")
  assert(j.use_publisher():publish({ id = msg:payload().id .. "-side", kind = "ok" }, "job.ok"))
  error("rolled back after writing and publishing")
end)

Worker.dispositions = j.IncomingHandler("job.dispose", { max_retries = 1, backoff = FAST, payload = Job },
  function(_, msg)
    note_run(msg, "dispositions")
    local how = msg:payload().kind
    if how == "reject" then msg:reject("not for us")
    elseif how == "retry_later" then
      if msg.attempt == 1 then msg:retry_later(0.05) else finish(msg, "done") end
    elseif how == "retry" then
      if msg.attempt == 1 then msg:retry() else finish(msg, "done") end
    elseif how == "nack" then -- released without counting: the second run sees attempt 1 again
      local n = j.providing_new_session(function(session)
        return session:first("SELECT count(*) AS n FROM runs WHERE id = ?", { msg:payload().id }).n
      end)
      if n == 1 then msg:nack() else assert(msg.attempt == 1, "nack counted as a retry") end
    elseif how == "ack_then_fail" then
      msg:ack()
      if msg.attempt == 1 then error("failed after ack()") end
      finish(msg, "done")
    end
  end)

local function saw(id, handler, value)
  j.providing_new_session(function(session)
    assert(session:execute("INSERT INTO seen (id, handler, value) VALUES (?, ?, ?)", { id, handler, value }))
  end)
end

-- MessageHandler: the topic and the payload's schema come from the type.
Worker.typed = j.MessageHandler(JobTyped, { max_retries = 0 }, function(_, msg)
  local p = msg:payload()
  saw(p.id, "typed", msg.topic .. " " .. p.n)
end)

-- Header propagation (Microservice.bus.propagate_headers below): chain_a
-- fails once (so its message has x-retry-count 1), then publishes to
-- job.chained with a header of its own; chain_b notes the headers it got.
Worker.chain_a = j.IncomingHandler("job.chain", { max_retries = 2, backoff = FAST }, function(_, msg)
  if msg.attempt == 1 then error("chain_a fails its first attempt") end
  assert(j.use_publisher():publish({ id = msg:payload().id }, "job.chained", { headers = { ["x-own"] = "a" } }))
end)

Worker.chain_b = j.IncomingHandler("job.chained", function(_, msg)
  saw(msg:payload().id, "chain_b", assert(j.json.encode(msg.headers)))
end)

-- For SIGTERM: "hold" waits for its gate (finishes within the grace
-- period), "stuck" never returns (cancelled and released at its end).
Worker.hold = j.IncomingHandler("job.hold", { group = "shutdown", payload = Job }, function(_, msg)
  note_run(msg, "hold")
  while not gate_open(msg:payload().id) do j.sleep(0.02) end
  finish(msg, "done")
end)

Worker.stuck = j.IncomingHandler("job.stuck", { group = "shutdown", payload = Job }, function(_, msg)
  note_run(msg, "stuck")
  j.sleep(3600)
end)

return j.Microservice {
  name = "busapp",
  controllers = { Jobs, Worker },
  bus = { propagate_headers = { "X-Tenant" } },
  interceptors = {
    persistence.SessionInterceptor {
      url = "sqlite:///" .. assert(os.getenv("BUS_APP_DB"), "BUS_APP_DB not set"),
      migrations = "bus_migrations", migrate_on_start = true,
    },
  },
}
