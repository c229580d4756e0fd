-- An app for spec/integration/server_scheduler_spec.lua: `jararaca server
-- --scheduler` serves HTTP and fires the scheduled action in one process.
--   SCHED_DB    the SQLite file of the app (required; the tables of sched_migrations)
--   every       every second: records the run (tick, fired_at, token, pid) in `runs`
--   GET /runs   the runs so far, in tick order, and the pid that answered
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local sys = require "jararaca.core.sys"

local Jobs = j.RestController("", { name = "Jobs" })

Jobs.every = j.ScheduledAction("* * * * * *", function(_, r)
  assert(j.use_session():execute("INSERT INTO runs (action, tick, fired_at, token, pid) VALUES (?, ?, ?, ?, ?)",
    { r.action, r.tick, r.fired_at, r.token or j.json.null, sys.pid() }))
end)

Jobs.runs = j.Get("/runs", function()
  local rows = assert(j.use_session():query("SELECT tick, fired_at, pid FROM runs ORDER BY tick, pid"))
  return { pid = sys.pid(), runs = rows }
end)

return j.Microservice {
  name = "sched",
  controllers = { Jobs },
  interceptors = {
    persistence.SessionInterceptor {
      url = "sqlite:///" .. assert(os.getenv("SCHED_DB"), "SCHED_DB not set"),
      migrations = "sched_migrations", migrate_on_start = true,
    },
  },
}
