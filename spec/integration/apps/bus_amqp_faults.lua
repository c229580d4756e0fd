-- An app for spec/integration/bus_amqp_faults_spec.lua: `jararaca worker`
-- on RabbitMQ (JARARACA_BUS_URL=amqp://...) recording what it handles in
-- SQLite, for the fault tests (a broker restart, a worker killed mid-handler).
--   FAULTS_DB     the app's SQLite file (required)
--   FAULTS_HANG   set (non-empty): this process's "hang" handler never returns
--   FAULTS_WORK   seconds "record" spends on each message (default 0): with
--                 its prefetch, a bound on the rate (50 at a time)
-- Handlers:
--   record ("flow", { id }): one row per distinct id in `handled`, its
--     `runs` counting the commits (a message handled twice: runs = 2), and
--     the pid of the process;
--   hang ("hang", { id }): notes the run in `runs` (a transaction of its
--     own: kept when the process is killed), then in a FAULTS_HANG process
--     sleeps until killed; elsewhere records the id in `handled`;
--   later ("later", { id }): notes the run in `runs`; its first attempt
--     fails, so the message waits 5 s in the delay queue faults.wait.5000
--     (a durable TTL queue) before its second, which records the id.
-- The topology is declared at startup (bus.declare): a fresh node needs no
-- `jararaca declare` first.
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local sys = require "jararaca.core.sys"
local s = j.schema

local Id = s.object { id = s.string { min_length = 1 } }
local PID = sys.pid()
local HANG = (os.getenv("FAULTS_HANG") or "") ~= ""
local WORK = tonumber(os.getenv("FAULTS_WORK") or "") or 0

local function record(id)
  assert(j.use_session():execute("INSERT INTO handled (id, runs, pid) VALUES (?, 1, ?) "
    .. "ON CONFLICT (id) DO UPDATE SET runs = runs + 1, pid = excluded.pid", { id, PID }))
end

local Worker = j.MessageBusController { name = "FaultWorker" }

Worker.record = j.IncomingHandler("flow", { payload = Id, prefetch = 50 }, function(_, msg)
  if WORK > 0 then j.sleep(WORK) end
  record(msg:payload().id)
end)

Worker.hang = j.IncomingHandler("hang", { payload = Id, timeout = 3600 }, function(_, msg)
  local id = msg:payload().id
  j.providing_new_session(function(session)
    assert(session:execute("INSERT INTO runs (id, pid, attempt) VALUES (?, ?, ?)", { id, PID, msg.attempt }))
  end)
  if HANG then j.sleep(3600) end
  record(id)
end)

Worker.later = j.IncomingHandler("later", { payload = Id, max_retries = 1,
  backoff = { initial = 5, factor = 1, max = 5, jitter = 0 } }, function(_, msg)
  local id = msg:payload().id
  j.providing_new_session(function(session)
    assert(session:execute("INSERT INTO runs (id, pid, attempt) VALUES (?, ?, ?)", { id, PID, msg.attempt }))
  end)
  if msg.attempt == 1 then error("later: the first attempt fails", 0) end
  record(id)
end)

return j.Microservice {
  name = "faults",
  controllers = { Worker },
  bus = { declare = true },
  interceptors = {
    persistence.SessionInterceptor {
      url = "sqlite:///" .. assert(os.getenv("FAULTS_DB"), "FAULTS_DB not set"),
      migrations = "bus_amqp_faults_migrations", migrate_on_start = true,
    },
  },
}
