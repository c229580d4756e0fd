-- An app for spec/integration/scheduler_spec.lua: `jararaca scheduler`
-- (select the actions with --actions).
--   SCHED_DB    the SQLite file of the app (required)
-- Every action records its run in `runs` through j.use_session() (the
-- run's transaction), so a run that failed leaves no row there:
--   every     every second: records the run (tick, fired_at, token, pid)
--   slow      every second, allow_overlap = false: notes it started, takes 2.5 s
--   overlap   every second, allow_overlap = true: the same
--   sleepy    every second, timeout = 0.3: notes it started, records, sleeps 5 s (cancelled)
--   fails     every second: records, publishes to sched.failed, then raises;
--             its exception_handler notes the error in `errors` (a session of its own)
--   publish   every second: records and publishes { tick } to sched.out (sent on commit)
--   hold      every second: notes it started, takes 3 s, records (for SIGTERM's grace period)
--   catchup   every second, misfire = "run_once": records
--   viabus    every second, dispatch = "bus" (a worker runs it): records
--   nocommit  every second, dispatch = "bus": notes it started, then writes an
--             orphan (a deferred foreign key): the action returns, its COMMIT fails
--   everywhere  every second, exclusive = false: records (in every scheduler process)
-- The interceptor notes every scheduled transaction in `intercepted` (in
-- a session of its own).
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local sys = require "jararaca.core.sys"

local function note(tbl, r)
  j.providing_new_session(function(session)
    assert(session:execute("INSERT INTO " .. tbl .. " (action, tick, pid) VALUES (?, ?, ?)",
      { r.action, r.tick, sys.pid() }))
  end)
end

local function record(r)
  assert(j.use_session():execute("INSERT INTO runs (action, tick, fired_at, token, pid) VALUES (?, ?, ?, ?, ?)",
    { r.action, r.tick, r.fired_at, r.token or j.json.null, sys.pid() }))
end

local Jobs = j.MessageBusController { name = "Jobs", group = "jobs" }

Jobs.every = j.ScheduledAction("* * * * * *", function(_, r) record(r) end)

Jobs.slow = j.ScheduledAction("* * * * * *", { allow_overlap = false }, function(_, r)
  note("started", r)
  j.sleep(2.5)
  record(r)
end)

Jobs.overlap = j.ScheduledAction("* * * * * *", { allow_overlap = true }, function(_, r)
  note("started", r)
  j.sleep(2.5)
  record(r)
end)

Jobs.sleepy = j.ScheduledAction("* * * * * *", { timeout = 0.3, allow_overlap = true }, function(_, r)
  note("started", r)
  record(r)
  j.sleep(5)
end)

Jobs.fails = j.ScheduledAction("* * * * * *", {
  exception_handler = function(_, err, r)
    j.providing_new_session(function(session)
      assert(session:execute("INSERT INTO errors (action, tick, err) VALUES (?, ?, ?)",
        { r.action, r.tick, tostring(err) }))
    end)
  end,
}, function(_, r)
  record(r)
  assert(j.use_publisher():publish({ tick = r.tick }, "sched.failed"))
  error("fails on purpose at tick " .. r.tick)
end)

Jobs.publish = j.ScheduledAction("* * * * * *", { group = "pub" }, function(_, r)
  record(r)
  assert(j.use_publisher():publish({ tick = r.tick }, "sched.out"))
end)

Jobs.hold = j.ScheduledAction("* * * * * *", function(_, r)
  note("started", r)
  j.sleep(3)
  record(r)
end)

Jobs.catchup = j.ScheduledAction("* * * * * *", { misfire = "run_once" }, function(_, r) record(r) end)

Jobs.viabus = j.ScheduledAction("* * * * * *", { dispatch = "bus", group = "bus" }, function(_, r) record(r) end)

Jobs.nocommit = j.ScheduledAction("* * * * * *", { dispatch = "bus", group = "bus" }, function(_, r)
  note("started", r)
  assert(j.use_session():execute("INSERT INTO orphans (parent) VALUES (?)", { r.tick }))
end)

Jobs.everywhere = j.ScheduledAction("* * * * * *", { exclusive = false }, function(_, r) record(r) end)

local Noter = { inject = {} }
Noter.__index = Noter
function Noter.enter(_, ctx)
  if ctx.kind ~= "schedule" then return end
  local r = ctx.run
  j.providing_new_session(function(session)
    assert(session:execute("INSERT INTO intercepted (action, tick, kind) VALUES (?, ?, ?)",
      { r.action, r.tick, ctx.kind }))
  end)
end

return j.Microservice {
  name = "sched",
  controllers = { Jobs },
  interceptors = {
    persistence.SessionInterceptor {
      url = "sqlite:///" .. assert(os.getenv("SCHED_DB"), "SCHED_DB not set"),
      migrations = "sched_migrations", migrate_on_start = true,
    },
    Noter,
  },
}
