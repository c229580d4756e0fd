-- jararaca.db: pools, connections, parameters, transactions and
-- concurrency, through the Lua API (lua/jararaca/db.lua over
-- bindings/l_db.c and core/db.c). core/db.c's own tests are in
-- spec/c/test_db.c. These specs only work under `jararaca test`.
local db = require "jararaca.db"
local json = require "jararaca.json"
local sched = require "jararaca.sched"
local ffi = require "ffi"

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
  local pool, err, code = db.open(opts)
  assert(pool, tostring(err) .. " " .. tostring(code))
  return pool
end

-- fn(conn, pool) with a fresh single-connection pool; closes it after.
local function with_conn(fn, opts)
  opts = opts or {}
  opts.path = opts.path or ":memory:"
  local pool = open(opts)
  local c = assert(pool:acquire())
  local ok, err = pcall(fn, c, pool)
  if not ok then
    pcall(c.release, c)
    error(err, 0)
  end
  if c[1] then c:release() end
  assert(pool:close())
end

local int64 = ffi.typeof("int64_t")
local uint64 = ffi.typeof("uint64_t")

local SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) SELECT count(*) AS n FROM c"

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
    it("applies the PRAGMA defaults on every connection", function()
      local pool = open { path = fresh_path(), pool_size = 3 }
      assert.same({ size = 3, idle = 3, waiting = 0 }, pool:stats())
      local conns = {}
      for i = 1, 3 do
        local c = assert(pool:acquire())
        conns[i] = c
        assert.equal("wal", c:first("PRAGMA journal_mode").journal_mode)
        assert.equal(1, c:first("PRAGMA synchronous").synchronous) -- NORMAL
        assert.equal(1, c:first("PRAGMA foreign_keys").foreign_keys)
      end
      for i = 1, 3 do conns[i]:release() end
      assert.is_true(pool:close())
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
      local pool, err, code = db.open { path = "/nonexistent-dir/x.db" }
      assert.is_nil(pool)
      assert.equal("cannot open database /nonexistent-dir/x.db: unable to open database file", err)
      assert.equal("error", code)
    end)

    it("raises on bad options", function()
      assert.has_error(function() db.open() end, "db.open{...}: an options table expected")
      assert.has_error(function() db.open {} end, "db.open: path must be a non-empty string")
      assert.has_error(function() db.open { path = "x", pool_size = 0 } end,
        "db.open: pool_size must be an integer from 1 to 256, got 0")
      assert.has_error(function() db.open { path = "x", journal_mode = "fast" } end,
        "db.open: unknown journal_mode FAST")
      assert.has_error(function() db.open { path = "x", synchronous = 1 } end,
        "db.open: synchronous must be a string, got number")
      assert.has_error(function() db.open { path = "x", pragmas = { ["a;b"] = 1 } } end)
      assert.has_error(function() db.open { path = "x", pragmas = { cache_size = "1; DROP" } } end)
    end)

    it(":memory: is one database, on one connection", function()
      local pool = open { path = ":memory:", pool_size = 4 }
      assert.equal(1, pool:stats().size)
      local c = pool:acquire()
      assert(c:execute("CREATE TABLE t(x)"))
      assert(c:execute("INSERT INTO t VALUES (1)"))
      c:release()
      c = pool:acquire()
      assert.equal(1, c:first("SELECT count(*) AS n FROM t").n)
      c:release()
      -- another pool has a database of its own
      local other = open { path = ":memory:" }
      local c2 = other:acquire()
      local _, err = c2:first("SELECT * FROM t")
      assert.equal("no such table: t", err)
      c2:release()
      assert(other:close())
      assert(pool:close())
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

    it("rejects bad values with nil, err, 'misuse'", function()
      with_conn(function(c)
        assert.same({ nil, "bad parameter 2: a table", "misuse" }, { c:first("SELECT ?, ?", { 1, {} }) })
        assert.same({ nil, "bad parameter 1: a function", "misuse" }, { c:first("SELECT ?", { print }) })
        assert.same({ nil, "bad parameter x: a thread", "misuse" },
          { c:first("SELECT :x", { x = coroutine.create(print) }) })
        assert.same({ nil, "bad parameter 1: a cdata (only int64_t and uint64_t)", "misuse" },
          { c:first("SELECT ?", { ffi.new("int[1]") }) })
        local r, err, code = c:first("SELECT ?", "x")
        assert.is_nil(r)
        assert.equal("bad parameters: a list or a table of names expected, got a string", err)
        assert.equal("misuse", code)
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
        local s0 = c:stats()
        for i = 1, 10 do assert.equal(i, c:first("SELECT ? AS v", { i }).v) end
        local s1 = c:stats()
        assert.equal(1, s1.cache_misses - s0.cache_misses)
        assert.equal(9, s1.cache_hits - s0.cache_hits)
        c:first("SELECT 1") ; c:first("SELECT 2") ; c:first("SELECT 3") -- evicts "SELECT ? AS v"
        local s2 = c:stats()
        assert.equal(2, s2.cache_size)
        assert.equal(2, s2.cache_evictions - s1.cache_evictions)
      end, { statement_cache = 2 })
    end)
  end)

  describe("transactions", function()
    local function setup_table(c)
      assert(c:exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"))
    end

    it("sends BEGIN with the first statement and ends a read-only one without a hop", function()
      with_conn(function(c)
        setup_table(c)
        assert(c:execute("INSERT INTO t(v) VALUES ('a')"))
        local s0 = c:stats()
        assert.is_true(c:begin())
        assert.is_true(c:in_transaction())
        assert.same({ v = "a" }, c:first("SELECT v FROM t WHERE id = ?", { 1 }))
        local s1 = c:stats()
        assert.equal(1, s1.jobs - s0.jobs) -- BEGIN + SELECT: one hop
        assert.is_true(c:commit())
        local s2 = c:stats()
        assert.equal(0, s2.jobs - s1.jobs) -- a read-only COMMIT: no hop
        assert.equal(1, s2.inline_ends - s1.inline_ends)
        assert.is_false(c:in_transaction())
      end, { path = fresh_path() })
    end)

    it("begin with nothing after it costs nothing", function()
      with_conn(function(c)
        local s0 = c:stats()
        assert.is_true(c:begin())
        assert.is_true(c:commit())
        assert.is_true(c:begin("immediate"))
        assert.is_true(c:rollback())
        assert.equal(s0.jobs, c:stats().jobs)
        assert.is_false(c:in_transaction())
      end)
    end)

    it("commits and rolls back writes", function()
      with_conn(function(c)
        setup_table(c)
        c:begin("immediate")
        assert(c:execute("INSERT INTO t(v) VALUES ('kept')"))
        assert.is_true(c:commit())
        c:begin()
        assert(c:execute("INSERT INTO t(v) VALUES ('dropped')"))
        assert.is_true(c:in_transaction())
        assert.is_true(c:rollback())
        assert.is_false(c:in_transaction())
        local rows = c:query("SELECT v FROM t")
        assert.same({ { v = "kept" } }, rows)
        c:begin("exclusive")
        assert(c:execute("DELETE FROM t"))
        assert.is_true(c:commit())
        assert.is_nil(c:first("SELECT v FROM t"))
      end, { path = fresh_path() })
    end)

    it("commit without a transaction is an error, rollback is not", function()
      with_conn(function(c)
        assert.same({ nil, "cannot commit - no transaction is active", "error" }, { c:commit() })
        assert.is_true(c:rollback())
      end)
    end)

    it("a failed first statement leaves the transaction open", function()
      with_conn(function(c)
        setup_table(c)
        c:begin()
        assert.is_nil(c:execute("INSERT INTO nope VALUES (1)"))
        assert.is_true(c:in_transaction())
        assert(c:execute("INSERT INTO t(v) VALUES ('x')"))
        assert.is_true(c:rollback())
        assert.is_nil(c:first("SELECT * FROM t"))
      end)
    end)

    it("follows transactions begun in SQL too", function()
      with_conn(function(c)
        setup_table(c)
        assert(c:execute("BEGIN"))
        assert.is_true(c:in_transaction())
        assert(c:execute("INSERT INTO t(v) VALUES ('x')"))
        assert(c:execute("COMMIT"))
        assert.is_false(c:in_transaction())
      end)
    end)

    it("raises on a nested begin or a bad mode", function()
      with_conn(function(c)
        c:begin()
        assert.has_error(function() c:begin() end)
        assert.is_true(c:rollback())
        assert.has_error(function() c:begin("later") end)
      end)
    end)

    it("release rolls back an open transaction", function()
      local pool = open { path = fresh_path(), pool_size = 1 }
      local c = pool:acquire()
      setup_table(c)
      c:begin()
      assert(c:execute("INSERT INTO t(v) VALUES ('lost')"))
      c:release()
      c = pool:acquire()
      assert.is_false(c:in_transaction())
      assert.is_nil(c:first("SELECT v FROM t"))
      -- a read-only transaction, and a pending begin, too
      c:begin()
      assert(c:first("SELECT count(*) AS n FROM t"))
      c:release()
      c = pool:acquire()
      assert.is_false(c:in_transaction())
      c:begin()
      c:release()
      c = pool:acquire()
      assert.is_false(c:in_transaction())
      assert(c:execute("INSERT INTO t(v) VALUES ('autocommit')")) -- no stray BEGIN
      c:release()
      c = pool:acquire()
      assert.equal(1, c:first("SELECT count(*) AS n FROM t").n)
      c:release()
      assert(pool:close())
    end)
  end)

  describe("misuse", function()
    it("raises when a released connection is used", function()
      local pool = open { path = ":memory:" }
      local c = pool:acquire()
      c:release()
      local ok, err = pcall(function() local r = c:query("SELECT 1"); return r end)
      assert.is_false(ok)
      assert.matches("db_spec.lua:%d+: conn:query%(%): the connection was released", err)
      assert.has_error(function() c:release() end)
      assert.has_error(function() c:begin() end)
      assert.has_error(function() c:in_transaction() end)
      assert(pool:close())
    end)

    it("raises on two operations at once on one connection", function()
      with_conn(function(c)
        local t = sched.spawn(function() return c:first(SLOW:format(300000)) end)
        sched.sleep(0) -- t is now waiting for its query
        local ok, err = pcall(function() local r = c:first("SELECT 1"); return r end)
        assert.is_false(ok)
        assert.matches("db_spec.lua:%d+: conn:first%(%): another operation is in progress on this connection", err)
        assert.has_error(function() c:release() end)
        assert.has_error(function() c:commit() end)
        local tok, r = t:wait()
        assert.is_true(tok)
        assert.equal(300000, r.n)
      end)
    end)

    it("raises on a bad SQL argument", function()
      with_conn(function(c)
        assert.has_error(function() c:query({}) end)
        assert.has_error(function() c:query() end)
      end)
    end)
  end)

  describe("concurrency", function()
    it("a slow query does not hold up another task's quick one, nor the loop", function()
      local pool = open { path = fresh_path(), pool_size = 2 }
      local order, ticks = {}, 0
      local slow = sched.spawn(function()
        local c = pool:acquire()
        local r = assert(c:first(SLOW:format(3000000)))
        c:release()
        order[#order + 1] = "slow"
        return r.n
      end)
      local ticker = sched.spawn(function()
        while #order == 0 do ticks = ticks + 1; sched.sleep(0.005) end
      end)
      sched.sleep(0.02) -- the slow query is running
      local quick = sched.spawn(function()
        local c = pool:acquire()
        local r = assert(c:first("SELECT 42 AS v"))
        c:release()
        order[#order + 1] = "quick"
        return r.v
      end)
      assert.same({ true, 42 }, { quick:wait() })
      assert.same({ true, 3000000 }, { slow:wait() })
      ticker:wait()
      assert.same({ "quick", "slow" }, order)
      assert.is_true(ticks > 1)
      assert(pool:close())
    end)

    it("runs a statement it knows to be quick on the event loop (no hop)", function()
      with_conn(function(c)
        assert(c:exec_script("CREATE TABLE t(id TEXT PRIMARY KEY, v INTEGER)"))
        local ins = "INSERT INTO t(id, v) VALUES (?, ?) RETURNING v"
        assert.same({ v = 1 }, c:first(ins, { "a", 1 })) -- first run: the thread's, which classifies it
        local s0 = c:stats()
        assert.is_true(c:begin())
        assert.same({ v = 2 }, c:first(ins, { "b", 2 }))
        assert.is_true(c:commit())
        assert.same({ v = 2 }, c:first("SELECT v FROM t WHERE id = ?", { "b" }))
        assert.same({ v = 1 }, c:first("SELECT v FROM t WHERE id = ?", { "a" }))
        local s1 = c:stats()
        assert.equal(1, s1.jobs - s0.jobs) -- only the SELECT's first run
        assert.equal(2, s1.inline_runs - s0.inline_runs)
        -- errors come back the same way
        assert.same({ nil, "UNIQUE constraint failed: t.id", "constraint" }, { c:first(ins, { "a", 9 }) })
      end, { path = fresh_path(), inline_us = 20000 }) -- quick even on a loaded machine
    end)

    it("moves a known query that turned slow off the loop, which keeps ticking", function()
      local pool = open { path = fresh_path(), pool_size = 2, inline_us = 5000 }
      local c = pool:acquire()
      local count_to = SLOW:format(0):gsub("< 0", "< ?")
      assert.equal(10, c:first(count_to, { 10 }).n) -- known now, and quick
      local ticks, done = 0, false
      local ticker = sched.spawn(function()
        while not done do ticks = ticks + 1; sched.sleep(0.001) end
      end)
      local s0 = c:stats()
      assert.equal(3000000, c:first(count_to, { 3000000 }).n)
      done = true
      ticker:wait()
      assert.is_true(ticks > 1) -- the loop ran while the query did
      local s1 = c:stats()
      assert.equal(1, s1.inline_fallbacks - s0.inline_fallbacks)
      assert.equal(1, s1.jobs - s0.jobs)
      c:release()
      assert(pool:close())
    end)

    it("lets other tasks run while one task runs many quick statements", function()
      with_conn(function(c)
        assert(c:exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)"))
        local ins = "INSERT INTO t(v) VALUES (?)"
        assert(c:execute(ins, { 0 })) -- known now
        local ticks, done = 0, false
        local ticker = sched.spawn(function()
          while not done do ticks = ticks + 1; sched.sleep(0.001) end
        end)
        sched.sleep(0) -- the ticker is waiting on its timer
        local s0 = c:stats()
        assert.is_true(c:begin())
        for i = 1, 5000 do assert(c:execute(ins, { i })) end
        assert.is_true(c:commit())
        done = true
        ticker:wait()
        local s1 = c:stats()
        assert.is_true(s1.inline_runs - s0.inline_runs > 4000) -- most ran on the loop
        assert.is_true(s1.jobs - s0.jobs >= 1)                  -- a few went through the thread...
        assert.is_true(ticks > 1)                               -- ...and the ticker ran meanwhile
      end, { path = fresh_path() })
    end)

    it("keeps every statement on the connection's thread with inline_us = 0", function()
      with_conn(function(c)
        for _ = 1, 3 do assert.same({ v = 1 }, c:first("SELECT 1 AS v")) end
        assert.equal(0, c:stats().inline_runs)
      end, { inline_us = 0 })
      assert.has_error(function() db.open { path = fresh_path(), inline_us = -1 } end)
    end)

    it("conn:interrupt() stops a running statement", function()
      with_conn(function(c)
        local t = sched.spawn(function() return c:first(SLOW:format(100000000)) end)
        sched.sleep(0.05)
        c:interrupt()
        local ok, r, err, code = t:wait()
        assert.is_true(ok)
        assert.is_nil(r)
        assert.equal("interrupted", err)
        assert.equal("interrupted", code)
        assert.same({ v = 1 }, c:first("SELECT 1 AS v")) -- usable afterwards
      end)
    end)

    it("64 tasks read and write through a pool of 4", function()
      local pool = open { path = fresh_path(), pool_size = 4 }
      local c = pool:acquire()
      assert(c:exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)"))
      c:release()
      local fns = {}
      for i = 1, 64 do
        fns[i] = function()
          local conn = assert(pool:acquire())
          conn:begin(i % 2 == 0 and "immediate" or nil)
          local r = assert(conn:execute("INSERT INTO t(v) VALUES (?)", { i }))
          local row = assert(conn:first("SELECT v FROM t WHERE id = ?", { r.last_insert_id }))
          assert(conn:commit())
          conn:release()
          return row.v
        end
      end
      local results = { sched.gather(unpack(fns)) }
      for i = 1, 64 do assert.equal(i, results[i]) end
      c = pool:acquire()
      assert.same({ n = 64, s = 64 * 65 / 2 }, c:first("SELECT count(*) AS n, sum(v) AS s FROM t"))
      c:release()
      assert.same({ size = 4, idle = 4, waiting = 0 }, pool:stats())
      assert(pool:close())
    end)
  end)

  describe("pool", function()
    it("waits for a free connection, in FIFO order, and times out", function()
      local pool = open { path = fresh_path(), pool_size = 2 }
      local a, b = pool:acquire(), pool:acquire()
      assert.same({ size = 2, idle = 0, waiting = 0 }, pool:stats())
      assert.same({ nil, "timeout" }, { pool:acquire(0) })
      assert.same({ nil, "timeout" }, { pool:acquire(0.02) })
      assert.equal(0, pool:stats().waiting)
      local got = {}
      local waiters = {}
      for i = 1, 3 do
        waiters[i] = sched.spawn(function()
          local c = assert(pool:acquire(5))
          got[#got + 1] = i
          sched.sleep(0.01)
          c:release()
        end)
        sched.sleep(0) -- start them in order
      end
      assert.equal(3, pool:stats().waiting)
      a:release()
      b:release()
      for i = 1, 3 do assert.is_true((waiters[i]:wait())) end
      assert.same({ 1, 2, 3 }, got)
      assert.same({ size = 2, idle = 2, waiting = 0 }, pool:stats())
      assert(pool:close())
    end)

    it("keeps a released connection for the woken waiter, and reuses the warm one", function()
      local pool = open { path = fresh_path(), pool_size = 2 }
      local a, b = pool:acquire(), pool:acquire()
      local raw = {}
      local waiters = {}
      for i = 1, 2 do
        waiters[i] = sched.spawn(function()
          local c = assert(pool:acquire(5))
          raw[i] = c[1]
          c:release() -- at once: the next waiter may take this one again
        end)
        sched.sleep(0) -- start them in order
      end
      local b_raw = b[1]
      a:release() -- wakes waiter 1
      -- a newcomer cannot take the connection waiter 1 was promised
      assert.same({ nil, "timeout" }, { pool:acquire(0) })
      b:release() -- wakes waiter 2
      for i = 1, 2 do assert.is_true((waiters[i]:wait())) end
      -- both ran on the connection released last (warm, on top), b's
      assert.equal(b_raw, raw[1])
      assert.equal(b_raw, raw[2])
      assert.same({ size = 2, idle = 2, waiting = 0 }, pool:stats())
      assert(pool:close())
    end)

    it("a woken waiter finds the pool closed", function()
      local pool = open { path = fresh_path(), pool_size = 1 }
      local a = pool:acquire()
      local w = sched.spawn(function() return pool:acquire(5) end)
      sched.sleep(0)
      a:release() -- wakes w
      assert(pool:close())
      assert.same({ true, nil, "closed" }, { w:wait() })
    end)

    it("a waiter that timed out is skipped", function()
      local pool = open { path = fresh_path(), pool_size = 1 }
      local a = pool:acquire()
      local t1 = sched.spawn(function() return pool:acquire(0.01) end)
      local t2 = sched.spawn(function()
        local c = pool:acquire(5)
        c:release()
        return "got it"
      end)
      assert.same({ true, nil, "timeout" }, { t1:wait() })
      a:release()
      assert.same({ true, "got it" }, { t2:wait() })
      assert.same({ size = 1, idle = 1, waiting = 0 }, pool:stats())
      assert(pool:close())
    end)

    it("a cancelled waiter leaves the queue", function()
      local pool = open { path = fresh_path(), pool_size = 1 }
      local a = pool:acquire()
      assert.same({ nil, "timeout" }, { sched.timeout(0.02, function() return pool:acquire() end) })
      sched.sleep(0) -- the cancelled task runs and leaves
      assert.equal(0, pool:stats().waiting)
      a:release()
      assert.equal(1, pool:stats().idle)
      assert(pool:close())
    end)

    it("close waits for acquired connections; acquire after close says closed", function()
      local pool = open { path = fresh_path(), pool_size = 2 }
      local held = pool:acquire()
      local other = pool:acquire()
      local waiter = sched.spawn(function() return pool:acquire() end)
      sched.sleep(0)
      local events = {}
      local holder = sched.spawn(function()
        sched.sleep(0.05)
        events[#events + 1] = "released"
        held:release()
      end)
      other:release()            -- goes to the waiter
      local w_ok, w_conn = waiter:wait()
      assert.is_true(w_ok)
      w_conn:release()
      assert.is_true(pool:close())
      events[#events + 1] = "closed"
      holder:wait()
      assert.same({ "released", "closed" }, events)
      assert.same({ nil, "closed" }, { pool:acquire() })
      assert.is_true(pool:close()) -- twice is fine
    end)

    it("close wakes waiting acquirers with closed, and can time out", function()
      local pool = open { path = fresh_path(), pool_size = 1 }
      local held = pool:acquire()
      local waiter = sched.spawn(function() return pool:acquire() end)
      sched.sleep(0)
      assert.same({ nil, "timeout" }, { pool:close(0.02) })
      assert.same({ true, nil, "closed" }, { waiter:wait() })
      -- the held connection still works until released, and closes then
      assert.same({ v = 1 }, held:first("SELECT 1 AS v"))
      held:release()
    end)
  end)

  describe("several pools on one file", function()
    it("read each other's commits (WAL), readers never wait for a writer", function()
      local path = fresh_path()
      local p1, p2 = open { path = path, pool_size = 2 }, open { path = path, pool_size = 2 }
      local a, b = p1:acquire(), p2:acquire()
      assert(a:exec_script("CREATE TABLE t(v)"))
      a:begin("immediate")
      assert(a:execute("INSERT INTO t VALUES ('first')"))
      -- b reads while a holds the write lock: the last committed state
      assert.equal(0, b:first("SELECT count(*) AS n FROM t").n)
      assert.is_true(a:commit())
      assert.same({ v = "first" }, b:first("SELECT v FROM t"))
      assert(b:execute("INSERT INTO t VALUES ('second')"))
      assert.equal(2, a:first("SELECT count(*) AS n FROM t").n)
      a:release(); b:release()
      assert(p1:close()); assert(p2:close())
    end)

    it("a writer waits for the lock up to busy_timeout, then gets 'busy'", function()
      local path = fresh_path()
      local p1 = open { path = path, pool_size = 1 }
      local quick = open { path = path, pool_size = 1, busy_timeout = 0.1 }
      local patient = open { path = path, pool_size = 1, busy_timeout = 5 }
      local a = p1:acquire()
      assert(a:exec_script("CREATE TABLE t(v)"))
      a:begin("immediate")
      assert(a:execute("INSERT INTO t VALUES (1)"))
      local q = quick:acquire()
      local t0 = sched.clock()
      assert.same({ nil, "database is locked", "busy" }, { q:execute("INSERT INTO t VALUES (2)") })
      assert.is_true(sched.clock() - t0 >= 0.09)
      -- a patient writer gets in once the lock is released
      local order = {}
      local w = sched.spawn(function()
        local c = patient:acquire()
        local r = c:execute("INSERT INTO t VALUES (3)")
        order[#order + 1] = "patient wrote"
        c:release()
        return r ~= nil
      end)
      sched.sleep(0.05)
      order[#order + 1] = "commit"
      assert.is_true(a:commit())
      assert.same({ true, true }, { w:wait() })
      assert.same({ "commit", "patient wrote" }, order)
      assert.equal("1,3", q:first("SELECT group_concat(v) AS s FROM (SELECT v FROM t ORDER BY v)").s)
      a:release(); q:release()
      assert(p1:close()); assert(quick:close()); assert(patient:close())
    end)

    it("a deferred transaction that read an old snapshot cannot write: busy at once", function()
      local path = fresh_path()
      local p1, p2 = open { path = path, pool_size = 1 }, open { path = path, pool_size = 1 }
      local a, b = p1:acquire(), p2:acquire()
      assert(a:exec_script("CREATE TABLE t(v)"))
      b:begin()
      assert(b:first("SELECT count(*) AS n FROM t")) -- b's snapshot
      assert(a:execute("INSERT INTO t VALUES (1)"))   -- a commits after it
      local r, err, code = b:execute("INSERT INTO t VALUES (2)")
      assert.is_nil(r)
      assert.equal("busy", code)
      assert.matches("locked", err)
      assert.is_true(b:rollback())
      a:release(); b:release()
      assert(p1:close()); assert(p2:close())
    end)
  end)

  describe("WAL commits", function()
    it("commits on the loop thread (no hop) and still checkpoints the WAL", function()
      local path = fresh_path()
      local pool = open { path = path, pool_size = 1 }
      local c = assert(pool:acquire())
      assert(c:execute("CREATE TABLE w (id INTEGER PRIMARY KEY, pad TEXT)"))
      local pad = string.rep("x", 3000) -- about one page per row
      for i = 1, 3000 do
        c:begin()
        assert(c:execute("INSERT INTO w (pad) VALUES (?)", { pad }))
        assert(c:commit())
      end
      local st = c:stats()
      assert.is_true(st.inline_ends >= 2900, "inline commits: " .. tostring(st.inline_ends))
      assert.equal(3000, c:first("SELECT count(*) AS n FROM w").n)
      -- without checkpoints the WAL would hold ~3000 pages (12 MB)
      local f = assert(io.open(path .. "-wal", "rb"))
      local size = f:seek("end")
      f:close()
      assert.is_true(size < 8 * 1024 * 1024, "WAL size " .. size)
      c:release()
      assert(pool:close())
    end)
  end)
end)
