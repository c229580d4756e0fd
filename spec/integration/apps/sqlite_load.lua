-- An app for spec/integration/sqlite_spec.lua: statements on the event loop
-- or on the connections' threads, seen from HTTP.
--   LOAD_DB   the database file (required)
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local sys = require "jararaca.core.sys"

local COUNT_TO = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) AS n FROM c"

local Load = j.RestController("", { name = "LoadController" })

-- One query whose cost is its parameter: quick with n = 10, seconds long
-- with n = 30000000, the same SQL text (so the same cached statement).
Load.count_to = j.Get("/count-to/{n:int}", function(self, req)
  return { n = persistence.use_session():first(COUNT_TO, { req.params.n }).n }
end)

Load.create = j.Post("/items", { status = 201 }, function(self, req)
  local s = persistence.use_session()
  local row = assert(s:first("INSERT INTO items (id, pid) VALUES (?, ?) RETURNING id", { j.uuid4(), sys.pid() }))
  return { id = row.id, pid = sys.pid() }
end)

Load.count = j.Get("/items/count", function(self, req)
  return persistence.use_session():first("SELECT count(*) AS n, count(DISTINCT pid) AS pids FROM items")
end)

return j.Microservice {
  name = "sqlite-load",
  controllers = { Load },
  interceptors = {
    persistence.SessionInterceptor {
      path = assert(os.getenv("LOAD_DB"), "LOAD_DB is required"),
      migrations = "sqlite_load_migrations", migrate_on_start = true,
    },
  },
}
