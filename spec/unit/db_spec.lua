-- jararaca.db: databases by role (one writer with group commit, a pool of
-- readers), parameters, transactions and concurrency, through the Lua API
-- (lua/jararaca/db.lua and lua/jararaca/db/ over bindings/l_db.c and
-- core/db_*.c). The C room's own tests are in spec/c/test_db.c. These specs
-- only work under `jararaca test`.
local db = require "jararaca.db"
local json = require "jararaca.json"
local sched = require "jararaca.sched"
local ffi = require "ffi"

pcall(ffi.cdef, [[
  typedef struct { unsigned long rlim_cur, rlim_max; } jr_spec_rlimit;
  int getrlimit(int resource, jr_spec_rlimit *rl);
  int setrlimit(int resource, const jr_spec_rlimit *rl);
  typedef void (*jr_spec_sighandler)(int);
  jr_spec_sighandler signal(int sig, jr_spec_sighandler handler);
]])
local RLIMIT_FSIZE, SIGXFSZ = 1, 25

local dir

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'") == 0)
end)

teardown(function()
  os.execute("rm -rf '" .. dir .. "'")
end)

local n_files = 0
local function fresh_path()
  n_files = n_files + 1
  return ("%s/db%d.sqlite"):format(dir, n_files)
end

local function open(opts)
  local d, err, code = db.open(opts)
  assert(d, tostring(err) .. " " .. tostring(code))
  return d
end

-- fn(tx, d) in a write transaction of a fresh database (":memory:" unless
-- opts.path), rolled back after; closes the database.
local function with_conn(fn, opts)
  opts = opts or {}
  opts.path = opts.path or ":memory:"
  local d = open(opts)
  local tx = d:begin("write")
  local ok, err = pcall(fn, tx, d)
  pcall(tx.rollback, tx)
  assert(d:close())
  if not ok then error(err, 0) end
end

-- The writer's counters (tx holds it, with no statement in flight).
local function writer_stats(tx)
  return assert(require("jararaca.core.db").stats(tx.db.writer.conn))
end

local size_of = require("spec.support.files").size_of

local int64 = ffi.typeof("int64_t")
local uint64 = ffi.typeof("uint64_t")

-- (joined with a table so that it reads the database: a read transaction)
local SLOW_READ = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) "
  .. "SELECT count(*) AS n FROM c JOIN one"

-- Let the other tasks run until cond() holds (they have queued for the
-- writer or a reader, say): an awaited state, not a guessed delay.
local wait = require "spec.support.wait"
local function until_true(cond, what) return wait.until_true(cond, what, 5, 0) end

local function exec(d, sql)
  local tx = d:begin("write")
  assert(tx:exec_script(sql))
  assert(tx:commit())
end

local function read(d, sql, params)
  local tx = d:begin("read")
  local rows = assert(tx:query(sql, params))
  assert(tx:commit())
  return rows
end

describe("jararaca.db", function()
  describe("values", function()
    it("db.null is json.null (and cjson.null)", function()
      assert.equal(json.null, db.null)
      assert.equal(require("cjson").null, db.null)
    end)

    it("db.blob wraps strings only", function()
      assert.is_true(db.is_blob(db.blob("x")))
      assert.is_false(db.is_blob("x"))
      assert.has_error(function() db.blob(1) end, "db.blob(s): s must be a string, got number")
    end)
  end)

  describe("open", function()
    it("opens a writer and readers with the defaults", function()
      local d = open { path = fresh_path(), readers = 3 }
      local st = d:stats()
      assert.same({ size = 3, idle = 3, waiting = 0, waits = 0 }, st.readers)
      assert.equal(4, #st.connections)
      assert.equal("writer", st.connections[1].role)
      local w = d:begin("write")
      assert.equal("wal", w:first("PRAGMA journal_mode").journal_mode)
      assert.equal(1, w:first("PRAGMA synchronous").synchronous) -- NORMAL
      assert.equal(1, w:first("PRAGMA foreign_keys").foreign_keys)
      assert.equal(0, w:first("PRAGMA query_only").query_only)
      assert(w:commit())
      for _ = 1, 3 do
        local r = d:begin("read")
        assert.equal(1, r:first("PRAGMA query_only").query_only) -- readers cannot write
        assert(r:commit())
      end
      assert.is_true(d:close())
    end)

    it("applies the options given, and extra pragmas", function()
      with_conn(function(c)
        assert.equal("delete", c:first("PRAGMA journal_mode").journal_mode)
        assert.equal(2, c:first("PRAGMA synchronous").synchronous)
        assert.equal(0, c:first("PRAGMA foreign_keys").foreign_keys)
        assert.equal(-2000, c:first("PRAGMA cache_size").cache_size)
        assert.equal(5, c:first("PRAGMA user_version").user_version)
      end, {
        path = fresh_path(), journal_mode = "delete", synchronous = "full", foreign_keys = false,
        pragmas = { cache_size = -2000, user_version = 5 },
      })
    end)

    it("returns nil, err, code when the file cannot be opened", function()
      local d, err, code = db.open { path = "/nonexistent-dir/x.db" }
      assert.is_nil(d)
      assert.equal("cannot open database /nonexistent-dir/x.db: unable to open database file", err)
      assert.equal("error", code)
    end)

    it("raises on bad options, naming the option and what it takes", function()
      assert.has_error(function() db.open() end, "db.open{...}: expects a table of options, got nil")
      assert.has_error(function() db.open {} end, "db.open: option path must be a non-empty string, got nil")
      assert.has_error(function() db.open { path = "x", readers = 65 } end,
        "db.open: option readers must be an integer from 0 to 64, got 65")
      assert.has_error(function() db.open { path = "x", journal_mode = "fast" } end,
        'db.open: option journal_mode must be one of WAL, DELETE, TRUNCATE, PERSIST, MEMORY, OFF, got "fast"')
      assert.has_error(function() db.open { path = "x", synchronous = 1 } end,
        "db.open: option synchronous must be one of NORMAL, FULL, EXTRA, OFF, got 1")
      assert.has_error(function() db.open { path = "x", read_deadline_us = -1 } end,
        "db.open: option read_deadline_us must be an integer from 0 to 1000000, got -1")
      assert.has_error(function() db.open { path = "x", group_commit = "yes" } end,
        'db.open: option group_commit must be true or false, got "yes"')
      assert.has_error(function() db.open { path = "x", pool_size = 2 } end)
      assert.has_error(function() db.open { path = "x", pragmas = { ["a;b"] = 1 } } end)
      assert.has_error(function() db.open { path = "x", pragmas = { cache_size = "1; DROP" } } end)
    end)

    it(":memory: is one database on the writer: every transaction takes turns there", function()
      local d = open { path = ":memory:" }
      assert.equal(0, d:stats().readers.size)
      exec(d, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
      local r = d:begin("read")
      assert.equal("write", r.mode)
      assert.equal(1, r:first("SELECT count(*) AS n FROM t").n)
      assert(r:commit())
      -- another database has one of its own
      local other = open { path = ":memory:" }
      local o = other:begin("read")
      local _, err = o:first("SELECT * FROM t")
      assert.equal("no such table: t", err)
      o:rollback()
      assert(other:close())
      assert(d:close())
    end)
  end)

  describe("statements", function()
    it("execute returns changes and last_insert_id", function()
      with_conn(function(c)
        local r = assert(c:execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"))
        assert.same({ changes = 0, last_insert_id = 0 }, r)
        assert.same({ changes = 1, last_insert_id = 1 }, c:execute("INSERT INTO t(v) VALUES ('a')"))
        assert.same({ changes = 1, last_insert_id = 2 }, c:execute("INSERT INTO t(v) VALUES ('b')"))
        assert.same({ changes = 2, last_insert_id = 2 }, c:execute("UPDATE t SET v = v || '!'"))
        -- a rowid beyond 2^53 comes back exactly
        local big = c:execute("INSERT INTO t(id, v) VALUES (4611686018427387904, 'big')")
        assert.equal("cdata", type(big.last_insert_id))
        assert.is_true(big.last_insert_id == int64(2) ^ 62)
      end)
    end)

    it("query returns rows (a JSON array) and the column names", function()
      with_conn(function(c)
        assert(c:exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a'), ('b');"))
        local rows, cols = c:query("SELECT id, v FROM t ORDER BY id")
        assert.same({ { id = 1, v = "a" }, { id = 2, v = "b" } }, rows)
        assert.same({ "id", "v" }, cols)
        assert.is_true(json.is_array(rows))
        assert.equal('[{"id":1}]', json.encode(c:query("SELECT id FROM t WHERE id = 1")))
        local empty, ecols = c:query("SELECT id, v FROM t WHERE id < 0")
        assert.equal("[]", json.encode(empty))
        assert.same({ "id", "v" }, ecols)
        assert.equal('["id","v"]', json.encode(ecols))
      end)
    end)

    it("first returns one row, a lone nil when there is none, or nil, err, code", function()
      with_conn(function(c)
        assert(c:exec_script("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);"))
        assert.same({ x = 1 }, c:first("SELECT x FROM t ORDER BY x"))
        assert.equal(1, select("#", c:first("SELECT x FROM t WHERE x > 5")))
        assert.is_nil(c:first("SELECT x FROM t WHERE x > 5"))
        local r, err, code = c:first("SELECT nope FROM t")
        assert.is_nil(r)
        assert.equal("no such column: nope", err)
        assert.equal("error", code)
      end)
    end)

    it("exec_script runs several statements; execute refuses them", function()
      with_conn(function(c)
        assert.is_true(c:exec_script([[
          CREATE TABLE a(x);  -- migrations look like this
          CREATE TABLE b(y);
          INSERT INTO a VALUES (1);
        ]]))
        local r, err, code = c:execute("INSERT INTO a VALUES (2); INSERT INTO b VALUES (3)")
        assert.is_nil(r)
        assert.equal("more than one statement given: use exec_script for several", err)
        assert.equal("misuse", code)
        assert.equal(1, c:first("SELECT count(*) AS n FROM a").n)
        local ok, serr, scode = c:exec_script("INSERT INTO b VALUES (1); INSERT INTO nope VALUES (1);")
        assert.is_nil(ok)
        assert.equal("no such table: nope", serr)
        assert.equal("error", scode)
      end)
    end)

    it("reports errors with stable codes", function()
      with_conn(function(c)
        assert(c:exec_script([[
          CREATE TABLE p(id INTEGER PRIMARY KEY);
          CREATE TABLE k(id INTEGER PRIMARY KEY, p REFERENCES p(id), u UNIQUE, CHECK (id > 0));
          INSERT INTO p VALUES (1);
          INSERT INTO k VALUES (1, 1, 'x');
        ]]))
        local function code_of(sql) return select(3, c:execute(sql)) end
        assert.same({ nil, 'near "SELEC": syntax error', "error" }, { c:query("SELEC 1") })
        assert.same({ nil, "UNIQUE constraint failed: k.u", "constraint" }, { c:execute("INSERT INTO k VALUES (2, 1, 'x')") })
        assert.equal("constraint", code_of("INSERT INTO k VALUES (3, 42, 'y')")) -- foreign key
        assert.equal("constraint", code_of("INSERT INTO k VALUES (-1, 1, 'z')")) -- check
        assert.equal("constraint", code_of("INSERT INTO p VALUES (1)"))          -- primary key
        assert.equal("error", code_of("INSERT INTO nowhere VALUES (1)"))
      end)
    end)
  end)

  describe("parameters", function()
    local function roundtrip(c, v)
      return c:first("SELECT ? AS v, typeof(?1) AS t", { v })
    end

    it("binds every Lua type", function()
      with_conn(function(c)
        assert.same({ v = 42, t = "integer" }, roundtrip(c, 42))
        assert.same({ v = -7, t = "integer" }, roundtrip(c, -7))
        assert.same({ v = 1.5, t = "real" }, roundtrip(c, 1.5))
        assert.same({ v = 2 ^ 53, t = "integer" }, roundtrip(c, 2 ^ 53))
        assert.same({ v = 2 ^ 53 + 2, t = "real" }, roundtrip(c, 2 ^ 53 + 2)) -- beyond 2^53: a double
        assert.same({ v = 1e300, t = "real" }, roundtrip(c, 1e300))
        assert.same({ v = "héllo", t = "text" }, roundtrip(c, "héllo"))
        assert.same({ v = "", t = "text" }, roundtrip(c, ""))
        assert.same({ v = 1, t = "integer" }, roundtrip(c, true))
        assert.same({ v = 0, t = "integer" }, roundtrip(c, false))
        assert.same({ v = db.null, t = "null" }, roundtrip(c, db.null))
        assert.same({ v = db.null, t = "null" }, roundtrip(c, json.null))
        assert.same({ v = "a\0b\0", t = "blob" }, roundtrip(c, db.blob("a\0b\0")))
        assert.same({ v = "", t = "blob" }, roundtrip(c, db.blob("")))
        assert.same({ v = "a\0b", t = "text" }, roundtrip(c, "a\0b")) -- text keeps its NULs too
      end)
    end)

    it("binds int64 cdata exactly and returns big integers as int64 cdata", function()
      with_conn(function(c)
        local cases = {
          { 9007199254740993LL, "9007199254740993" },          -- 2^53 + 1
          { -9223372036854775807LL - 1, "-9223372036854775808" }, -- -2^63
          { 9223372036854775807LL, "9223372036854775807" },     -- 2^63 - 1
        }
        for _, case in ipairs(cases) do
          local r = c:first("SELECT ? AS v, CAST(?1 AS TEXT) AS s, typeof(?1) AS t", { case[1] })
          assert.equal("integer", r.t)
          assert.equal(case[2], r.s)
          assert.equal("cdata", type(r.v))
          assert.is_true(ffi.istype(int64, r.v))
          assert.is_true(r.v == case[1])
        end
        -- uint64 within range; small cdata come back as numbers
        local r = c:first("SELECT ? AS v", { ffi.new("uint64_t", 12345) })
        assert.equal(12345, r.v)
        r = c:first("SELECT ? AS v", { int64(-5) })
        assert.equal(-5, r.v)
        r = c:first("SELECT 9007199254740992 AS a, 9007199254740993 AS b, -9007199254740993 AS c")
        assert.equal("number", type(r.a))
        assert.is_true(r.b == int64(2) ^ 53 + 1)
        assert.is_true(r.c == -(int64(2) ^ 53) - 1)
        assert.equal('{"b":9007199254740993}', json.encode({ b = r.b }))
        -- a uint64 above 2^63-1 does not fit SQLite's signed integers
        local v, err, code = c:first("SELECT ?", { uint64(2) ^ 63 })
        assert.is_nil(v)
        assert.equal("bad parameter 1: uint64 value above 2^63-1 (SQLite integers are signed)", err)
        assert.equal("range", code)
      end)
    end)

    it("binds named parameters (:name, @name, $name) from keys without the prefix", function()
      with_conn(function(c)
        local r = c:first("SELECT :a AS a, @b AS b, $c AS c, :a + 1 AS d", { a = 1, b = "two", c = db.null, extra = 0 })
        assert.same({ a = 1, b = "two", c = db.null, d = 2 }, r)
        -- numbered positional parameters
        assert.same({ v = "ba" }, c:first("SELECT ?2 || ?1 AS v", { "a", "b" }))
        -- a list of NULLs
        assert.same({ a = db.null, b = 3 }, c:first("SELECT ? AS a, ? AS b", { db.null, 3 }))
      end)
    end)

    it("raises for values SQLite cannot take (misuse), at the caller's line", function()
      with_conn(function(c)
        assert.has_error(function() c:first("SELECT ?, ?", { 1, {} }) end, "tx:first(): bad parameter 2: a table")
        assert.has_error(function() c:first("SELECT ?", { print }) end, "tx:first(): bad parameter 1: a function")
        assert.has_error(function() c:first("SELECT :x", { x = coroutine.create(print) }) end,
          "tx:first(): bad parameter x: a thread")
        assert.has_error(function() c:first("SELECT ?", { ffi.new("int[1]") }) end,
          "tx:first(): bad parameter 1: a cdata (only int64_t and uint64_t)")
        assert.has_error(function() c:first("SELECT ?", "x") end,
          "tx:first(): bad parameters: a list or a table of names expected, got a string")
        local ok, err = pcall(c.execute, c, "SELECT ?", { {} })
        assert.is_false(ok)
        assert.truthy(err:find("tx:execute(): bad parameter 1: a table", 1, true), err)
        -- the transaction is usable afterwards (not left busy)
        assert.same({ x = 1 }, c:first("SELECT ? AS x", { 1 }))
      end)
    end)

    it("reports missing or extra parameters with 'range'", function()
      with_conn(function(c)
        assert.same({ nil, "missing named parameter :b", "range" }, { c:first("SELECT :a, :b", { a = 1 }) })
        assert.same({ nil, "the statement takes 2 parameters, 1 given", "range" }, { c:first("SELECT ?, ?", { 1 }) })
        assert.same({ nil, "the statement takes 1 parameter, 2 given", "range" }, { c:first("SELECT ?", { 1, 2 }) })
        assert.same({ nil, "the statement takes 1 parameter, 0 given", "range" }, { c:first("SELECT ?") })
        -- the statement still works afterwards (it stays in the cache)
        assert.same({ v = 9 }, c:first("SELECT ? AS v", { 9 }))
      end)
    end)

    it("keeps prepared statements in an LRU cache per connection", function()
      with_conn(function(c)
        local s0 = writer_stats(c)
        for i = 1, 10 do assert.equal(i, c:first("SELECT ? AS v", { i }).v) end
        local s1 = writer_stats(c)
        assert.equal(1, s1.cache_misses - s0.cache_misses)
        assert.equal(9, s1.cache_hits - s0.cache_hits)
        c:first("SELECT 1") ; c:first("SELECT 2") ; c:first("SELECT 3") -- evicts "SELECT ? AS v"
        local s2 = writer_stats(c)
        assert.equal(2, s2.cache_size)
        assert.equal(2, s2.cache_evictions - s1.cache_evictions)
      end, { statement_cache = 2 })
    end)
  end)

  describe("transactions", function()
    local d
    before_each(function()
      d = open { path = fresh_path(), readers = 2, read_deadline_us = 200000 }
      exec(d, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a'); CREATE TABLE one(x); INSERT INTO one VALUES (1);")
    end)
    after_each(function() d:close(5) end)

    it("take nothing before their first statement", function()
      local st0 = d:stats()
      for _, mode in ipairs { "read", "write" } do
        local tx = d:begin(mode)
        assert.is_false(tx:active())
        assert.is_true(tx:commit())
        tx = d:begin(mode)
        assert.is_true(tx:rollback())
      end
      local st1 = d:stats()
      assert.equal(st0.connections[1].jobs, st1.connections[1].jobs)
      assert.equal(0, st1.writer.groups - st0.writer.groups)
      assert.has_error(function() d:begin("later") end)
    end)

    it("a read transaction sees one snapshot, on the event loop, until it ends", function()
      local r = d:begin("read")
      assert.same({ v = "a" }, r:first("SELECT v FROM t WHERE id = ?", { 1 }))
      exec(d, "UPDATE t SET v = 'b'")
      assert.same({ v = "a" }, r:first("SELECT v FROM t WHERE id = ?", { 1 }))
      assert.is_true(r:commit())
      assert.same({ { v = "b" } }, read(d, "SELECT v FROM t"))
      local ran = 0
      for _, c in ipairs(d:stats().connections) do if c.role == "reader" then ran = ran + c.inline_runs end end
      assert.is_true(ran >= 4, "statements and ends on the loop: " .. ran)
    end)

    it("commit writes, rollback drops, a failed statement leaves the transaction usable", function()
      local w = d:begin("write")
      assert(w:execute("INSERT INTO t(v) VALUES ('kept')"))
      assert.is_nil(w:execute("INSERT INTO nope VALUES (1)"))
      assert.is_true(w:commit())
      w = d:begin("write")
      assert(w:execute("INSERT INTO t(v) VALUES ('dropped')"))
      assert.is_true(w:rollback())
      assert.same({ { v = "a" }, { v = "kept" } }, read(d, "SELECT v FROM t ORDER BY id"))
    end)

    it("a read transaction that writes first becomes a write one; after reading it cannot", function()
      local r = d:begin("read")
      assert(r:execute("INSERT INTO t(v) VALUES ('upgraded')"))
      assert.equal("write", r.mode)
      assert.is_true(r:commit())
      r = d:begin("read")
      assert(r:exec_script("CREATE TABLE u(x)")) -- a script is a write
      assert.is_true(r:commit())
      r = d:begin("read")
      assert(r:first("SELECT count(*) AS n FROM t"))
      local ok, err, code = r:execute("DELETE FROM t")
      assert.is_nil(ok)
      assert.equal("readonly", code)
      assert.truthy(err:find("read from a snapshot and then tried to write", 1, true), err)
      assert.is_true(r:commit())
      assert.equal(2, #read(d, "SELECT * FROM t"))
    end)

    it("refuses to begin or end transactions with SQL", function()
      local w = d:begin("write")
      for _, sql in ipairs { "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT jr_tx", "RELEASE jr_tx" } do
        local ok, err, code = w:execute(sql)
        assert.is_nil(ok)
        assert.equal("misuse", code)
        assert.truthy(err:find("jararaca begins and ends the transaction", 1, true), err)
      end
      -- savepoints of its own are fine
      assert(w:execute("SAVEPOINT mine"))
      assert(w:execute("INSERT INTO t(v) VALUES ('inner')"))
      assert(w:execute("ROLLBACK TO mine"))
      assert(w:execute("RELEASE mine"))
      assert.is_true(w:commit())
      assert.equal(1, #read(d, "SELECT * FROM t"))
    end)

    it("raises on misuse: after the end, two operations at once", function()
      local w = d:begin("write")
      assert(w:first("SELECT 1 AS x"))
      assert.is_true(w:commit())
      assert.is_true(w:commit()) -- ending twice is fine
      assert.has_error(function() w:first("SELECT 1") end, "tx:first(): the transaction has ended")
      local r = d:begin("read")
      local t = sched.spawn(function() return r:first(SLOW_READ:format(2000000), nil, { thread = true }) end)
      d:begin("read") -- (another transaction is independent)
      sched.sleep(0)
      assert.has_error(function() r:first("SELECT 1") end,
        "tx:first(): another operation is in progress on this transaction")
      r:interrupt()
      local _, _, _, code = t:wait()
      assert.equal("interrupted", code)
      assert.is_true(r:rollback())
      assert.has_error(function() d:begin("write"):interrupt() end)
    end)
  end)

  describe("group commit", function()
    local d
    before_each(function()
      d = open { path = fresh_path() }
      exec(d, [[CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE);
        CREATE TABLE p(id INTEGER PRIMARY KEY);
        CREATE TABLE c(id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);
        CREATE TABLE guarded(x);
        CREATE TRIGGER no_guarded BEFORE INSERT ON guarded BEGIN SELECT RAISE(ROLLBACK, 'refused'); END;]])
    end)
    after_each(function() d:close(5) end)

    -- A holder takes the writer and keeps it until release(); the members
    -- then queue behind it and, once it is gone, form one group.
    local function holder()
      local h = { go = false }
      h.task = sched.spawn(function()
        local w = d:begin("write")
        assert(w:execute("INSERT INTO t(v) VALUES ('holder')"))
        h.holding = true
        while not h.go do sched.sleep(0.001) end
        return w:commit()
      end)
      until_true(function() return h.holding end, "the holder wrote")
      return h
    end

    local function members(list)
      local tasks = {}
      for i, fn in ipairs(list) do
        tasks[i] = sched.spawn(function()
          local w = d:begin("write")
          local ok, err = fn(w)
          if ok == false then return w:rollback() and "rolled back", err end
          return w:commit()
        end)
      end
      local n = d:stats().writer.waiting + #list
      until_true(function() return d:stats().writer.waiting == n end, "the members queued")
      return tasks
    end

    local function results(tasks)
      local out = {}
      for i, t in ipairs(tasks) do
        local ok, a, b, c = t:wait(10)
        assert.is_true(ok, tostring(a))
        out[i] = { a, b, c }
      end
      return out
    end

    it("commits the queued transactions together; each fails alone", function()
      local h = holder()
      local g0 = d:stats().writer
      local ms = members {
        function(w) return w:execute("INSERT INTO t(v) VALUES ('one')") end,
        function(w) assert(w:execute("INSERT INTO t(v) VALUES ('two')")); return false, "handler failed" end,
        function(w) return w:execute("INSERT INTO c(p) VALUES (42)") end, -- a deferred FK: its commit fails
        function(w) return w:execute("INSERT INTO t(v) VALUES ('four')") end,
      }
      assert.equal(4, d:stats().writer.waiting)
      h.go = true
      assert.same({ true }, { h.task:wait(10) and true })
      local r = results(ms)
      assert.same({ true }, { r[1][1] })
      assert.same("rolled back", r[2][1])
      assert.is_nil(r[3][1])
      assert.equal("constraint", r[3][3])
      assert.truthy(r[3][2]:find("commit failed: FOREIGN KEY constraint failed", 1, true), r[3][2])
      assert.same({ true }, { r[4][1] })
      assert.same({ { v = "holder" }, { v = "one" }, { v = "four" } }, read(d, "SELECT v FROM t ORDER BY id"))
      assert.equal(0, read(d, "SELECT count(*) AS n FROM c")[1].n)
      local g1 = d:stats().writer
      assert.equal(2, g1.groups - g0.groups) -- the holder's, then one for the four
      assert.equal(2, g1.largest_group)      -- two of them committed
    end)

    it("fails every member when SQLite rolls the shared transaction back", function()
      local h = holder()
      local ms = members {
        function(w) return w:execute("INSERT INTO t(v) VALUES ('one')") end,
        function(w)
          assert(w:execute("INSERT INTO t(v) VALUES ('two')"))
          local ok, err, code = w:execute("INSERT INTO guarded VALUES (1)") -- RAISE(ROLLBACK)
          assert.is_nil(ok)
          assert.truthy(err:find("refused", 1, true))
          local ok2, err2, code2 = w:execute("INSERT INTO t(v) VALUES ('after')")
          assert.is_nil(ok2)
          assert.equal("aborted", code2)
          return nil, err2, code
        end,
        function(w) return w:execute("INSERT INTO t(v) VALUES ('three')") end,
      }
      h.go = true
      h.task:wait(10)
      local r = results(ms)
      assert.is_nil(r[1][1])
      assert.equal("aborted", r[1][3])
      assert.truthy(r[1][2]:find("rolled back by SQLite after an error in a later transaction", 1, true), r[1][2])
      assert.is_nil(r[2][1])
      assert.truthy(r[2][2]:find("cannot commit", 1, true), r[2][2])
      assert.same({ true }, { r[3][1] }) -- it began a new transaction after the loss
      assert.same({ { v = "holder" }, { v = "three" } }, read(d, "SELECT v FROM t ORDER BY id"))
    end)

    it("fails every member when the group's COMMIT fails (the file cannot grow), and answers none with success",
      function()
        local path = d.path
        local h = holder()
        local ms = members {
          function(w) return w:execute("INSERT INTO t(v) VALUES (hex(randomblob(20000)))") end,
          function(w) return w:execute("INSERT INTO t(v) VALUES (hex(randomblob(20000)))") end,
        }
        local last = sched.spawn(function()
          local w = d:begin("write")
          assert(w:execute("INSERT INTO t(v) VALUES (hex(randomblob(20000)))"))
          while not h.limited do sched.sleep(0.001) end
          return w:commit()
        end)
        until_true(function() return d:stats().writer.waiting == 3 end, "all three queued")
        h.go = true
        assert.is_true((h.task:wait(10)))
        -- the holder committed; the members' pages are in memory only: now
        -- the WAL may not grow past its size
        local saved = ffi.new("jr_spec_rlimit")
        assert(ffi.C.getrlimit(RLIMIT_FSIZE, saved) == 0)
        local old = ffi.C.signal(SIGXFSZ, ffi.cast("jr_spec_sighandler", 1)) -- SIG_IGN
        local lim = ffi.new("jr_spec_rlimit", { math.max(size_of(path .. "-wal"), size_of(path)) + 4096, saved.rlim_max })
        assert(ffi.C.setrlimit(RLIMIT_FSIZE, lim) == 0)
        h.limited = true
        local r = results(ms)
        local ok, lok, lerr, lcode = last:wait(10)
        assert(ffi.C.setrlimit(RLIMIT_FSIZE, saved) == 0)
        ffi.C.signal(SIGXFSZ, old)
        assert.is_true(ok)
        for _, m in ipairs(r) do
          assert.is_nil(m[1])
          assert.truthy(m[2]:find("commit failed", 1, true), m[2])
        end
        assert.is_nil(lok)
        assert.truthy(lerr:find("commit failed", 1, true), lerr)
        assert.equal("error", lcode)
        assert.equal(1, read(d, "SELECT count(*) AS n FROM t")[1].n) -- the holder's row only
        assert.is_true(d:stats().writer.failed_groups >= 1)
        exec(d, "INSERT INTO t(v) VALUES ('after')") -- the writer goes on
      end)

    it("commits a released member when the next holder never begins (its first statement fails)", function()
      local h = holder()
      local ms = members {
        function(w) return w:execute("INSERT INTO t(v) VALUES ('a')") end,
        function(w) return w:execute("INSERT INTO nowhere VALUES (1)") end, -- fails before its savepoint
      }
      h.go = true
      h.task:wait(10)
      local r = results(ms)
      assert.same({ true }, { r[1][1] }) -- not left waiting for a commit nobody sends
      assert.same({ true }, { r[2][1] }) -- (its statement failed; it committed nothing)
      assert.same({ { v = "holder" }, { v = "a" } }, read(d, "SELECT v FROM t ORDER BY id"))
      assert.is_false(d:stats().writer.busy)
    end)

    it("ends the shared transaction when its only member rolled back and the next never began", function()
      local h = holder()
      local ms = members {
        function(w) assert(w:execute("INSERT INTO t(v) VALUES ('a')")); return false, "failed" end,
        function(w) return w:execute("INSERT INTO nowhere VALUES (1)") end, -- fails before its savepoint
      }
      h.go = true
      h.task:wait(10)
      results(ms)
      -- the file is not left write-locked: another writer (a process) gets in at once
      local other = open { path = d.path, busy_timeout = 0.2 }
      local w = other:begin("write")
      assert(w:execute("INSERT INTO t(v) VALUES ('other')"))
      assert.is_true(w:commit())
      assert(other:close())
      assert.same({ { v = "holder" }, { v = "other" } }, read(d, "SELECT v FROM t ORDER BY id"))
    end)

    it("commits a released member when the one waiting behind it was cancelled meanwhile", function()
      local h = holder()
      local behind
      local a = sched.spawn(function()
        local w = d:begin("write")
        assert(w:execute("INSERT INTO t(v) VALUES ('a')"))
        behind:cancel() -- still counted as waiting, but it will not take the writer
        return w:commit()
      end)
      until_true(function() return d:stats().writer.waiting == 1 end, "a queued")
      behind = sched.spawn(function()
        local w = d:begin("write")
        return w:execute("INSERT INTO t(v) VALUES ('never')")
      end)
      until_true(function() return d:stats().writer.waiting == 2 end, "behind queued")
      h.go = true
      h.task:wait(10)
      assert.same({ true, true }, { a:wait(5) })
      local ok, r, _, code = behind:wait(5)
      assert.is_true(ok)
      assert.is_nil(r)
      assert.equal("cancelled", code) -- its wait for the writer was cancelled
      assert.same({ { v = "holder" }, { v = "a" } }, read(d, "SELECT v FROM t ORDER BY id"))
    end)

    it("a write transaction still open when the database closed fails its commit with 'closed'", function()
      local w = d:begin("write")
      assert(w:execute("INSERT INTO t(v) VALUES ('late')"))
      local closer = sched.spawn(function() return d:close(0.02) end)
      assert.is_true((closer:wait(5)))
      local ok, err, code = w:commit()
      assert.is_nil(ok)
      assert.equal("closed", code)
      assert.truthy(err:find("closed", 1, true), err)
    end)

    it("a write transaction waits its turn; an independent one inside the holder is refused at once", function()
      local outer = d:begin("write")
      assert(outer:execute("INSERT INTO t(v) VALUES ('outer')"))
      local inner = d:begin("write", outer)
      local ok, err, code = inner:execute("INSERT INTO t(v) VALUES ('inner')")
      assert.is_nil(ok)
      assert.equal("busy", code)
      assert.truthy(err:find("one writer at a time", 1, true), err)
      inner:rollback()
      -- another transaction waits (FIFO) and gets its turn when outer ends
      local other = sched.spawn(function()
        local w = d:begin("write")
        local r = w:execute("INSERT INTO t(v) VALUES ('other')")
        return r and w:commit()
      end)
      until_true(function() return d:stats().writer.waiting == 1 end, "the other queued")
      assert.is_false(other.done)
      assert.is_true(outer:commit())
      assert.same({ true, true }, { other:wait(5) })
      assert.same({ { v = "outer" }, { v = "other" } }, read(d, "SELECT v FROM t ORDER BY id"))
    end)
  end)

  describe("reads and the event loop", function()
    it("a slow read is stopped at the deadline and finishes on its reader's thread; the loop keeps ticking", function()
      local d = open { path = fresh_path(), readers = 2, read_deadline_us = 1000 }
      exec(d, "CREATE TABLE one(x); INSERT INTO one VALUES (1);")
      local finished = false
      local slow = sched.spawn(function()
        local r = d:begin("read")
        local row = assert(r:first(SLOW_READ:format(3000000)))
        assert(r:commit())
        finished = true
        return row.n
      end)
      local max_gap, ticks, last = 0, 0, sched.clock()
      local ticker = sched.spawn(function()
        while not finished do
          sched.sleep(0.001)
          local now = sched.clock()
          if now - last > max_gap then max_gap = now - last end
          last, ticks = now, ticks + 1
        end
      end)
      -- a quick read alongside is answered meanwhile
      local quick = sched.spawn(function()
        local r = d:begin("read")
        local row = assert(r:first("SELECT x FROM one"))
        r:commit()
        return row.x, finished
      end)
      assert.same({ true, 1, false }, { quick:wait(10) })
      assert.same({ true, 3000000 }, { slow:wait(30) })
      ticker:wait()
      assert.is_true(ticks > 10, "ticks: " .. ticks)
      -- the loop was never held for long (the deadline is 1 ms; a run of the
      -- whole query on the loop would take seconds)
      assert.is_true(max_gap < 0.25, "longest pause of the loop: " .. max_gap)
      local stopped = 0
      for _, c in ipairs(d:stats().connections) do stopped = stopped + (c.inline_stopped or 0) end
      assert.equal(1, stopped)
      assert(d:close())
    end)

    it("with read_deadline_us = 0 every read runs on its reader's thread", function()
      local d = open { path = fresh_path(), readers = 1, read_deadline_us = 0 }
      exec(d, "CREATE TABLE one(x); INSERT INTO one VALUES (1);")
      for _ = 1, 3 do assert.equal(1, read(d, "SELECT x FROM one")[1].x) end
      local c = d:stats().connections[2]
      assert.equal(0, c.inline_runs - 3) -- only the three ends of the transactions
      assert.is_true(c.jobs >= 4)
      assert(d:close())
    end)

    it("a task that runs many reads on the loop still lets the others run", function()
      local d = open { path = fresh_path(), readers = 1, read_deadline_us = 200000 }
      exec(d, "CREATE TABLE one(x); INSERT INTO one VALUES (1);")
      local done, ticks = false, 0
      local ticker = sched.spawn(function()
        while not done do ticks = ticks + 1; sched.sleep(0) end
      end)
      local r = d:begin("read")
      for _ = 1, 60000 do assert(r:first("SELECT x FROM one")) end
      assert(r:commit())
      done = true
      ticker:wait()
      assert.is_true(ticks > 2, "the ticker ran " .. ticks .. " times")
      assert(d:close())
    end)
  end)

  describe("readers", function()
    it("wait for a free reader in FIFO order, and time out", function()
      local d = open { path = fresh_path(), readers = 1, acquire_timeout = 0.05 }
      exec(d, "CREATE TABLE one(x); INSERT INTO one VALUES (1);")
      local held = d:begin("read")
      assert(held:first("SELECT x FROM one"))
      local t = d:begin("read")
      local ok, err, code = t:first("SELECT x FROM one")
      assert.is_nil(ok)
      assert.equal("timeout", code)
      assert.truthy(err:find("no free reader within 0.05s (readers 1)", 1, true), err)
      t:rollback()
      local order = {}
      local waiters = {}
      d.acquire_timeout = 5
      for i = 1, 3 do
        waiters[i] = sched.spawn(function()
          local r = d:begin("read")
          assert(r:first("SELECT x FROM one"))
          order[#order + 1] = i
          sched.sleep(0.001)
          return r:commit()
        end)
      end
      until_true(function() return d:stats().readers.waiting == 3 end, "three readers waiting")
      held:commit()
      for i = 1, 3 do assert.is_true((waiters[i]:wait(5))) end
      assert.same({ 1, 2, 3 }, order)
      assert(d:close())
    end)

    it("close waits for transactions in flight; later ones get closed", function()
      local d = open { path = fresh_path(), readers = 1 }
      exec(d, "CREATE TABLE one(x); INSERT INTO one VALUES (1);")
      local r = d:begin("read")
      assert(r:first("SELECT x FROM one"))
      local w = d:begin("write")
      assert(w:execute("INSERT INTO one VALUES (2)"))
      local closer = sched.spawn(function() return d:close(5) end)
      sched.sleep(0.01)
      assert.is_false(closer.done)
      assert.is_true(r:commit())
      assert.is_true(w:commit())
      assert.same({ true, true }, { closer:wait(5) })
      local t = d:begin("write")
      local ok, err, code = t:first("SELECT 1")
      assert.is_nil(ok)
      assert.equal("closed", code, err)
    end)
  end)

  describe("several databases on one file (as several processes have)", function()
    it("read each other's commits; readers never wait for a writer", function()
      local path = fresh_path()
      local d1, d2 = open { path = path }, open { path = path }
      exec(d1, "CREATE TABLE t(v)")
      local a = d1:begin("write")
      assert(a:execute("INSERT INTO t VALUES ('first')"))
      assert.equal(0, read(d2, "SELECT count(*) AS n FROM t")[1].n)
      assert.is_true(a:commit())
      assert.same({ { v = "first" } }, read(d2, "SELECT v FROM t"))
      exec(d2, "INSERT INTO t VALUES ('second')")
      assert.equal(2, read(d1, "SELECT count(*) AS n FROM t")[1].n)
      assert(d1:close()); assert(d2:close())
    end)

    it("a writer waits for another's lock up to busy_timeout, then gets 'busy'", function()
      local path = fresh_path()
      local d1 = open { path = path }
      local quick = open { path = path, busy_timeout = 0.1 }
      local patient = open { path = path, busy_timeout = 5 }
      exec(d1, "CREATE TABLE t(v)")
      local a = d1:begin("write")
      assert(a:execute("INSERT INTO t VALUES (1)"))
      local q = quick:begin("write")
      local t0 = sched.clock()
      assert.same({ nil, "database is locked", "busy" }, { q:execute("INSERT INTO t VALUES (2)") })
      assert.is_true(sched.clock() - t0 >= 0.09)
      q:rollback()
      local order = {}
      local w = sched.spawn(function()
        local p = patient:begin("write")
        local r = p:execute("INSERT INTO t VALUES (3)")
        order[#order + 1] = "patient wrote"
        return r ~= nil and p:commit()
      end)
      sched.sleep(0.05)
      order[#order + 1] = "commit"
      assert.is_true(a:commit())
      assert.same({ true, true }, { w:wait(5) })
      assert.same({ "commit", "patient wrote" }, order)
      assert.equal("1,3", read(d1, "SELECT group_concat(v) AS s FROM (SELECT v FROM t ORDER BY v)")[1].s)
      assert(d1:close()); assert(quick:close()); assert(patient:close())
    end)
  end)

  describe("WAL", function()
    it("is checkpointed after commits and stays bounded", function()
      local path = fresh_path()
      local d = open { path = path }
      exec(d, "CREATE TABLE w (id INTEGER PRIMARY KEY, pad TEXT)")
      local pad = string.rep("x", 3000) -- about one page per row
      for _ = 1, 3000 do
        local w = d:begin("write")
        assert(w:execute("INSERT INTO w (pad) VALUES (?)", { pad }))
        assert(w:commit())
      end
      assert.equal(3000, read(d, "SELECT count(*) AS n FROM w")[1].n)
      assert.is_true(d:stats().connections[1].checkpoints >= 2)
      -- without checkpoints the WAL would hold ~3000 pages (12 MB)
      local size = size_of(path .. "-wal")
      assert.is_true(size < 8 * 1024 * 1024, "WAL size " .. size)
      assert(d:close())
    end)
  end)
end)
