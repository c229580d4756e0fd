-- An app for spec/integration/sqlite_spec.lua: reads on the event loop or on
-- the readers' threads, the writer's queue and group commit, seen from HTTP.
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

-- Read, let other requests run, write: a read-modify-write in the default
-- mode of a POST (a write session: its turn at the writer from its first
-- statement).
Load.increment = j.Post("/counter/increment", function(self, req)
  local s = persistence.use_session()
  local n = assert(s:first("SELECT n FROM counter")).n
  j.sleep(0)
  assert(s:execute("UPDATE counter SET n = ?", { n + 1 }))
  return { n = n + 1 }
end)

Load.counter = j.Get("/counter", function(self, req)
  return persistence.use_session():first("SELECT n FROM counter")
end)

-- 16 KB of random bytes: a few WAL frames per insert.
Load.blob = j.Post("/blobs", { status = 201 }, function(self, req)
  local r = assert(persistence.use_session():execute("INSERT INTO blobs (data) VALUES (randomblob(16384))"))
  return { id = r.last_insert_id }
end)

Load.blob_count = j.Get("/blobs/count", function(self, req)
  return persistence.use_session():first("SELECT count(*) AS n FROM blobs")
end)

Load.stats = j.Get("/db-stats", function(self, req)
  local st = persistence.use_database():stats()
  return { writer = st.writer, readers = st.readers, pid = sys.pid() }
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
