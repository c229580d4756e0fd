-- An app for spec/integration/migrate_spec.lua: `jararaca migrate` and the
-- HTTP unit of work on SQLite.
--   MIGRATE_DB        the database file (required)
--   MIGRATE_DIR       the migrations directory (default: ./migrations, next to this file)
--   MIGRATE_ON_START  "1": apply pending migrations at startup
local j = require "jararaca"
local persistence = require "jararaca.persistence"

local Items = j.RestController("/items", { name = "ItemsController" })

-- Inserts, answers 201; the commit runs before the answer is sent.
Items.create = j.Post("/{name}", { status = 201 }, function(self, req)
  local r = assert(persistence.use_session():execute("INSERT INTO tasks (name) VALUES (?)", { req.params.name }))
  return { id = r.last_insert_id }
end)

-- Writes, then fails: nothing may remain.
Items.fail = j.Post("/fail/{name}", function(self, req)
  assert(persistence.use_session():execute("INSERT INTO tasks (name) VALUES (?)", { req.params.name }))
  error("handler failed after writing")
end)

-- The statement passes (deferred foreign key), the COMMIT fails: 500.
Items.bad_commit = j.Post("/bad-commit", function(self, req)
  assert(persistence.use_session():execute("INSERT INTO notes (task_id, text) VALUES (999, 'orphan')"))
  return { ok = true }
end)

Items.count = j.Get("/count", function(self, req)
  return { n = persistence.use_session():first("SELECT COUNT(*) AS n FROM tasks").n }
end)

-- No session at all for this route.
Items.ping = j.Get("/ping", { persistence = false }, function(self, req)
  local ok = pcall(persistence.use_session)
  return { session = ok }
end)

return j.Microservice {
  name = "migrations",
  controllers = { Items },
  interceptors = {
    persistence.SessionInterceptor {
      url = "sqlite:///" .. assert(os.getenv("MIGRATE_DB"), "MIGRATE_DB is not set"),
      migrations = os.getenv("MIGRATE_DIR") or "migrations",
      migrate_on_start = os.getenv("MIGRATE_ON_START") == "1",
    },
    persistence.SessionInterceptor { name = "audit", url = "sqlite:///:memory:" },
  },
}
