-- An app for spec/integration/bus_amqp_faults_spec.lua: `jararaca worker`
-- on RabbitMQ (JARARACA_BUS_URL=amqp://...) recording what it handles in
-- SQLite, for the fault tests (a broker restart, a worker killed mid-handler).
--   FAULTS_DB     the app's SQLite file (required)
--   FAULTS_HANG   set (non-empty): this process's "hang" handler never returns
-- Handlers:
--   record ("flow", { id }): one row per distinct id in `handled`, its
--     `runs` counting the commits (a message handled twice: runs = 2), and
--     the pid of the process;
--   hang ("hang", { id }): notes the run in `runs` (a transaction of its
--     own: kept when the process is killed), then in a FAULTS_HANG process
--     sleeps until killed; elsewhere records the id in `handled`.
-- The topology is declared at startup (bus.declare): a fresh node needs no
-- `jararaca declare` first.
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local sys = require "jararaca.core.sys"
local s = j.schema

local Id = s.object { id = s.string { min_length = 1 } }
local PID = sys.pid()
local HANG = (os.getenv("FAULTS_HANG") or "") ~= ""

local function record(id)
  assert(j.use_session():execute("INSERT INTO handled (id, runs, pid) VALUES (?, 1, ?) "
    .. "ON CONFLICT (id) DO UPDATE SET runs = runs + 1, pid = excluded.pid", { id, PID }))
end

local Worker = j.MessageBusController { name = "FaultWorker" }

Worker.record = j.IncomingHandler("flow", { payload = Id, prefetch = 100 }, function(_, msg)
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
