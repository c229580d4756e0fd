-- `jararaca migrate` with the real binary, and the HTTP unit of work on
-- SQLite (commit before the answer, rollback on failure).
local server = require "spec.support.server"
local client = require "spec.support.client"
local process = require "jararaca.core.process"
local cjson = require "cjson"
local ffi = require "ffi"

pcall(ffi.cdef, "int mkdir(const char *path, unsigned int mode);")

local APP = "spec/integration/apps/migrations_app.lua"
local MIGRATIONS = "spec/integration/apps/migrations"

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Run the binary to completion: status, stdout, stderr.
local function run(args, env)
  local out, err = os.tmpname(), os.tmpname()
  local argv = { server.bin }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv.stdout, argv.stderr, argv.env = out, err, env
  local p = assert(process.spawn(argv))
  local status = p:wait(30)
  local o, e = read(out), read(err)
  os.remove(out)
  os.remove(err)
  return status, o, e
end

local tmp
local n = 0
local function fresh_db()
  n = n + 1
  return tmp .. "/db" .. n .. ".sqlite"
end

-- sqlite3 CLI for looking at the file from outside
local function sql(db, query)
  local f = assert(io.popen("sqlite3 -batch -noheader '" .. db .. "' \"" .. query .. "\" 2>&1"))
  local s = f:read("*a")
  f:close()
  return (s:gsub("%s+$", ""))
end

local function migrate(db, args, env)
  local a = { "migrate", APP }
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  env = env or {}
  env.MIGRATE_DB = db
  return run(a, env)
end

setup(function()
  tmp = os.tmpname()
  os.remove(tmp)
  assert(ffi.C.mkdir(tmp, 448) == 0)
end)

teardown(function()
  os.execute("rm -rf '" .. tmp .. "'")
end)

describe("jararaca migrate", function()
  it("applies the pending migrations, each recorded, and then applies nothing", function()
    local db = fresh_db()
    local status, out, err = migrate(db)
    assert.are.equal(0, status, out .. err)
    assert.truthy(out:find("database default: applied 0001_create_tasks.sql", 1, true), out)
    assert.truthy(out:find("database default: applied 0002_add_index.sql", 1, true), out)
    assert.truthy(out:find("database default: applied 0005_seed.lua", 1, true), out)
    assert.truthy(out:find("database default: applied 3 migrations (current version 0005)", 1, true), out)
    assert.are.equal("1|create_tasks\n2|add_index\n5|seed", sql(db, "SELECT version, name FROM jararaca_migrations ORDER BY version"))
    assert.are.equal("seeded by a Lua migration", sql(db, "SELECT name FROM tasks"))
    assert.are.equal("tasks_name", sql(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks'"))

    local status2, out2 = migrate(db)
    assert.are.equal(0, status2)
    assert.truthy(out2:find("database default: nothing to apply (current version 0005)", 1, true), out2)
    assert.are.equal("1", sql(db, "SELECT COUNT(*) FROM tasks"))
  end)

  it("--status lists every migration with its state and applies nothing", function()
    local db = fresh_db()
    local status, out, err = migrate(db, { "--status" })
    assert.are.equal(0, status, out .. err)
    assert.truthy(out:find("database default: " .. db, 1, true), out)
    assert.truthy(out:match("0001%s+0001_create_tasks%.sql%s+pending"), out)
    assert.truthy(out:match("0005%s+0005_seed%.lua%s+pending"), out)
    assert.truthy(out:find("current version: none; 3 pending", 1, true), out)
    assert.are.equal("", sql(db, "SELECT name FROM sqlite_master WHERE name = 'tasks'"))

    assert.are.equal(0, (migrate(db, { "--to", "2" })))
    local _, out2 = migrate(db, { "--status" })
    assert.truthy(out2:match("0001%s+0001_create_tasks%.sql%s+applied%s+%d%d%d%d%-%d%d%-%d%dT"), out2)
    assert.truthy(out2:match("0002%s+0002_add_index%.sql%s+applied"), out2)
    assert.truthy(out2:match("0005%s+0005_seed%.lua%s+pending"), out2)
    assert.truthy(out2:find("current version: 0002; 1 pending", 1, true), out2)
  end)

  it("stops at a failing migration with exit 1, naming the file; earlier ones stay applied", function()
    local dir = tmp .. "/broken"
    assert(ffi.C.mkdir(dir, 448) == 0)
    for _, f in ipairs { "0001_create_tasks.sql", "0002_add_index.sql", "0005_seed.lua" } do
      write(dir .. "/" .. f, read(MIGRATIONS .. "/" .. f))
    end
    write(dir .. "/0003_broken.sql", "INSERT INTO tasks (name) VALUES ('half');\nCREATE TABLEZ oops (x);\n")
    local db = fresh_db()
    local status, out, err = migrate(db, {}, { MIGRATE_DIR = dir })
    assert.are.equal(1, status, out .. err)
    assert.truthy(err:find("0003_broken.sql failed", 1, true), err)
    assert.truthy(err:find("syntax error", 1, true), err)
    assert.truthy(err:find("applied before the failure: 0001_create_tasks.sql, 0002_add_index.sql", 1, true), err)
    assert.are.equal("1\n2", sql(db, "SELECT version FROM jararaca_migrations ORDER BY version"))
    assert.are.equal("0", sql(db, "SELECT COUNT(*) FROM tasks")) -- the failing file's INSERT was rolled back

    -- fixed: the next run applies the rest
    write(dir .. "/0003_broken.sql", "INSERT INTO tasks (name) VALUES ('fixed');\n")
    local status2, out2, err2 = migrate(db, {}, { MIGRATE_DIR = dir })
    assert.are.equal(0, status2, out2 .. err2)
    assert.truthy(out2:find("applied 2 migrations (current version 0005)", 1, true), out2)
  end)

  it("warns about a migration changed after it was applied", function()
    local dir = tmp .. "/changed"
    assert(ffi.C.mkdir(dir, 448) == 0)
    write(dir .. "/0001_a.sql", "CREATE TABLE tasks (id INTEGER PRIMARY KEY, name TEXT);")
    local db = fresh_db()
    assert.are.equal(0, (migrate(db, {}, { MIGRATE_DIR = dir })))
    write(dir .. "/0001_a.sql", "CREATE TABLE tasks (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
    local status, out, err = migrate(db, {}, { MIGRATE_DIR = dir })
    assert.are.equal(0, status)
    assert.truthy(err:find("warning: database default: migration 0001_a.sql was changed after it was applied", 1, true), err)
    assert.truthy(out:find("nothing to apply", 1, true), out)
    local _, out2 = migrate(db, { "--status" }, { MIGRATE_DIR = dir })
    assert.truthy(out2:match("0001_a%.sql%s+changed"), out2)
  end)

  it("refuses duplicate numbers", function()
    local dir = tmp .. "/dup"
    assert(ffi.C.mkdir(dir, 448) == 0)
    write(dir .. "/0001_a.sql", "SELECT 1;")
    write(dir .. "/001_b.sql", "SELECT 1;")
    local status, _, err = migrate(fresh_db(), {}, { MIGRATE_DIR = dir })
    assert.are.equal(1, status)
    assert.truthy(err:find("duplicate migration number 1: ", 1, true), err)
  end)

  it("answers bad command lines with exit 2", function()
    local db = fresh_db()
    local s1, _, e1 = migrate(db, { "--name", "nope" })
    assert.are.equal(2, s1)
    assert.truthy(e1:find('no database named "nope"', 1, true), e1)
    assert.truthy(e1:find("configured: default, audit", 1, true), e1)
    local s2, _, e2 = migrate(db, { "--name", "audit" })
    assert.are.equal(2, s2)
    assert.truthy(e2:find('database "audit" has no migrations directory', 1, true), e2)
    local s3, _, e3 = migrate(db, { "--to", "x" })
    assert.are.equal(2, s3)
    assert.truthy(e3:find("--to expects a migration number", 1, true), e3)
    local s4, _, e4 = migrate(db, { "--bogus" })
    assert.are.equal(2, s4)
    assert.truthy(e4:find("unknown option --bogus", 1, true), e4)
    local s5, _, e5 = run({ "migrate" })
    assert.are.equal(2, s5)
    assert.truthy(e5:find("expected exactly one app file", 1, true), e5)
    local s6, o6 = run({ "migrate", "--help" })
    assert.are.equal(0, s6)
    assert.truthy(o6:find("usage: jararaca migrate APP.lua", 1, true))
    local s7, _, e7 = run({ "migrate", "spec/integration/apps/nope.lua" })
    assert.are.equal(1, s7)
    assert.truthy(e7:find("cannot open app file", 1, true), e7)
  end)

  it("--name selects one database", function()
    local db = fresh_db()
    local status, out, err = migrate(db, { "--name", "default", "--to", "1" })
    assert.are.equal(0, status, out .. err)
    assert.truthy(out:find("applied 1 migration (current version 0001)", 1, true), out)
  end)
end)

describe("the HTTP unit of work on SQLite", function()
  local srv, db

  setup(function()
    db = fresh_db()
    srv = server.start(APP, {}, { MIGRATE_DB = db, MIGRATE_ON_START = "1" })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  local function count()
    local res = assert(client.request(srv.port, "GET", "/items/count"))
    assert.are.equal(200, res.status)
    return cjson.decode(res.body).n
  end

  it("applied the migrations at startup", function()
    assert.are.equal(1, count()) -- the Lua migration's seed row
  end)

  it("commits before answering", function()
    local res = assert(client.request(srv.port, "POST", "/items/first"))
    assert.are.equal(201, res.status)
    -- visible from another process the moment the answer arrives
    assert.are.equal("first", sql(db, "SELECT name FROM tasks WHERE id = " .. cjson.decode(res.body).id))
  end)

  it("leaves no trace of a request that wrote and then failed", function()
    local before = count()
    local res = assert(client.request(srv.port, "POST", "/items/fail/ghost"))
    assert.are.equal(500, res.status)
    assert.are.equal(before, count())
    assert.are.equal("0", sql(db, "SELECT COUNT(*) FROM tasks WHERE name = 'ghost'"))
  end)

  it("answers 500 when the commit fails (not a 200 after the fact)", function()
    local res = assert(client.request(srv.port, "POST", "/items/bad-commit"))
    assert.are.equal(500, res.status)
    assert.are.equal("Internal Server Error", cjson.decode(res.body).detail)
    assert.are.equal("0", sql(db, "SELECT COUNT(*) FROM notes"))
    assert.truthy(srv:output():find("commit failed", 1, true))
  end)

  it("opts a route out of persistence", function()
    local res = assert(client.request(srv.port, "GET", "/items/ping"))
    assert.are.equal(200, res.status)
    assert.are.same({ session = false }, cjson.decode(res.body))
  end)
end)
