-- Specs for jararaca.persistence: sessions per transaction (commit/rollback,
-- lazy acquisition, named databases, opt-out, independent sessions), CRUD,
-- Query and migrations, on real SQLite files in a temporary directory.
-- Transactions are driven through jararaca.interceptors.run as the HTTP
-- server does (exit runs before anything is answered).
local ffi = require "ffi"
local persistence = require "jararaca.persistence"
local migrate = require "jararaca.persistence.migrate"
local interceptors = require "jararaca.interceptors"
local context = require "jararaca.context"
local di = require "jararaca.di"
local sched = require "jararaca.sched"
local json = require "jararaca.json"
local s = require "jararaca.schema"
local controller = require "jararaca.http.controller"

pcall(ffi.cdef, "int mkdir(const char *path, unsigned int mode);")

local use_session = persistence.use_session

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

local tmp_root
local counter = 0

local function temp_dir()
  counter = counter + 1
  local d = tmp_root .. "/d" .. counter
  assert(ffi.C.mkdir(d, 448) == 0, "mkdir " .. d)
  return d
end

local function temp_db()
  counter = counter + 1
  return tmp_root .. "/db" .. counter .. ".sqlite"
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- An "app": a container and started interceptors.
local App = {}
App.__index = App

local function start(list, app_fields)
  local container = di.Container.new({})
  local saved = context.current()
  context.bind(context.new("startup", container, { app_kind = "test" }))
  local ok, lc = pcall(interceptors.start, app_fields or {}, container, list)
  context.bind(saved)
  if not ok then error(lc, 0) end
  return setmetatable({ container = container, lc = lc, list = lc.list }, App)
end

-- Run fn(...) as one transaction: true, results | false, err.
function App:tx(fn, fields)
  local own = {} -- context.new uses the table it gets as the context: one per transaction
  for k, v in pairs(fields or {}) do own[k] = v end
  local ctx = context.new(own.kind or "test", self.container, own)
  local saved = context.current()
  context.bind(ctx)
  local function pack(...) return { n = select("#", ...), ... } end
  local r = pack(interceptors.run(self.list, ctx, fn))
  context.bind(saved)
  return unpack(r, 1, r.n)
end

-- Run fn with a plain context of this app (no transaction): for
-- providing_new_session and misuse checks.
function App:with_ctx(fn, kind)
  local saved = context.current()
  context.bind(context.new(kind or "startup", self.container, {}))
  local r = { pcall(fn) }
  context.bind(saved)
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2)
end

function App:stop()
  self.lc:stop()
end

-- Read through an independent session (a fresh transaction).
function App:read(sql, params, name)
  return self:with_ctx(function()
    return persistence.providing_new_session(name or "default", function(ss)
      return assert(ss:query(sql, params))
    end)
  end)
end

function App:count(table_name, name)
  return self:read("SELECT COUNT(*) AS n FROM " .. table_name, nil, name)[1].n
end

-- Let the other tasks run until cond() holds (they have queued for the
-- writer or a reader, say): an awaited state, not a guessed delay.
local wait = require "spec.support.wait"
local function until_true(cond, what) return wait.until_true(cond, what, 5, 0) end

local function db_app(opts, more)
  local list = { persistence.SessionInterceptor(opts) }
  for _, x in ipairs(more or {}) do list[#list + 1] = x end
  return start(list)
end

local function script(app, text, name)
  app:with_ctx(function()
    persistence.providing_new_session(name or "default", function(ss) assert(ss:exec_script(text)) end)
  end)
end

setup(function()
  tmp_root = os.tmpname()
  os.remove(tmp_root)
  assert(ffi.C.mkdir(tmp_root, 448) == 0)
end)

teardown(function()
  os.execute("rm -rf '" .. tmp_root .. "'")
end)

---------------------------------------------------------------------------

describe("persistence.SessionInterceptor options", function()
  it("parses sqlite URLs (relative, absolute, memory) and rejects others", function()
    assert.are.equal("tasks.db", persistence.parse_url("sqlite:///tasks.db"))
    assert.are.equal("data/tasks.db", persistence.parse_url("sqlite:///data/tasks.db"))
    assert.are.equal("/var/lib/x.db", persistence.parse_url("sqlite:////var/lib/x.db"))
    assert.are.equal(":memory:", persistence.parse_url("sqlite:///:memory:"))
    local _, e1, c1 = persistence.parse_url("postgresql://localhost/db")
    assert.are.equal("invalid", c1)
    assert.truthy(e1:find("only sqlite:/// URLs are supported", 1, true))
    local _, e2 = persistence.parse_url("sqlite://x.db")
    assert.truthy(e2:find("sqlite:///relative/path.db", 1, true))
    local _, e3 = persistence.parse_url("sqlite:///")
    assert.truthy(e3:find("no file path", 1, true))
    local _, e4 = persistence.parse_url("sqlite:///x.db?mode=ro")
    assert.truthy(e4:find("query parameters", 1, true))
  end)

  it("has the documented defaults", function()
    local db = persistence.SessionInterceptor { url = "sqlite:///x.db" }
    assert.are.equal("default", db.name)
    local o = db.options
    assert.are.equal(4, o.readers)
    assert.are.equal(5, o.busy_timeout)
    assert.are.equal(30, o.acquire_timeout)
    assert.are.equal("WAL", o.journal_mode)
    assert.are.equal("NORMAL", o.synchronous)
    assert.is_true(o.foreign_keys)
    assert.are.equal(64, o.statement_cache)
    assert.are.equal(100, o.read_deadline_us)
    assert.is_true(o.group_commit)
    assert.is_false(db.migrate_on_start)
    assert.are.equal(0, persistence.SessionInterceptor { url = "sqlite:///:memory:" }.options.readers)
  end)

  it("raises at the declaration for bad options", function()
    local SI = persistence.SessionInterceptor
    assert.truthy(err_of(SI, {}):find("url is required", 1, true))
    assert.truthy(err_of(SI, { url = "mysql://x" }):find("only sqlite", 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///x", pool = 3 }):find('unknown option "pool" (known: acquire_timeout', 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///x", readers = "4" }):find('option readers must be an integer from 0 to 64, got "4"', 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///x", readers = 1.5 }):find("option readers must be an integer from 0 to 64, got 1.5", 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///x", journal_mode = "fast" }):find("option journal_mode must be one of WAL,", 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///x", synchronous = "x" }):find("option synchronous must be one of", 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///x", busy_timeout = -1 }):find("option busy_timeout must be a number from 0", 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///x", pragmas = { ["a b"] = 1 } }):find("pragma names must be identifiers", 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///x", migrations = 3 }):find("option migrations must be a string", 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///:memory:", readers = 2 }):find("readers must be 0", 1, true))
    assert.truthy(err_of(SI, { url = "sqlite:///x", path = "y" }):find("url or path, not both", 1, true))
  end)

  it("fails the startup when the file cannot be opened, naming the database", function()
    local e = err_of(start, { persistence.SessionInterceptor { url = "sqlite:///" .. tmp_root .. "/no/such/dir/x.db" } })
    assert.truthy(e:find('cannot open database "default"', 1, true), e)
  end)

  it("refuses two databases with the same name", function()
    local e = err_of(start, {
      persistence.SessionInterceptor { path = temp_db() },
      persistence.SessionInterceptor { path = temp_db() },
    })
    assert.truthy(e:find('database "default" is configured twice', 1, true), e)
  end)
end)

describe("persistence sessions", function()
  local app

  before_each(function()
    app = db_app { path = temp_db(), readers = 2 }
    script(app, [[
      CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
      CREATE TABLE parent (id INTEGER PRIMARY KEY);
      CREATE TABLE child (id INTEGER PRIMARY KEY,
        parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
    ]])
  end)

  after_each(function() app:stop() end)

  it("commits when the transaction succeeds", function()
    local ok, id = app:tx(function()
      local r = assert(use_session():execute("INSERT INTO items (name) VALUES (?)", { "a" }))
      assert.are.equal(1, r.changes)
      return r.last_insert_id
    end)
    assert.is_true(ok, tostring(id))
    assert.are.same({ { id = id, name = "a" } }, app:read("SELECT id, name FROM items"))
  end)

  it("rolls back when it fails: a request that writes and then fails leaves no trace", function()
    local ok, err = app:tx(function()
      assert(use_session():execute("INSERT INTO items (name) VALUES (?)", { "a" }))
      assert(use_session():execute("INSERT INTO items (name) VALUES (:name)", { name = "b" }))
      error("boom", 0)
    end)
    assert.is_false(ok)
    assert.are.equal("boom", err)
    assert.are.equal(0, app:count("items"))
  end)

  it("rolls back when a later interceptor's exit fails", function()
    local failing = { exit = function() error("flush failed", 0) end }
    local app2 = start({ persistence.SessionInterceptor { path = app.list[1].path, name = "default" }, failing })
    local ok, err = app2:tx(function()
      assert(use_session():execute("INSERT INTO items (name) VALUES ('x')"))
    end)
    assert.is_false(ok)
    assert.are.equal("flush failed", err)
    assert.are.equal(0, app:count("items"))
    app2:stop()
  end)

  it("returns nil, err, code from statements and keeps the transaction usable", function()
    local ok, res = app:tx(function()
      local ss = use_session()
      assert(ss:execute("INSERT INTO items (name) VALUES ('a')"))
      local r, err, code = ss:execute("INSERT INTO items (name) VALUES ('a')")
      assert.is_nil(r)
      assert.truthy(tostring(err):find("UNIQUE", 1, true), err)
      assert.are.equal("constraint", code)
      local r2, err2 = ss:query("SELEC nonsense")
      assert.is_nil(r2)
      assert.truthy(err2)
      assert.is_nil(ss:first("SELECT * FROM items WHERE name = ?", { "zzz" }))
      assert.are.equal("a", ss:first("SELECT name FROM items").name)
      local rows, cols = ss:query("SELECT id, name FROM items")
      assert.are.equal(1, #rows)
      assert.are.same({ "id", "name" }, cols)
      return "done"
    end)
    assert.is_true(ok, tostring(res))
    assert.are.equal(1, app:count("items"))
  end)

  it("surfaces a failed commit as the transaction's error (and leaves nothing)", function()
    local ok, err = app:tx(function()
      -- a deferred foreign key: the statement passes, the COMMIT fails
      assert(use_session():execute("INSERT INTO child (id, parent_id) VALUES (1, 42)"))
      return "answer built"
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('database "default": commit failed', 1, true), tostring(err))
    assert.truthy(tostring(err):find("FOREIGN KEY", 1, true), tostring(err))
    assert.are.equal(0, app:count("child"))
    -- the connection went back to the pool in a clean state
    local ok2 = app:tx(function() assert(use_session():execute("INSERT INTO parent (id) VALUES (1)")) end)
    assert.is_true(ok2)
    assert.are.equal(1, app:count("parent"))
  end)

  it("notices when SQLite abandons the transaction itself, and fails at commit", function()
    script(app, [[CREATE TABLE guarded (x);
      CREATE TRIGGER no_guarded BEFORE INSERT ON guarded BEGIN SELECT RAISE(ROLLBACK, 'refused'); END;]])
    local ok, err = app:tx(function()
      local ss = use_session()
      assert(ss:execute("INSERT INTO items (name) VALUES ('before')"))
      local r, e = ss:execute("INSERT INTO guarded VALUES (1)")
      assert.is_nil(r)
      assert.truthy(e:find("refused", 1, true))
      -- without the check this would autocommit on its own
      local r2, e2, code2 = ss:execute("INSERT INTO items (name) VALUES ('after')")
      assert.is_nil(r2)
      assert.are.equal("aborted", code2)
      assert.truthy(e2:find("rolled back by SQLite", 1, true), e2)
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('database "default": cannot commit: the transaction was rolled back by SQLite', 1, true),
      tostring(err))
    assert.are.equal(0, app:count("items"))
  end)

  it("begins again when BEGIN did not take (another process held the write lock)", function()
    -- two apps on one file: two writers, as two worker processes have
    local path = temp_db()
    local one = db_app { path = path, busy_timeout = 0.05 }
    local other = db_app { path = path }
    script(one, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    local release, holding = false, false
    local holder = sched.spawn(function()
      other:with_ctx(function()
        persistence.providing_new_session(function(ss)
          assert(ss:execute("INSERT INTO items (name) VALUES ('holder')"))
          holding = true
          while not release do sched.sleep(0.01) end
        end)
      end)
    end)
    until_true(function() return holding end, "the other process's writer holds the lock")
    local ok, err = one:tx(function()
      local ss = use_session()
      local r, _, code = ss:execute("INSERT INTO items (name) VALUES ('one')")
      assert.is_nil(r)
      assert.are.equal("busy", code)
      release = true
      holder:wait(5)
      assert(ss:execute("INSERT INTO items (name) VALUES ('two')"))
      error("roll back", 0)
    end)
    assert.is_false(ok)
    assert.are.equal("roll back", err)
    -- 'two' ran inside a transaction (rolled back), not in autocommit mode
    assert.are.same({ { name = "holder" } }, (one:read("SELECT name FROM items")))
    one:stop()
    other:stop()
  end)

  it("acquires lazily: transactions that do not touch the database take no connection", function()
    local db = app.list[1]
    local GET = { kind = "http", request = { method = "GET" } }
    -- hold both readers and the writer
    local release = false
    local holders = {}
    for i = 1, 3 do
      holders[i] = sched.spawn(function()
        return app:tx(function()
          assert(use_session():query("SELECT 1"))
          while not release do sched.sleep(0.01) end
        end, i < 3 and GET or nil)
      end)
    end
    until_true(function()
      local st = db:stats()
      return st.readers.idle == 0 and st.writer.busy
    end, "both readers and the writer are held")
    local t0 = sched.clock()
    local ok1 = app:tx(function() return 1 end)
    local ok2, active = app:tx(function()
      local ss = use_session() -- a session, but no statement: no connection
      return ss:active()
    end)
    assert.is_true(ok1)
    assert.is_true(ok2)
    assert.is_false(active)
    assert.is_true(sched.clock() - t0 < 0.05)
    local st = db:stats()
    assert.are.equal(0, st.readers.idle)
    assert.is_true(st.writer.busy)
    -- a transaction that does run a statement waits for a reader (or its turn at the writer)
    local waited = sched.spawn(function()
      return app:tx(function() return use_session():first("SELECT 7 AS x").x end, GET)
    end)
    local waited_w = sched.spawn(function()
      return app:tx(function() return use_session():first("SELECT 8 AS x").x end)
    end)
    until_true(function()
      local w = db:stats()
      return w.readers.waiting == 1 and w.writer.waiting == 1
    end, "one waits for a reader, one for the writer")
    assert.is_false(waited.done)
    assert.is_false(waited_w.done)
    st = db:stats()
    assert.are.equal(1, st.readers.waiting)
    assert.are.equal(1, st.writer.waiting)
    release = true
    local wok, tok, x = waited:wait(5)
    assert.is_true(wok)
    assert.is_true(tok)
    assert.are.equal(7, x)
    local wok2, tok2, x2 = waited_w:wait(5)
    assert.is_true(wok2 and tok2)
    assert.are.equal(8, x2)
    for i = 1, 3 do assert.is_true((holders[i]:wait(5))) end
  end)

  it("gives up waiting for a reader or the writer after acquire_timeout with nil, err", function()
    local small = db_app { path = temp_db(), readers = 1, acquire_timeout = 0.05 }
    local GET = { kind = "http", request = { method = "GET" } }
    local release = false
    local holders = {}
    for i = 1, 2 do
      holders[i] = sched.spawn(function()
        return small:tx(function()
          assert(use_session():query("SELECT 1"))
          while not release do sched.sleep(0.01) end
        end, i == 1 and GET or nil)
      end)
    end
    until_true(function()
      local st = small.list[1]:stats()
      return st.readers.idle == 0 and st.writer.busy
    end, "the reader and the writer are held")
    local ok, r, err, code = small:tx(function() return use_session():query("SELECT 1") end, GET)
    assert.is_true(ok)
    assert.is_nil(r)
    assert.are.equal("timeout", code)
    assert.truthy(err:find("no free reader within 0.05s (readers 1)", 1, true), err)
    local ok2, r2, err2, code2 = small:tx(function() return use_session():query("SELECT 1") end)
    assert.is_true(ok2)
    assert.is_nil(r2)
    assert.are.equal("timeout", code2)
    assert.truthy(err2:find("no turn at the writer within 0.05s", 1, true), err2)
    release = true
    for i = 1, 2 do holders[i]:wait(5) end
    small:stop()
  end)

  it("returns the same session within a transaction and a new one in the next", function()
    local a, b
    app:tx(function() a = use_session(); assert.are.equal(a, use_session("default")) end)
    app:tx(function() b = use_session() end)
    assert.are_not.equal(a, b)
  end)

  it("shares the session with tasks spawned by the handler (statements serialised)", function()
    local ok, err = app:tx(function()
      local fns = {}
      for i = 1, 8 do
        fns[i] = function()
          assert(use_session():execute("INSERT INTO items (name) VALUES (?)", { "n" .. i }))
          return use_session():first("SELECT COUNT(*) AS n FROM items").n
        end
      end
      sched.gather(unpack(fns))
    end)
    assert.is_true(ok, tostring(err))
    assert.are.equal(8, app:count("items"))
  end)

  it("raises when a session is used after its transaction ended", function()
    local kept
    app:tx(function() kept = use_session(); assert(kept:query("SELECT 1")) end)
    local e = err_of(function() kept:query("SELECT 1") end)
    assert.truthy(e:find("used after its transaction ended", 1, true), e)
  end)

  it("raises outside a transaction and for unknown names, naming the configured ones", function()
    local saved = context.current()
    context.bind(nil)
    local e0 = err_of(use_session)
    context.bind(saved)
    assert.truthy(e0:find('use_session("default") called outside a transaction', 1, true), e0)
    local e1 = err_of(function() app:with_ctx(function() use_session() end, "startup") end)
    assert.truthy(e1:find("outside a transaction", 1, true), e1)
    assert.truthy(e1:find("startup", 1, true), e1)
    local _, e2 = app:tx(function() use_session("audit") end)
    assert.truthy(tostring(e2):find('use_session("audit"): no database named "audit" (configured: "default")', 1, true),
      tostring(e2))
    local _, e3 = app:tx(function() use_session(42) end)
    assert.truthy(tostring(e3):find("name must be a string", 1, true))
  end)
end)

describe("persistence with two named databases", function()
  local app

  before_each(function()
    app = start({
      persistence.SessionInterceptor { path = temp_db() },
      persistence.SessionInterceptor { path = temp_db(), name = "audit", readers = 1 },
    })
    script(app, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    script(app, "CREATE TABLE log (id INTEGER PRIMARY KEY, what TEXT)", "audit")
  end)

  after_each(function() app:stop() end)

  it("addresses each database by name, each with its own transaction", function()
    local ok, err = app:tx(function()
      assert.are_not.equal(use_session(), use_session("audit"))
      assert(use_session():execute("INSERT INTO items (name) VALUES ('a')"))
      assert(use_session("audit"):execute("INSERT INTO log (what) VALUES ('created a')"))
      -- the tables live in different files
      assert.is_nil((use_session("audit"):query("SELECT * FROM items")))
    end)
    assert.is_true(ok, tostring(err))
    assert.are.equal(1, app:count("items"))
    assert.are.equal(1, app:count("log", "audit"))
  end)

  it("rolls both back when the transaction fails", function()
    local ok = app:tx(function()
      assert(use_session():execute("INSERT INTO items (name) VALUES ('a')"))
      assert(use_session("audit"):execute("INSERT INTO log (what) VALUES ('x')"))
      error("nope")
    end)
    assert.is_false(ok)
    assert.are.equal(0, app:count("items"))
    assert.are.equal(0, app:count("log", "audit"))
  end)

  it("honours the route option persistence = false and { audit = false }", function()
    local none = { opts = { persistence = false } }
    local ok, err = app:tx(function() use_session() end, { route = none })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('use_session("default"): persistence is disabled for this route', 1, true), tostring(err))
    local _, err2 = app:tx(function() use_session("audit") end, { route = none })
    assert.truthy(tostring(err2):find("disabled for this route", 1, true))

    local no_audit = { opts = { persistence = { audit = false } } }
    local ok3, err3 = app:tx(function()
      assert(use_session():execute("INSERT INTO items (name) VALUES ('kept')"))
      return pcall(use_session, "audit")
    end, { route = no_audit })
    assert.is_true(ok3)
    assert.is_false(err3)
    assert.are.equal(1, app:count("items"))
  end)

  it("reads the option from the controller too; the route wins", function()
    local Ctrl = controller.RestController("/x", { persistence = false })
    local ok = app:tx(function() return pcall(use_session) end, { controller = Ctrl, route = { opts = {} } })
    assert.is_true(ok)
    local _, used = app:tx(function() return pcall(use_session) end, { controller = Ctrl, route = { opts = {} } })
    assert.is_false(used)
    local _, used2 = app:tx(function() return pcall(use_session) end,
      { controller = Ctrl, route = { opts = { persistence = true } } })
    assert.is_true(used2)
  end)

  it("gives WebSocket connections no session unless they opt in", function()
    local _, ok1 = app:tx(function() return pcall(use_session) end, { kind = "websocket" })
    assert.is_false(ok1)
    local _, ok2 = app:tx(function() return pcall(use_session) end,
      { kind = "websocket", route = { opts = { persistence = { default = true } } } })
    assert.is_true(ok2)
  end)

  it("fails the transaction for a malformed persistence option", function()
    local ok, err = app:tx(function() end, { route = { opts = { persistence = "off" } } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("route option persistence: expected true, false", 1, true))
  end)
end)

describe("persistence independent sessions", function()
  local app

  before_each(function()
    app = db_app { path = temp_db(), readers = 3 }
    script(app, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
  end)

  after_each(function() app:stop() end)

  it("commits its own work even when the surrounding transaction fails", function()
    local ok = app:tx(function()
      -- the surrounding transaction writes, but only after the independent one
      assert.is_false(use_session():active())
      local r1, r2 = persistence.providing_new_session(function(ss)
        assert(ss:execute("INSERT INTO items (name) VALUES ('inner')"))
        return "r1", "r2"
      end)
      assert.are.same({ "r1", "r2" }, { r1, r2 })
      assert(use_session():execute("INSERT INTO items (name) VALUES ('outer')"))
      error("outer fails")
    end)
    assert.is_false(ok)
    assert.are.same({ { name = "inner" } }, (app:read("SELECT name FROM items")))
  end)

  it("writes beside a surrounding read transaction", function()
    local ok, err = app:tx(function()
      assert(use_session():query("SELECT * FROM items")) -- a reader's snapshot, not the writer
      persistence.providing_new_session(function(ss)
        assert(ss:execute("INSERT INTO items (name) VALUES ('inner')"))
      end)
      -- the snapshot was taken before the inner commit
      return #assert(use_session():query("SELECT * FROM items"))
    end, { kind = "http", request = { method = "GET" } })
    assert.is_true(ok, tostring(err))
    assert.are.equal(0, err)
    assert.are.equal(1, app:count("items"))
  end)

  it("refuses at once when the surrounding transaction holds the writer, and says why", function()
    local quick = db_app { path = temp_db() }
    script(quick, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    local t0 = sched.clock()
    local ok, err = quick:tx(function()
      assert(use_session():execute("INSERT INTO items (name) VALUES ('outer')"))
      return persistence.providing_new_session(function(ss)
        local r, e, code = ss:execute("INSERT INTO items (name) VALUES ('inner')")
        assert.is_nil(r)
        assert.are.equal("busy", code)
        return e
      end)
    end)
    assert.is_true(ok)
    assert.truthy(err:find("SQLite has one writer at a time", 1, true), err)
    assert.is_true(sched.clock() - t0 < 1, "no wait for a timeout")
    assert.are.equal(1, quick:count("items"))
    quick:stop()
  end)

  it("is what use_session returns inside the block, so helpers join it", function()
    local ok, err = app:tx(function()
      local outer = use_session()
      persistence.providing_new_session("default", function(ss)
        assert.are.equal(ss, use_session())
        assert.are_not.equal(outer, ss)
        -- tasks spawned inside inherit it
        local t = sched.spawn(function() return use_session() end)
        local _, seen = t:wait()
        assert.are.equal(ss, seen)
      end)
      assert.are.equal(outer, use_session())
    end)
    assert.is_true(ok, tostring(err))
  end)

  it("rolls back and re-raises when fn fails", function()
    local ok, err = app:tx(function()
      local pok, perr = pcall(persistence.providing_new_session, function(ss)
        assert(ss:execute("INSERT INTO items (name) VALUES ('lost')"))
        error({ code = 7 })
      end)
      assert.is_false(pok)
      assert.are.same({ code = 7 }, perr)
      assert(use_session():execute("INSERT INTO items (name) VALUES ('kept')"))
    end)
    assert.is_true(ok, tostring(err))
    assert.are.same({ { name = "kept" } }, app:read("SELECT name FROM items"))
  end)

  it("session:independent(fn) does the same from a session", function()
    local ok = app:tx(function()
      use_session():independent(function(ss)
        assert(ss:execute("INSERT INTO items (name) VALUES ('audit')"))
      end)
      error("x")
    end)
    assert.is_false(ok)
    assert.are.equal(1, app:count("items"))
  end)

  it("works outside a transaction (startup) and raises outside the app", function()
    app:with_ctx(function()
      persistence.providing_new_session(function(ss) assert(ss:execute("INSERT INTO items (name) VALUES ('s')")) end)
    end, "startup")
    assert.are.equal(1, app:count("items"))
    local saved = context.current()
    context.bind(nil)
    local e = err_of(persistence.providing_new_session, function() end)
    context.bind(saved)
    assert.truthy(e:find("outside the app", 1, true), e)
    local e2 = err_of(function() app:with_ctx(function() persistence.providing_new_session("nope", function() end) end) end)
    assert.truthy(e2:find('no database named "nope"', 1, true), e2)
  end)
end)

describe("persistence concurrency", function()
  it("runs many concurrent write transactions one at a time, each whole or not at all", function()
    local app = db_app { path = temp_db(), readers = 2 }
    script(app, "CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER)")
    local N = 40
    local tasks = {}
    local in_use, max_in_use = 0, 0
    for i = 1, N do
      tasks[i] = sched.spawn(function()
        return app:tx(function()
          local ss = use_session()
          assert(ss:execute("INSERT INTO items (n) VALUES (?)", { i }))
          in_use = in_use + 1
          if in_use > max_in_use then max_in_use = in_use end
          sched.sleep(0.002)
          assert(ss:execute("INSERT INTO items (n) VALUES (?)", { -i }))
          in_use = in_use - 1
          if i % 5 == 0 then error("fail " .. i, 0) end
          return i
        end)
      end)
    end
    local failures = 0
    for i = 1, N do
      local ok, tok = tasks[i]:wait(20)
      assert.is_true(ok)
      if not tok then failures = failures + 1 end
    end
    assert.are.equal(N / 5, failures)
    assert.are.equal((N - N / 5) * 2, app:count("items"))
    assert.are.equal(1, max_in_use, "one writer at a time")
    -- every row pair is complete (no transaction half-applied)
    local rows = app:read("SELECT n FROM items WHERE n > 0 AND -n NOT IN (SELECT n FROM items)")
    assert.are.equal(0, #rows)
    local w = app.list[1]:stats().writer
    assert.is_true(w.groups >= 1 and w.largest_group > 1, "queued transactions committed in groups")
    app:stop()
  end)

  -- read, wait, write, from n tasks at once
  local function read_modify_write(app, n, fields)
    script(app, "CREATE TABLE IF NOT EXISTS counter (n INTEGER); DELETE FROM counter; INSERT INTO counter VALUES (0);")
    local tasks = {}
    for i = 1, n do
      tasks[i] = sched.spawn(function()
        return app:tx(function()
          local ss = use_session()
          local v = assert(ss:first("SELECT n FROM counter")).n
          sched.sleep(0)
          local r, err, code = ss:execute("UPDATE counter SET n = ?", { v + 1 })
          if not r then error(code .. ": " .. err, 0) end
        end, fields)
      end)
    end
    local failed = {}
    for i = 1, n do
      local _, ok, err = tasks[i]:wait(30)
      if not ok then failed[#failed + 1] = err end
    end
    return app:read("SELECT n FROM counter")[1].n, failed
  end

  it("200 concurrent read-modify-write increments in the default mode give 200", function()
    local app = db_app { path = temp_db() }
    -- messages and scheduled runs (any kind but a safe HTTP method), and a POST
    local n, failed = read_modify_write(app, 200)
    assert.are.same({}, failed)
    assert.are.equal(200, n)
    local n2, failed2 = read_modify_write(app, 200, { kind = "http", request = { method = "POST" } })
    assert.are.same({}, failed2)
    assert.are.equal(200, n2)
    -- a GET route declared a writer
    local n3, failed3 = read_modify_write(app, 50,
      { kind = "http", request = { method = "GET" }, route = { opts = { persistence = "write" } } })
    assert.are.same({}, failed3)
    assert.are.equal(50, n3)
    app:stop()
  end)

  it("a read transaction that read and then writes fails at once, and says what to declare", function()
    local app = db_app { path = temp_db() }
    local n, failed = read_modify_write(app, 3, { kind = "http", request = { method = "GET" } })
    assert.are.equal(0, n)
    assert.are.equal(3, #failed)
    assert.truthy(failed[1]:find("^readonly: database \"default\": this transaction read from a snapshot and then tried to write"),
      failed[1])
    assert.truthy(failed[1]:find('persistence = "write"', 1, true), failed[1])
    -- one that writes first becomes a write transaction
    local ok, err = app:tx(function()
      assert(use_session():execute("UPDATE counter SET n = 7"))
      assert.are.equal("write", use_session():mode())
      return use_session():first("SELECT n FROM counter").n
    end, { kind = "http", request = { method = "GET" } })
    assert.is_true(ok)
    assert.are.equal(7, err)
    app:stop()
  end)

  it("rejects the old begin modes of the route option with a clear error", function()
    local app = db_app { path = temp_db() }
    local ok, err = app:tx(function() use_session() end, { route = { opts = { persistence = "immediate" } } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('persistence: expected true, false, "read", "write"', 1, true), tostring(err))
    app:stop()
  end)
end)

---------------------------------------------------------------------------

describe("persistence.CRUD", function()
  local app, Tasks, Task

  before_each(function()
    s._reset_registry()
    app = db_app { path = temp_db() }
    script(app, [[
      CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        done INTEGER NOT NULL DEFAULT 0,
        tags TEXT,
        note TEXT,
        priority INTEGER
      );
    ]])
    Task = s.object("Task", {
      { "id", s.integer() },
      { "name", s.string() },
      { "done", s.boolean() },
      { "tags", s.array(s.string()):optional() },
      { "note", s.string():nullable() },
      { "priority", s.integer():optional() },
    })
    Tasks = persistence.CRUD { table = "tasks", schema = Task }
  end)

  after_each(function() app:stop() end)

  local function tx(fn)
    local r = { app:tx(fn) }
    assert.is_true(r[1], tostring(r[2]))
    return unpack(r, 2)
  end

  it("creates and returns the stored row converted through the schema", function()
    local row = tx(function()
      return Tasks:create { name = "write", done = false, tags = json.array({ "a", "b" }), note = json.null }
    end)
    assert.are.equal("number", type(row.id))
    assert.are.equal("write", row.name)
    assert.is_false(row.done)                 -- stored 0, read false
    assert.are.same({ "a", "b" }, row.tags)   -- stored as JSON text
    assert.are.equal(json.null, row.note)     -- NULL, nullable field
    assert.is_nil(row.priority)               -- NULL, optional field: absent
    assert.are.equal('{"id":' .. row.id .. ',"name":"write","done":false,"tags":["a","b"],"note":null}', json.encode(row))
    assert.are.same({ { done = 0, tags = '["a","b"]' } }, app:read("SELECT done, tags FROM tasks"))
  end)

  it("gets, lists, updates, checks and deletes", function()
    tx(function()
      local a = Tasks:create { name = "a", done = false, note = "n" }
      local b = Tasks:create { name = "b", done = true, note = json.null }
      assert.are.same(a, Tasks:get(a.id))
      assert.is_nil(Tasks:get(9999))
      local many = Tasks:get_many({ b.id, 9999, a.id, b.id })
      assert.are.equal(2, #many)
      assert.are.equal("b", many[1].name)
      assert.are.equal("a", many[2].name)
      assert.are.equal("[]", json.encode(Tasks:get_many({})))
      local u = Tasks:update(a.id, { done = true, name = "a2" })
      assert.is_true(u.done)
      assert.are.equal("a2", u.name)
      assert.is_nil(Tasks:update(9999, { done = true }))
      assert.are.same(u, Tasks:update(a.id, {}))
      assert.is_true(Tasks:exists(a.id))
      assert.is_false(Tasks:exists(9999))
      assert.is_true(Tasks:delete(a))
      assert.is_false(Tasks:delete(a))
      assert.is_true(Tasks:delete_by_id(b.id))
      assert.is_false(Tasks:delete_by_id(b.id))
      assert.is_false(Tasks:exists(a.id))
    end)
    assert.are.equal(0, app:count("tasks"))
  end)

  it("reads more than one chunk of ids in get_many", function()
    tx(function()
      local ids = {}
      for i = 1, 1203 do
        ids[#ids + 1] = Tasks:create({ id = i, name = "t" .. i, done = false, note = json.null }).id
      end
      local rev = {}
      for i = #ids, 1, -1 do rev[#rev + 1] = ids[i] end
      local rows = Tasks:get_many(rev)
      assert.are.equal(1203, #rows)
      assert.are.equal(1203, rows[1].id)
      assert.are.equal(1, rows[1203].id)
    end)
  end)

  it("keeps int64 ids exact", function()
    local big = json.int64("9007199254740993")
    tx(function()
      local row = Tasks:create { id = big, name = "big", done = false, note = json.null }
      assert.are.equal("cdata", type(row.id))
      assert.is_true(row.id == big)
      assert.are.equal("big", Tasks:get(big).name)
      assert.is_true(Tasks:exists(big))
      assert.are.equal(1, #Tasks:get_many({ big }))
      assert.is_true(Tasks:update(big, { done = true }).done)
      assert.are.equal('{"id":9007199254740993,"name":"big","done":true,"note":null}', json.encode(Tasks:get(big)))
      assert.is_true(Tasks:delete_by_id(big))
    end)
  end)

  it("raises for unknown columns and never puts values in the SQL text", function()
    local ok, err = app:tx(function() Tasks:create { name = "x", done = false, ["name; DROP TABLE tasks"] = 1 } end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('tasks.create: unknown column "name; DROP TABLE tasks"', 1, true), tostring(err))
    local evil = "x'); DROP TABLE tasks; --"
    tx(function()
      local row = Tasks:create { name = evil, done = false, note = json.null }
      assert.are.equal(evil, Tasks:get(row.id).name)
    end)
    assert.are.equal(1, app:count("tasks"))
  end)

  it("raises a PersistenceError with the binding's code for database errors", function()
    local ok, err = app:tx(function()
      Tasks:create { name = "dup", done = false, note = json.null }
      Tasks:create { name = "dup", done = false, note = json.null }
    end)
    assert.is_false(ok)
    assert.is_true(persistence.is_error(err))
    assert.are.equal("constraint", err.code)
    assert.are.equal("tasks.create", err.where)
    assert.truthy(tostring(err):find("persistence: tasks.create: UNIQUE constraint failed", 1, true), tostring(err))
    assert.are.equal(0, app:count("tasks")) -- the first insert was rolled back with the transaction
  end)

  it("works without a schema (columns from the table) and with a columns list", function()
    local Raw = persistence.CRUD { table = "tasks" }
    local Few = persistence.CRUD { table = "tasks", columns = { "id", "name", "done" } }
    tx(function()
      local row = Raw:create { name = "raw", done = true }
      assert.are.equal(1, row.done) -- no schema: stored values as they are
      local e = err_of(function() Few:create { name = "x", note = "no" } end)
      assert.truthy(e:find('unknown column "note" (columns: id, name, done)', 1, true), e)
      assert.is_true(Few:exists(row.id))
      local Missing = persistence.CRUD { table = "nope" }
      local e2 = err_of(function() Missing:create { a = 1 } end)
      assert.truthy(e2:find('table "nope" does not exist', 1, true), e2)
    end)
  end)

  it("uses the named database", function()
    local app2 = start({
      persistence.SessionInterceptor { path = temp_db() },
      persistence.SessionInterceptor { path = temp_db(), name = "other" },
    })
    script(app2, "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)", "other")
    local KV = persistence.CRUD { table = "kv", id = "k", db = "other", columns = { "k", "v" } }
    local ok, err = app2:tx(function()
      KV:create { k = "a", v = "1" }
      return KV:get("a").v
    end)
    assert.is_true(ok)
    assert.are.equal("1", err)
    assert.are.equal(1, app2:count("kv", "other"))
    app2:stop()
  end)

  it("validates its declaration", function()
    local C = persistence.CRUD
    assert.truthy(err_of(C, { table = "tasks; drop" }):find("table must be an identifier", 1, true))
    assert.truthy(err_of(C, { table = "t", id = "a b" }):find("id must be an identifier", 1, true))
    assert.truthy(err_of(C, { table = "t", schema = s.string() }):find("must be an object schema", 1, true))
    assert.truthy(err_of(C, { table = "t", columns = { "ok", "no way" } }):find("columns[2] must be an identifier", 1, true))
    assert.truthy(err_of(C, { table = "t", tabel = 1 }):find("unknown option tabel", 1, true))
    local ok, err = app:tx(function() Tasks:get(nil) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("tasks.get: id is nil", 1, true))
  end)
end)

---------------------------------------------------------------------------

describe("persistence.Query", function()
  local app, Q, Item

  local ROWS = {
    -- id, name, done, created_at, priority, score, due
    { 1, "Write docs", 0, "2024-01-01T10:00:00Z", 1, 1.5, "2024-02-01" },
    { 2, "write tests", 1, "2024-01-02T10:00:00Z", 2, 2.5, "2024-02-02" },
    { 3, "100% done_ish", 1, "2024-01-03T10:00:00.500Z", 3, nil, nil },
    { 4, "Review", 0, "2024-01-04T10:00:00+02:00", nil, 4.0, "2024-02-04" },
    { 5, "", 0, nil, 5, 5.5, "2024-02-05" },
    { 6, nil, 1, "2024-01-06T00:00:00Z", 2, 6.5, "2024-02-06" },
    { 7, "100 percent", 0, "2024-01-07T00:00:00Z", 7, 7.5, "2024-02-07" },
  }

  setup(function()
    s._reset_registry()
    Item = s.object("Item", {
      { "id", s.integer() },
      { "name", s.string():nullable() },
      { "done", s.boolean() },
      { "created_at", s.datetime():nullable() },
      { "priority", s.integer():nullable() },
      { "score", s.number():nullable() },
      { "due", s.date():nullable() },
    })
    app = db_app { path = temp_db() }
    script(app, [[CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, done INTEGER NOT NULL,
      created_at TEXT, priority INTEGER, score REAL, due TEXT)]])
    local null = require("jararaca.db").null
    app:with_ctx(function()
      persistence.providing_new_session(function(ss)
        for _, r in ipairs(ROWS) do
          local p = {}
          for i = 1, 7 do p[i] = r[i] == nil and null or r[i] end
          assert(ss:execute("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)", p))
        end
      end)
    end)
    Q = persistence.Query {
      table = "items", schema = Item,
      sortable = { "name", "created_at", "priority" },
      filterable = { name = "string", done = "boolean", created_at = "datetime", priority = "integer",
        score = "number", due = "date" },
      default_sort = { "id", "asc" },
    }
  end)

  teardown(function() app:stop() end)

  local function page(f, extra, q)
    local ok, r, err = app:tx(function() return (q or Q):paginate(f, extra) end)
    assert.is_true(ok, tostring(r))
    return r, err
  end

  local function ids(f, q)
    local r, err = page({ page_size = 100, filters = f and f.filters, sort = f and f.sort, logic = f and f.logic }, nil, q)
    assert.is_nil(err)
    assert.truthy(r, err)
    local out = {}
    for i, it in ipairs(r.items) do out[i] = it.id end
    return out
  end

  local function filter(field, operator, value)
    return ids { filters = { { field = field, operator = operator, value = value } } }
  end

  it("pages with total = items on the page, unpaginated_total and total_pages", function()
    local r = page { page = 0, page_size = 3 }
    assert.are.equal(3, r.total)
    assert.are.equal(7, r.unpaginated_total)
    assert.are.equal(3, r.total_pages)
    assert.are.same({ 1, 2, 3 }, { r.items[1].id, r.items[2].id, r.items[3].id })
    local last = page { page = 2, page_size = 3 }
    assert.are.equal(1, last.total)
    assert.are.equal(7, last.items[1].id)
    local beyond = page { page = 5, page_size = 3 }
    assert.are.equal(0, beyond.total)
    assert.are.equal(7, beyond.unpaginated_total)
    assert.are.equal('{"items":[],"total":0,"unpaginated_total":7,"total_pages":3,"next_cursor":null}', json.encode(beyond))
    local d = page {}
    assert.are.equal(7, d.total) -- default page_size 10
    assert.are.equal(1, d.total_pages)
  end)

  it("converts items through the schema and encodes them in order", function()
    local r = page { page_size = 1 }
    assert.is_false(r.items[1].done)
    assert.are.equal('{"items":[{"id":1,"name":"Write docs","done":false,"created_at":"2024-01-01T10:00:00Z","priority":1,"score":1.5,"due":"2024-02-01"}],"total":1,"unpaginated_total":7,"total_pages":7,"next_cursor":"'
      .. r.next_cursor .. '"}', json.encode(r))
  end)

  it("sorts by whitelisted fields, several keys, with the id as tie-breaker (in the last key's direction)", function()
    -- NULL sorts first ascending (SQLite), ties (2 and 6) by id
    assert.are.same({ 4, 1, 2, 6, 3, 5, 7 }, ids { sort = { { field = "priority", direction = "asc" } } })
    assert.are.same({ 7, 5, 3, 6, 2, 1, 4 }, ids { sort = { { field = "priority", direction = "DESC" } } })
    assert.are.same({ 6, 5, 7, 3, 4, 1, 2 }, ids { sort = { "name" } })
    assert.are.same({ 2, 1, 4, 3, 7, 5, 6 }, ids { sort = { "-name" } })
    assert.are.same({ 4, 1, 2, 6, 3, 5, 7 }, ids { sort = { { field = "priority", sort = "asc" }, "name:desc" } })
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7 }, ids {}) -- default_sort
  end)

  it("pages by cursor: every row once, in order, for any sort and filter", function()
    local function walk(f, size)
      local out, cursor, pages = {}, nil, 0
      repeat
        local r, err = page { page_size = size, after = cursor, sort = f.sort, filters = f.filters }
        assert.truthy(r, err)
        for _, it in ipairs(r.items) do out[#out + 1] = it.id end
        assert.are.equal(f.filters and 4 or 7, r.unpaginated_total)
        cursor = r.next_cursor ~= json.null and r.next_cursor or nil
        pages = pages + 1
      until cursor == nil or pages > 10
      return out
    end
    local function all(f) return ids { sort = f.sort, filters = f.filters } end
    for _, f in ipairs {
      {}, { sort = { "-priority" } }, { sort = { "priority" } }, { sort = { "-created_at" } },
      { sort = { "name", "-priority" } }, { sort = { "-name", "created_at" } },
      { filters = { { field = "done", operator = "is", value = false } } },
    } do
      for size = 1, 3 do
        -- (NULLs where SQLite sorts them: first ascending, last descending)
        assert.are.same(all(f), walk(f, size), require("jararaca.json").encode(f) .. " by " .. size)
      end
    end
    local r = page { page_size = 7 }
    assert.are.equal(json.null, r.next_cursor) -- the last page has none
  end)

  it("refuses deep offsets, foreign cursors and page with after (nil, err: never a crash)", function()
    local function bad(f, want)
      local r, err = page(f)
      assert.is_nil(r)
      assert.truthy(err:find(want, 1, true), err)
    end
    bad({ page = 101, page_size = 100 }, "an offset may skip at most 10000 rows")
    bad({ page = 922337203685477580, page_size = 10 }, "go deeper with the cursor")
    bad({ page = "922337203685477580" }, "go deeper with the cursor")
    bad({ after = "not a cursor!" }, "not a cursor of this listing")
    bad({ after = require("jararaca.base64").encode('["x:asc",[1]]') }, "not a cursor of this listing")
    local first = page { page_size = 2 }
    bad({ after = first.next_cursor, sort = { "-name" } }, "not a cursor of this listing")
    bad({ after = first.next_cursor, page = 1 }, "give page or after, not both")
    bad({ after = 12 }, "after must be a cursor")
    local q = persistence.Query { table = "items", schema = Item, max_offset = 4 }
    local r, err = page({ page = 2, page_size = 2 }, nil, q)
    assert.truthy(r, err)
    local r2, err2 = page({ page = 3, page_size = 2 }, nil, q)
    assert.is_nil(r2)
    assert.truthy(err2:find("at most 4 rows", 1, true))
  end)

  it("counts once per snapshot, and again after a change", function()
    local GET = { kind = "http", request = { method = "GET" } }
    local db = app.list[1]
    local function reader_jobs()
      local n = 0
      for _, c in ipairs(db:stats().connections) do if c.role == "reader" then n = n + c.jobs end end
      return n
    end
    local function total()
      local ok, r = app:tx(function() return Q:paginate { page_size = 2 } end, GET)
      assert.is_true(ok, tostring(r))
      return r.unpaginated_total
    end
    assert.are.equal(7, total()) -- may count (on a reader's thread)
    local j0 = reader_jobs()
    for _ = 1, 5 do assert.are.equal(7, total()) end
    assert.are.equal(j0, reader_jobs(), "no count ran again: the page ran on the loop, the count came from the cache")
    app:with_ctx(function()
      persistence.providing_new_session(function(ss) assert(ss:execute("INSERT INTO items (id, done) VALUES (8, 0)")) end)
    end)
    assert.are.equal(8, total())
    app:with_ctx(function()
      persistence.providing_new_session(function(ss) assert(ss:execute("DELETE FROM items WHERE id = 8")) end)
    end)
    assert.are.equal(7, total())
  end)

  it("takes the unfiltered total from count_sql (a counter kept by triggers), filtered ones by counting", function()
    local c = db_app { path = temp_db() }
    script(c, [[CREATE TABLE t (id INTEGER PRIMARY KEY, done INTEGER NOT NULL);
      CREATE TABLE t_count (n INTEGER NOT NULL); INSERT INTO t_count VALUES (0);
      CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN UPDATE t_count SET n = n + 1; END;
      CREATE TRIGGER t_del AFTER DELETE ON t BEGIN UPDATE t_count SET n = n - 1; END;
      INSERT INTO t (done) VALUES (0), (1), (1);]])
    local T = persistence.Query { table = "t", filterable = { done = "boolean" }, count_sql = "SELECT n FROM t_count" }
    local function totals()
      local ok, all, some = c:tx(function()
        return T:paginate {}, T:paginate { filters = { { field = "done", operator = "is", value = true } } }
      end)
      assert.is_true(ok, tostring(all))
      return all.unpaginated_total, some.unpaginated_total
    end
    assert.are.same({ 3, 2 }, { totals() })
    script(c, "UPDATE t_count SET n = 42") -- (only to see where the unfiltered total comes from)
    assert.are.same({ 42, 2 }, { totals() })
    assert.truthy(err_of(persistence.Query, { table = "t", count_sql = 1 }):find("count_sql must be an SQL query", 1, true))
    local Bad = persistence.Query { table = "t", count_sql = "SELECT 'many' AS n" }
    local ok, e = c:tx(function() return Bad:paginate {} end)
    assert.is_false(ok)
    assert.truthy(persistence.is_error(e), tostring(e))
    assert.truthy(tostring(e.message):find("count_sql did not return a number", 1, true), tostring(e.message))
    assert.are.equal("invalid", e.code)
    c:stop()
  end)

  it("pages a big table from its index: no sort, work bounded by the page, at any depth", function()
    local big = db_app { path = temp_db() }
    script(big, [[CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID;
      CREATE INDEX t_created_at ON t (created_at);
      WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
      INSERT INTO t SELECT printf('id%05d', x), 'n' || (x % 97), printf('2024-%05d', x % 5000) FROM c;]])
    local T = persistence.Query { table = "t", sortable = { "name", "created_at" }, default_sort = { "created_at", "desc" } }
    local function work(f)
      local ok, r, counters = big:tx(function()
        local res = assert(T:paginate(f))
        T:paginate(f) -- the count is cached now (same snapshot): the last statement is the page
        return res, use_session():counters()
      end, { kind = "http", request = { method = "GET" } })
      assert.is_true(ok, tostring(r))
      return r, counters
    end
    local r, c = work { page_size = 10 }
    assert.are.equal(20000, r.unpaginated_total)
    assert.are.equal(0, c.sorts)
    assert.is_true(c.vm_steps < 1000, "vm steps " .. c.vm_steps)
    local deep = work { page_size = 10, page = 900 }
    assert.are.equal(10, deep.total)
    local _, cdeep = work { page_size = 10, after = deep.next_cursor }
    assert.are.equal(0, cdeep.sorts)
    assert.is_true(cdeep.vm_steps < 1000, "vm steps " .. cdeep.vm_steps)
    -- a sort no index serves sorts (what the counters are for)
    local _, cname = work { page_size = 10, sort = { "name" } }
    assert.are.equal(1, cname.sorts)
    big:stop()
  end)

  it("answers nil, err for what is not whitelisted or malformed (never a crash)", function()
    local function bad(f)
      local r, err = page(f)
      assert.is_nil(r)
      return err
    end
    assert.truthy(bad { sort = { { field = "secret" } } }:find("sort[1]: field 'secret' is not sortable (sortable: created_at, name, priority)", 1, true))
    assert.truthy(bad { sort = { { field = "name", direction = "up" } } }:find("direction must be 'asc' or 'desc'", 1, true))
    assert.truthy(bad { filters = { { field = "id; DROP", operator = "=", value = "1" } } }
      :find("filters[1]: field 'id; DROP' is not filterable (filterable: created_at, done, due, name, priority, score)", 1, true))
    assert.truthy(bad { filters = { { field = "priority", operator = "contains", value = "1" } } }
      :find("operator 'contains' is not valid for integer field 'priority' (valid: =, !=, >, <, >=, <=, isEmpty, isNotEmpty, isAnyOf)", 1, true))
    assert.truthy(bad { filters = { { field = "name", operator = "like", value = "1" } } }:find("operator 'like'", 1, true))
    assert.truthy(bad { filters = { { field = "priority", operator = "=", value = "abc" } } }
      :find("filters[1] (priority =): expected an integer", 1, true))
    assert.truthy(bad { filters = { { field = "done", operator = "is", value = "perhaps" } } }:find("expected true or false", 1, true))
    assert.truthy(bad { filters = { { field = "created_at", operator = "after", value = "yesterday" } } }:find("expected a date", 1, true))
    assert.truthy(bad { filters = { { field = "priority", operator = "isAnyOf", value = { "1", "x" } } } }:find("value 2: expected an integer", 1, true))
    assert.truthy(bad { filters = { { field = "name", operator = "equals", value = { "a" } } } }:find("expected a single value", 1, true))
    assert.truthy(bad { filters = "x" }:find("filters must be a list", 1, true))
    assert.truthy(bad { filters = { "x" } }:find("filters[1] must be", 1, true))
    assert.truthy(bad { page = -1 }:find("page must be an integer >= 0", 1, true))
    assert.truthy(bad { page_size = 0 }:find("page_size must be an integer between 1 and 100", 1, true))
    assert.truthy(bad { page_size = 101 }:find("between 1 and 100", 1, true))
    assert.truthy(bad { page = 1.5 }:find("page must be an integer", 1, true))
    assert.truthy(bad { logic = "xor" }:find("logic must be", 1, true))
  end)

  it("string operators, with LIKE wildcards escaped", function()
    assert.are.same({ 1, 2 }, filter("name", "contains", "writ"))   -- case-insensitive (ASCII)
    assert.are.same({ 3 }, filter("name", "contains", "%"))          -- % is literal
    assert.are.same({ 3 }, filter("name", "contains", "_"))          -- _ is literal
    assert.are.same({ 3 }, filter("name", "contains", "0% d"))
    assert.are.same({ 3, 4, 5, 6, 7 }, filter("name", "doesNotContain", "write")) -- NULL does not contain
    assert.are.same({ 1 }, filter("name", "equals", "Write docs"))
    assert.are.same({}, filter("name", "equals", "write docs"))      -- equals is exact
    assert.are.same({ 2, 3, 4, 5, 6, 7 }, filter("name", "doesNotEqual", "Write docs"))
    assert.are.same({ 3, 7 }, filter("name", "startsWith", "100"))
    assert.are.same({ 3 }, filter("name", "startsWith", "100%"))
    assert.are.same({ 1 }, filter("name", "endsWith", "docs"))
    assert.are.same({ 3 }, filter("name", "endsWith", "_ish"))
    assert.are.same({ 5, 6 }, filter("name", "isEmpty"))              -- no value needed
    assert.are.same({ 1, 2, 3, 4, 7 }, filter("name", "isNotEmpty"))
    assert.are.same({ 5, 6 }, filter("name", "isEmpty", "ignored"))
    assert.are.same({ 1, 4 }, filter("name", "isAnyOf", { "Review", "Write docs", "nope" }))
    assert.are.same({ 4 }, filter("name", "isAnyOf", "Review"))
  end)

  it("skips a filter without a value (except isEmpty/isNotEmpty)", function()
    local all = { 1, 2, 3, 4, 5, 6, 7 }
    assert.are.same(all, filter("name", "contains", ""))
    assert.are.same(all, filter("name", "contains", nil))
    assert.are.same(all, filter("name", "isAnyOf", {}))
    assert.are.same(all, filter("done", "is", ""))
    assert.are.same(all, filter("priority", "=", json.null))
  end)

  it("datetime operators compare instants (offsets, fractions, dates)", function()
    assert.are.same({ 2 }, filter("created_at", "is", "2024-01-02T10:00:00Z"))
    assert.are.same({ 2 }, filter("created_at", "is", "2024-01-02T07:00:00-03:00"))
    assert.are.same({ 1, 3, 4, 5, 6, 7 }, filter("created_at", "not", "2024-01-02T10:00:00Z"))
    -- 2024-01-04T10:00:00+02:00 is 08:00Z, .500Z sorts after :00Z
    assert.are.same({ 3, 4, 6, 7 }, filter("created_at", "after", "2024-01-03T10:00:00Z"))
    assert.are.same({ 3, 4, 6, 7 }, filter("created_at", "onOrAfter", "2024-01-03T10:00:00.500Z"))
    assert.are.same({ 4, 6, 7 }, filter("created_at", "after", "2024-01-03T10:00:00.500Z"))
    assert.are.same({ 1, 2 }, filter("created_at", "before", "2024-01-03"))
    assert.are.same({ 1, 2, 3, 4 }, filter("created_at", "onOrBefore", "2024-01-04T08:00:00Z"))
    assert.are.same({ 1, 2, 3 }, filter("created_at", "before", "2024-01-04T08:00:00Z"))
    assert.are.same({ 6, 7 }, filter("created_at", "after", "2024-01-05T00:00:00")) -- naive = UTC
    assert.are.same({ 5 }, filter("created_at", "isEmpty"))
    assert.are.same({ 1, 2, 3, 4, 6, 7 }, filter("created_at", "isNotEmpty"))
  end)

  it("date operators", function()
    assert.are.same({ 2 }, filter("due", "is", "2024-02-02"))
    assert.are.same({ 2 }, filter("due", "is", "2024-02-02T23:00:00Z"))
    assert.are.same({ 1, 3, 4, 5, 6, 7 }, filter("due", "not", "2024-02-02"))
    assert.are.same({ 6, 7 }, filter("due", "after", "2024-02-05"))
    assert.are.same({ 5, 6, 7 }, filter("due", "onOrAfter", "2024-02-05"))
    assert.are.same({ 1 }, filter("due", "before", "2024-02-02"))
    assert.are.same({ 1, 2 }, filter("due", "onOrBefore", "2024-02-02"))
    assert.are.same({ 3 }, filter("due", "isEmpty"))
    assert.are.same({ 1, 2, 4, 5, 6, 7 }, filter("due", "isNotEmpty"))
  end)

  it("boolean operator", function()
    assert.are.same({ 2, 3, 6 }, filter("done", "is", "true"))
    assert.are.same({ 1, 4, 5, 7 }, filter("done", "is", false))
    assert.are.same({ 2, 3, 6 }, filter("done", "is", true))
  end)

  it("integer and number operators", function()
    assert.are.same({ 2, 6 }, filter("priority", "=", "2"))
    assert.are.same({ 1, 3, 4, 5, 7 }, filter("priority", "!=", 2))
    assert.are.same({ 5, 7 }, filter("priority", ">", "3"))
    assert.are.same({ 3, 5, 7 }, filter("priority", ">=", "3"))
    assert.are.same({ 1 }, filter("priority", "<", "2"))
    assert.are.same({ 1, 2, 6 }, filter("priority", "<=", "2"))
    assert.are.same({ 4 }, filter("priority", "isEmpty"))
    assert.are.same({ 1, 2, 3, 5, 6, 7 }, filter("priority", "isNotEmpty"))
    assert.are.same({ 1, 3, 7 }, filter("priority", "isAnyOf", { "1", "3", 7 }))
    assert.are.same({ 5, 6, 7 }, filter("score", ">", "5"))
    assert.are.same({ 1, 2 }, filter("score", "<", 3))
    assert.are.same({ 3 }, filter("score", "isEmpty"))
  end)

  it("combines filters with and (default) or or, and extra conditions", function()
    assert.are.same({ 2 }, ids { filters = {
      { field = "done", operator = "is", value = "true" },
      { field = "name", operator = "contains", value = "write" } } })
    assert.are.same({ 1, 2, 3, 6 }, ids { logic = "or", filters = {
      { field = "done", operator = "is", value = "true" },
      { field = "name", operator = "contains", value = "write" } } })
    local r = page({ page_size = 100 }, { where = "priority > ?", params = { 3 } })
    assert.are.equal(2, r.unpaginated_total)
    local Q2 = persistence.Query { table = "items", schema = Item, where = "done = 1", filterable = { name = "string" } }
    local r2 = page({ filters = { { field = "name", operator = "isNotEmpty" } } }, nil, Q2)
    assert.are.equal(2, r2.unpaginated_total)
  end)

  it("counts every matching row when the page is beyond the end", function()
    local r = page { page = 3, page_size = 2, filters = { { field = "done", operator = "is", value = "false" } } }
    assert.are.equal(0, r.total)
    assert.are.equal(4, r.unpaginated_total)
    assert.are.equal(2, r.total_pages)
  end)

  it("works without a schema (raw rows)", function()
    local Raw = persistence.Query { table = "items", filterable = { done = "boolean" }, default_sort = { { "id", "desc" } } }
    local r = page({ page_size = 2, filters = { { field = "done", operator = "is", value = "1" } } }, nil, Raw)
    assert.are.equal(6, r.items[1].id)
    assert.are.equal(1, r.items[1].done)
    assert.is_nil(r.items[1].__jararaca_total)
  end)

  it("validates its declaration", function()
    local E = persistence.Query
    assert.truthy(err_of(E, { table = "x y" }):find("table must be an identifier", 1, true))
    assert.truthy(err_of(E, { table = "t", sortable = { "a-b" } }):find("sortable[1] must be an identifier", 1, true))
    assert.truthy(err_of(E, { table = "t", filterable = { a = "blob" } }):find("unknown type blob", 1, true))
    assert.truthy(err_of(E, { table = "t", default_sort = { "a", "sideways" } }):find("direction", 1, true))
    assert.truthy(err_of(E, { table = "t", nope = 1 }):find("unknown option nope", 1, true))
    assert.are.same({ "is" }, persistence.operators("boolean"))
  end)

  it("provides schemas for routes: PaginatedFilter, PaginatedSearch, Paginated(Item)", function()
    local q, _, _, errs = s.validate_fields(persistence.PaginatedFilter, { page = "2" })
    assert.is_nil(errs)
    assert.are.same({ page = 2, page_size = 10 }, q)
    local _, _, _, e2 = s.validate_fields(persistence.PaginatedFilter, { page_size = "500" })
    assert.are.equal("less_than_equal", e2[1].type)
    local body = assert(persistence.PaginatedSearch:validate {
      page = 1, filters = { { field = "name", operator = "isEmpty" } }, sort = { { field = "name" } } })
    assert.are.equal("asc", body.sort[1].direction)
    local r = page(body)
    assert.are.equal(0, r.total) -- page 1 of the two empty names
    assert.are.equal(2, r.unpaginated_total)
    local P = persistence.Paginated(Item)
    assert.are.equal("ItemPage", P.name)
    assert.are.equal(P, persistence.Paginated(Item))
    assert.truthy(P:validate(page { page_size = 2 }))
  end)
end)

---------------------------------------------------------------------------

describe("persistence migrations", function()
  local function migrations(files)
    local dir = temp_dir()
    for name, text in pairs(files) do write(dir .. "/" .. name, text) end
    return dir
  end

  it("discovers NNNN_name.sql/.lua files in version order, with gaps", function()
    local dir = migrations {
      ["0002_b.sql"] = "x", ["0010_c.lua"] = "return function() end", ["1_a.sql"] = "y", ["README.md"] = "z",
    }
    local list = assert(migrate.discover(dir))
    assert.are.same({ 1, 2, 10 }, { list[1].version, list[2].version, list[3].version })
    assert.are.same({ "a", "b", "c" }, { list[1].name, list[2].name, list[3].name })
    assert.are.equal("lua", list[3].kind)
    assert.are.equal(migrate.checksum("y"), list[1].checksum)
  end)

  it("refuses duplicate numbers and unnumbered files", function()
    local _, e1, c1 = migrate.discover(migrations { ["0001_a.sql"] = "", ["1_b.sql"] = "" })
    assert.truthy(e1:find("duplicate migration number 1", 1, true), e1)
    assert.are.equal("invalid", c1)
    local _, e2, c2 = migrate.discover(migrations { ["create.sql"] = "" })
    assert.truthy(e2:find("must be named NNNN_description.sql", 1, true), e2)
    assert.are.equal("invalid", c2)
    local _, e3, c3 = migrate.discover(tmp_root .. "/nope")
    assert.truthy(e3:find("not found", 1, true), e3)
    assert.are.equal("not_found", c3)
  end)

  it("applies pending migrations in order, records them, then applies nothing", function()
    local dir = migrations {
      ["0001_create.sql"] = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);",
      ["0003_seed.lua"] = [[return function(session)
        assert(session:execute("INSERT INTO t (name) VALUES (?)", { "seeded" }))
      end]],
      ["0002_index.sql"] = "CREATE INDEX t_name ON t (name); ALTER TABLE t ADD COLUMN extra TEXT;",
    }
    local app = db_app { path = temp_db(), migrations = dir }
    local db = app.list[1]
    local ok, report = migrate.apply(db)
    assert.is_true(ok, tostring(report))
    assert.are.equal(3, #report.applied)
    assert.are.equal(3, report.current)
    assert.are.same({ { name = "seeded", extra = json.null } }, app:read("SELECT name, extra FROM t"))
    local rows = app:read("SELECT version, name, applied_at, checksum FROM jararaca_migrations ORDER BY version")
    assert.are.same({ 1, 2, 3 }, { rows[1].version, rows[2].version, rows[3].version })
    assert.are.equal("create", rows[1].name)
    assert.truthy(rows[1].applied_at:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"))
    assert.are.equal(report.applied[1].checksum, rows[1].checksum)
    local ok2, again = migrate.apply(db)
    assert.is_true(ok2)
    assert.are.equal(0, #again.applied)
    local st = assert(migrate.status(db))
    assert.are.same({ "applied", "applied", "applied" }, { st.entries[1].state, st.entries[2].state, st.entries[3].state })
    app:stop()
  end)

  it("applies up to a version with to", function()
    local dir = migrations {
      ["0001_a.sql"] = "CREATE TABLE a (x);", ["0002_b.sql"] = "CREATE TABLE b (x);", ["0003_c.sql"] = "CREATE TABLE c (x);",
    }
    local app = db_app { path = temp_db(), migrations = dir }
    local ok, r = migrate.apply(app.list[1], { to = 2 })
    assert.is_true(ok)
    assert.are.equal(2, #r.applied)
    local st = assert(migrate.status(app.list[1]))
    assert.are.equal("pending", st.entries[3].state)
    assert.are.equal(2, st.current)
    app:stop()
  end)

  it("stops at a failing migration, rolling back only that one", function()
    local dir = migrations {
      ["0001_ok.sql"] = "CREATE TABLE t (id INTEGER PRIMARY KEY);",
      ["0002_bad.sql"] = "INSERT INTO t (id) VALUES (1); CREATE TABLEX nope;",
      ["0003_never.sql"] = "CREATE TABLE never (x);",
    }
    local app = db_app { path = temp_db(), migrations = dir }
    local ok, err, code, report = migrate.apply(app.list[1])
    assert.is_nil(ok)
    assert.are.equal("error", code) -- SQLite's code of the syntax error
    assert.truthy(err:find("0002_bad.sql failed", 1, true), err)
    assert.truthy(err:find("syntax error", 1, true), err)
    assert.are.equal(1, #report.applied)
    assert.are.equal("0002_bad.sql", report.failed.file)
    assert.are.equal(0, app:count("t")) -- the INSERT of the failing file was rolled back
    assert.are.equal(1, app:count("jararaca_migrations"))
    app:stop()
  end)

  it("fails a Lua migration that raises or returns nil, err", function()
    local dir = migrations { ["0001_x.lua"] = "return function(s) return nil, 'not today' end" }
    local app = db_app { path = temp_db(), migrations = dir }
    local ok, err, code = migrate.apply(app.list[1])
    assert.is_nil(ok)
    assert.truthy(err:find("not today", 1, true), err)
    assert.are.equal("error", code)
    write(dir .. "/0001_x.lua", "return 42")
    local _, err2, code2 = migrate.apply(app.list[1])
    assert.truthy(err2:find("must return function(session)", 1, true), err2)
    assert.are.equal("invalid", code2)
    app:stop()
  end)

  it("warns about files changed after they were applied and never re-runs them", function()
    local dir = migrations { ["0001_a.sql"] = "CREATE TABLE a (x);" }
    local app = db_app { path = temp_db(), migrations = dir }
    assert.is_true((migrate.apply(app.list[1])))
    write(dir .. "/0001_a.sql", "CREATE TABLE a (x, y);")
    local ok, r = migrate.apply(app.list[1])
    assert.is_true(ok)
    assert.are.equal(0, #r.applied)
    assert.are.equal(1, #r.warnings)
    assert.truthy(r.warnings[1]:find("0001_a.sql was changed after it was applied", 1, true))
    assert.are.equal("changed", assert(migrate.status(app.list[1])).entries[1].state)
    os.remove(dir .. "/0001_a.sql")
    local st = assert(migrate.status(app.list[1]))
    assert.are.equal("missing", st.entries[1].state)
    app:stop()
  end)

  it("applies at startup with migrate_on_start; a failure is a startup error", function()
    local dir = migrations { ["0001_a.sql"] = "CREATE TABLE a (x);" }
    local path = temp_db()
    local app = db_app { path = path, migrations = dir, migrate_on_start = true }
    assert.are.equal(0, app:count("a"))
    app:stop()
    write(dir .. "/0002_bad.sql", "nonsense;")
    local e = err_of(db_app, { path = path, migrations = dir, migrate_on_start = true })
    assert.truthy(e:find('database "default": migrations failed: migration ', 1, true), e)
    assert.truthy(e:find("0002_bad.sql failed", 1, true), e)
  end)

  it("resolves a relative migrations directory against the app file", function()
    local dir = temp_dir()
    os.execute("mkdir -p '" .. dir .. "/migs'")
    write(dir .. "/migs/0001_a.sql", "CREATE TABLE a (x);")
    local app = start({ persistence.SessionInterceptor { path = temp_db(), migrations = "migs", migrate_on_start = true } },
      { __file = dir .. "/app.lua" })
    assert.are.equal(dir .. "/migs", app.list[1].migrations_dir)
    assert.are.equal(0, app:count("a"))
    app:stop()
  end)

  it("lets only one of several concurrent starters apply each migration", function()
    local dir = migrations {
      ["0001_a.lua"] = [[return function(s)
        assert(s:exec_script("CREATE TABLE a (n INTEGER)"))
        require("jararaca.sched").sleep(0.05)
        assert(s:execute("INSERT INTO a (n) VALUES (1)"))
      end]],
      ["0002_b.sql"] = "INSERT INTO a (n) VALUES (2);",
    }
    local path = temp_db()
    local apps = {}
    local tasks = {}
    for i = 1, 4 do
      tasks[i] = sched.spawn(function()
        apps[i] = db_app { path = path, migrations = dir, migrate_on_start = true, readers = 1 }
      end)
    end
    for i = 1, 4 do
      local ok, err = tasks[i]:wait(30)
      assert.is_true(ok, tostring(err))
    end
    assert.are.same({ { n = 1 }, { n = 2 } }, apps[1]:read("SELECT n FROM a ORDER BY n"))
    assert.are.equal(2, apps[1]:count("jararaca_migrations"))
    for i = 1, 4 do apps[i]:stop() end
  end)
end)
