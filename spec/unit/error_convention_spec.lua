-- The error convention (docs/errors.md), checked against the API: every
-- function its tables list with an expected failure is made to fail here,
-- and the answer must be nil, a non-empty message, and a code that the
-- page lists both in its code table and on that function's row. Misuse
-- must raise. The tables are read from docs/errors.md itself, so the page
-- and the code cannot drift apart.
local j = require "jararaca"
local sched = require "jararaca.sched"
local csched = require "jararaca.core.sched"
local sys = require "jararaca.core.sys"
local router_core = require "jararaca.core.router"
local db = require "jararaca.db"
local config = require "jararaca.config"
local persistence = require "jararaca.persistence"
local session_mod = require "jararaca.persistence.session"
local migrate = require "jararaca.persistence.migrate"
local runtime = require "jararaca.runtime"
local testing = require "jararaca.testing"
local tsgen = require "jararaca.tsgen"
local process = require "jararaca.core.process"
local s = j.schema

local DOC = "docs/errors.md"

-- Functions of the page whose failures need a live peer: each entry names
-- the spec that provokes them and checks the same shape.
local WS_LIVE = 'spec/integration/websocket_spec.lua (a WebSocket needs a real connection: "answers nil, msg,'
  .. ' \"closed\" once closed", "receive(timeout)", "refuses text that is not UTF-8"; accept\'s own'
  .. ' failures need a client gone between the upgrade and the 101)'
local AMQP_LIVE = "spec/integration/amqp_spec.lua (a RabbitMQ node: refused declarations, closed clients,"
  .. " cancelled publishes, missing queues and exchanges (not_found); nacked, disconnected, busy need a broker"
  .. " that fails on cue)"
local PENDING = {
  ["ac:declare_exchange"] = AMQP_LIVE, ["ac:declare_queue"] = AMQP_LIVE, ["ac:bind"] = AMQP_LIVE,
  ["ac:publish"] = AMQP_LIVE, ["delivery:ack"] = AMQP_LIVE, ["ac:cancel"] = AMQP_LIVE,
  ["ac:queue_info"] = AMQP_LIVE, ["ac:exchange_exists"] = AMQP_LIVE, ["ac:purge"] = AMQP_LIVE, ["ac:get"] = AMQP_LIVE,
  ["req:respond"] = "spec/integration/guard_spec.lua (a request handle needs a real connection)",
  ["ws:accept"] = WS_LIVE, ["ws:receive"] = WS_LIVE, ["ws:send_text"] = WS_LIVE, ["ws:send_bytes"] = WS_LIVE,
  ["ws:send_json"] = WS_LIVE, ["ws:close"] = WS_LIVE, ["mgr:add_websocket"] = WS_LIVE, ["mgr:join"] = WS_LIVE,
}

local SQLITE = { "busy", "locked", "constraint", "readonly", "aborted", "corrupt", "full", "misuse", "range",
  "interrupted", "error" }

---------------------------------------------------------------------------
-- The page
---------------------------------------------------------------------------

local function read_doc()
  local f = assert(io.open(DOC, "r"))
  local text = f:read("*a")
  f:close()
  return text
end

local function section(text, title)
  local start = assert(text:find("\n## " .. title .. "\n", 1, true), "no section " .. title)
  local stop = text:find("\n## ", start + 1, true) or #text
  return text:sub(start, stop)
end

local function cells(line)
  local out = {}
  for c in line:gmatch("|([^|]*)") do out[#out + 1] = c end
  out[#out] = nil -- after the last bar
  return out
end

-- { code = true } from the code table; "e..." stands for the OS errors.
local function doc_codes(text)
  local codes = {}
  for line in section(text, "Codes"):gmatch("[^\n]+") do
    local code = line:match("^| `([%w_.]+)` |")
    if code then codes[code] = true end
  end
  return codes
end

-- rows[name] = { codes = { code = true }, sqlite = bool, os = bool } from the
-- tables of "Per function"; name is the call without its arguments.
local function doc_rows(text)
  local rows, order = {}, {}
  for line in section(text, "Per function"):gmatch("[^\n]+") do
    local c = cells(line)
    local name = c[1] and c[1]:match("^%s*`([%w_.:]+)")
    if name and #c == 3 then
      local cell = c[3]
      local row = { codes = {}, refs = {}, sqlite = false, os = false, text = cell }
      for ref in cell:gmatch("as `([%w_.:]+)") do row.refs[#row.refs + 1] = ref end
      cell = cell:gsub("as `[%w_.:]+`", "")
      if cell:find("SQLite's", 1, true) or cell:find("the database's", 1, true) then row.sqlite = true end
      for word in cell:gmatch("`([^`]+)`") do
        if word == "e..." then row.os = true
        elseif word:match("^[a-z][a-z0-9_]*$") then row.codes[word] = true end
      end
      rows[name] = row
      order[#order + 1] = name
    end
  end
  -- "as `other`": that row's codes too
  for _ = 1, 3 do
    for _, name in ipairs(order) do
      local row = rows[name]
      for _, ref in ipairs(row.refs) do
        local other = assert(rows[ref], name .. " refers to a row that is not there: " .. ref)
        for code in pairs(other.codes) do row.codes[code] = true end
        row.sqlite = row.sqlite or other.sqlite
        row.os = row.os or other.os
      end
    end
  end
  return rows, order
end

local TEXT = read_doc()
local CODES = doc_codes(TEXT)
local ROWS, ORDER = doc_rows(TEXT)

local function documented(code)
  return CODES[code] or (CODES["e..."] and code:match("^e[a-z0-9_]+$") ~= nil)
end

local function allowed(row, code)
  if row.codes[code] then return true end
  if row.sqlite then for _, c in ipairs(SQLITE) do if c == code then return true end end end
  return row.os and code:match("^e[a-z0-9_]+$") ~= nil
end

local function pack(...) return { n = select("#", ...), ... } end

-- The answer r (a pack) of function `name` is a documented failure with
-- code `want`; returns its message and the extra values.
local function failed(name, want, r)
  local row = assert(ROWS[name], name .. " is not in " .. DOC)
  assert.is_nil(r[1], name .. ": the first value of a failure must be nil")
  assert.are.equal("string", type(r[2]), name .. ": the message must be a string, got " .. type(r[2]))
  assert.truthy(#r[2] > 0, name .. ": empty message")
  local code = r[3]
  assert.are.equal("string", type(code), name .. ": the code must be a string (message: " .. tostring(r[2]) .. ")")
  assert.are.equal(code:lower(), code, name .. ": the code must be lower case")
  assert.truthy(documented(code), name .. ": code " .. code .. " is not in the code table of " .. DOC)
  assert.truthy(allowed(row, code), name .. ": code " .. code .. " is not on its row of " .. DOC)
  if want then assert.are.equal(want, code, name .. ": " .. tostring(r[2])) end
  return r[2], r[4]
end

-- Misuse raises; with `here`, the message points at the caller's line
-- (this file), not inside the framework.
local function raises(fn, pattern, here)
  local ok, err = pcall(fn)
  assert.is_false(ok, "misuse did not raise (" .. pattern .. ")")
  assert.truthy(tostring(err):find(pattern, 1, true), tostring(err))
  if here then assert.truthy(tostring(err):find("error_convention_spec.lua:", 1, true), tostring(err)) end
end

---------------------------------------------------------------------------
-- Helpers for the cases
---------------------------------------------------------------------------

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p '" .. tmp .. "'") == 0)

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function in_task(fn)
  return sched.spawn(fn):wait(30)
end

-- fn(tx, d) in a write transaction of a fresh in-memory database.
local function with_tx(fn)
  local d = assert(db.open { path = ":memory:" })
  local tx = d:begin("write")
  local ok, err = pcall(fn, tx, d)
  tx:rollback()
  assert(d:close())
  if not ok then error(err, 0) end
end

-- fn(rt, session) with an app that has one in-memory database, in a task
-- of its own (the runtime binds its context there).
local function with_app(fn, more)
  local list = { persistence.SessionInterceptor { url = "sqlite:///:memory:" } }
  for _, x in ipairs(more or {}) do list[#list + 1] = x end
  local app = j.Microservice { interceptors = list }
  return in_task(function()
    local rt = runtime.start(app, "test")
    local ok, err = pcall(persistence.providing_new_session, function(ses) return fn(rt, ses) end)
    rt:stop()
    if not ok then error(err, 0) end
  end)
end

---------------------------------------------------------------------------
-- One case per function with an expected failure
---------------------------------------------------------------------------

local CASES = {}

CASES["task:wait"] = function()
  local t = sched.spawn(function() sched.sleep(5) end)
  local msg = failed("task:wait", "timeout", pack(t:wait(0.01)))
  assert.truthy(msg:find("still running", 1, true), msg)
  t:cancel()
  failed("task:wait", "cancelled", pack(t:wait()))
  raises(function() t:wait("soon") end, "timeout must be a number", true)
end

CASES["j.timeout"] = function()
  local msg = failed("j.timeout", "timeout", pack(j.timeout(0.01, function() sched.sleep(5) end)))
  assert.are.equal("timed out after 0.01 s", msg)
  raises(function() j.timeout("1", function() end) end, "seconds must be a number", true)
  raises(function() j.timeout(1, function() error("raised inside", 0) end) end, "raised inside")
end

CASES["j.log.set"] = function()
  local level = sys.log_level()
  failed("j.log.set", "invalid", pack(j.log.set { level = "loud" }))
  failed("j.log.set", "invalid", pack(j.log.set { level = "debug", format = "xml" }))
  assert.are.equal(level, sys.log_level()) -- a failed call changes nothing
  raises(function() j.log.set("debug") end, "opts must be a table", true)
end

CASES["j.json.encode"] = function()
  failed("j.json.encode", "invalid", pack(j.json.encode({ x = 0 / 0 })))
  failed("j.json.encode", "invalid", pack(j.json.encode({ print })))
  local cycle = {}
  cycle.self = cycle
  failed("j.json.encode", "invalid", pack(j.json.encode(cycle)))
  local msg = failed("j.json.encode", "invalid_utf8", pack(j.json.encode({ name = "caf\233" })))
  assert.truthy(msg:find("UTF-8", 1, true), msg)
  raises(function() j.json.encode() end, "value expected")
end

CASES["j.json.decode"] = function()
  local msg = failed("j.json.decode", "invalid_json", pack(j.json.decode('{"a": 1,}')))
  assert.truthy(msg:find("position", 1, true), msg)
  failed("j.json.decode", "invalid_json", pack(j.json.decode('"\255"')))
  failed("j.json.decode", "invalid_json", pack(j.json.decode(("["):rep(1001) .. ("]"):rep(1001))))
  failed("j.json.decode", "out_of_range", pack(j.json.decode("1e400")))
  failed("j.json.decode", "out_of_range", pack(j.json.decode("[99999999999999999999]")))
  raises(function() j.json.decode(42) end, "string expected, got number")
end

CASES["schema:validate"] = function()
  local sc = s.object { { "n", s.integer() }, { "name", s.string { min_length = 1 } } }
  local msg, errs = failed("schema:validate", "invalid", pack(sc:validate({ n = "x", name = "" })))
  assert.are.equal(s.describe_errors(errs), msg)
  assert.are.same({ "int_type", "string_too_short" }, { errs[1].type, errs[2].type })
  local _, missing = failed("schema:validate", "invalid", pack(s.integer():validate(nil, { loc = "body" })))
  assert.are.same({ "body" }, missing[1].loc)
  raises(function() sc:validate({}, true) end, "opts must be a table", true)
end

CASES["schema:encode"] = function()
  local sc = s.object { { "n", s.integer() } }
  local _, errs = failed("schema:encode", "invalid", pack(sc:encode({ n = 1.5 })))
  assert.are.equal("int_from_float", errs[1].type)
  _, errs = failed("schema:encode", "invalid", pack(s.any():encode({ f = print })))
  assert.are.equal("serialization_error", errs[1].type)
  raises(function() sc:encode({ n = 1 }, "body") end, "opts must be a table", true)
end

CASES["schema.validate_fields"] = function()
  local query = { page = s.integer { minimum = 0 } }
  local msg, errs = failed("schema.validate_fields", "invalid",
    pack(s.validate_fields(query, { page = "-1" }, { loc_prefix = "query" })))
  assert.truthy(msg:find("query.page: ", 1, true), msg)
  assert.are.same({ "query", "page" }, errs[1].loc)
  raises(function() s.validate_fields(query, {}, "query") end, "opts must be a table", true)
end

CASES["config.from_env"] = function()
  local Conf = s.object { { "port", s.integer() } }
  local _, errs = failed("config.from_env", "invalid",
    pack(config.from_env(Conf, { prefix = "X_", env = function() return "many" end })))
  assert.are.equal("X_PORT", errs[1].var)
  raises(function() config.from_env(nil) end, "must be an object schema", true)
end

CASES["db.open"] = function()
  failed("db.open", nil, pack(db.open { path = tmp .. "/no/such/dir/x.db" }))
  raises(function() db.open(42) end, "expects a table of options", true)
end

CASES["tx:execute"] = function()
  with_tx(function(tx)
    assert(tx:exec_script("CREATE TABLE u (email TEXT UNIQUE); INSERT INTO u VALUES ('a@x');"))
    failed("tx:execute", "constraint", pack(tx:execute("INSERT INTO u VALUES (?)", { "a@x" })))
    failed("tx:execute", "error", pack(tx:execute("INSERT INTO nope VALUES (1)")))
    failed("tx:execute", "misuse", pack(tx:execute("SELECT 1; SELECT 2")))
    raises(function() tx:execute(42) end, "sql must be a string", true)
    raises(function() tx:execute("SELECT ?", { {} }) end, "bad parameter 1: a table", true)
  end)
end

-- One statement that fails, per method of a transaction and of a session.
local STATEMENTS = {
  { "query", "SELECT * FROM nope", "error" },
  { "first", "SELEC 1", "error" },
  { "exec_script", "BEGIN; COMMIT;", "misuse" },
}
for _, st in ipairs(STATEMENTS) do
  local method, sql, code = st[1], st[2], st[3]
  CASES["tx:" .. method] = function()
    with_tx(function(tx) failed("tx:" .. method, code, pack(tx[method](tx, sql))) end)
  end
  CASES["session:" .. method] = function()
    with_app(function(_, ses) failed("session:" .. method, code, pack(ses[method](ses, sql))) end)
  end
end

CASES["tx:commit"] = function()
  local d = assert(db.open { path = ":memory:" })
  local tx = d:begin("write")
  assert(tx:exec_script([[
    CREATE TABLE p (id INTEGER PRIMARY KEY);
    CREATE TABLE c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);
    INSERT INTO c VALUES (7);]]))
  failed("tx:commit", "constraint", pack(tx:commit()))
  assert(d:close())
end

CASES["database:close"] = function()
  local d = assert(db.open { path = tmp .. "/close.db", readers = 1 })
  local r = d:begin("read")
  assert(r:first("SELECT 1 AS x")) -- holds the reader
  local closing = pack(in_task(function() return d:close(0.01) end))
  assert.is_true(closing[1])
  failed("database:close", "timeout", { n = closing.n - 1, unpack(closing, 2, closing.n) })
  r:rollback()
end

CASES["session:execute"] = function()
  with_app(function(_, ses)
    failed("session:execute", "error", pack(ses:execute("UPDATE nope SET x = 1")))
    raises(function() ses:execute(nil) end, "session:execute(): sql must be a string", true)
  end)
end

CASES["persistence.parse_url"] = function()
  failed("persistence.parse_url", "invalid", pack(persistence.parse_url("postgresql://db")))
  raises(function() persistence.parse_url(5) end, "url must be a string", true)
end

CASES["Query:paginate"] = function()
  local Q = persistence.Query { table = "t", sortable = { "x" } }
  with_app(function(_, ses)
    assert(ses:exec_script("CREATE TABLE t (id INTEGER PRIMARY KEY, x INTEGER);"))
    failed("Query:paginate", "invalid", pack(Q:paginate { page = -1 }))
    failed("Query:paginate", "invalid", pack(Q:paginate { sort = { { field = "secret" } } }))
    raises(function() Q:paginate(5) end, "filter must be a table", true)
  end)
end

CASES["migrate.discover"] = function()
  failed("migrate.discover", "not_found", pack(migrate.discover(tmp .. "/no-migrations")))
  local dir = tmp .. "/badnames"
  os.execute("mkdir -p '" .. dir .. "'")
  write(dir .. "/create.sql", "")
  failed("migrate.discover", "invalid", pack(migrate.discover(dir)))
end

CASES["migrate.status"] = function()
  with_app(function(rt)
    failed("migrate.status", "not_found", pack(migrate.status(session_mod.database(rt.container))))
  end)
end

CASES["migrate.apply"] = function()
  local dir = tmp .. "/failing"
  os.execute("mkdir -p '" .. dir .. "'")
  write(dir .. "/0001_ok.sql", "CREATE TABLE a (x);")
  write(dir .. "/0002_bad.sql", "CREATE TABLEX b;")
  with_app(function(rt)
    local database = session_mod.database(rt.container)
    failed("migrate.apply", "not_found", pack(migrate.apply(database)))
    local _, report = failed("migrate.apply", "error", pack(migrate.apply(database, { dir = dir })))
    assert.are.equal(1, #report.applied)
    assert.are.equal("0002_bad.sql", report.failed.file)
    raises(function() migrate.apply(database, 5) end, "opts must be a table", true)
  end)
end

CASES["runtime.load_app"] = function()
  failed("runtime.load_app", "not_found", pack(runtime.load_app(tmp .. "/absent.lua")))
  failed("runtime.load_app", "invalid", pack(runtime.load_app(write(tmp .. "/syntax.lua", "return {"))))
  failed("runtime.load_app", "invalid", pack(runtime.load_app(write(tmp .. "/fortytwo.lua", "return 42"))))
  failed("runtime.load_app", "error", pack(runtime.load_app(write(tmp .. "/raises.lua", "error('no')"))))
  raises(function() runtime.load_app(5) end, "path must be a string", true)
end

CASES["runtime:stop"] = function()
  local Failing = { shutdown = function() error("cannot flush", 0) end }
  local app = j.Microservice { interceptors = { Failing } }
  local r = pack(in_task(function()
    local rt = runtime.start(app, "test")
    return pack(rt:stop()) -- (logs the failure as an error, too)
  end))
  local msg, errs = failed("runtime:stop", "error", r[2])
  assert.truthy(msg:find("cannot flush", 1, true), msg)
  assert.are.same({ "interceptor #1 shutdown failed: cannot flush" }, errs)
end

CASES["client:close"] = function()
  local Failing = { shutdown = function() error("cannot flush", 0) end }
  local client = testing.client(j.Microservice { interceptors = { Failing } })
  local msg, errs = failed("client:close", "error", pack(client:close()))
  assert.truthy(msg:find("cannot flush", 1, true), msg)
  assert.are.same({ "interceptor #1 shutdown failed: cannot flush" }, errs)
  assert.is_true(client:close()) -- closed once
end

CASES["router:match"] = function()
  local r = router_core.new()
  assert(r:add("POST", "/items", 1))
  failed("router:match", "not_found", pack(r:match("GET", "/nothing")))
  local _, allow = failed("router:match", "not_allowed", pack(r:match("GET", "/items")))
  assert.are.equal("POST", allow)
  raises(function() r:match("GET") end, "bad argument #2")
end

CASES["http.listen"] = function()
  local http = require "jararaca.core.http"
  local a = assert(http.listen { host = "127.0.0.1", port = 0 })
  local msg = failed("http.listen", "eaddrinuse", pack(http.listen { host = "127.0.0.1", port = a:port() }))
  assert.truthy(msg:find("address already in use", 1, true), msg)
  msg = failed("http.listen", "invalid", pack(http.listen { host = "not-an-address", port = 0 }))
  assert.truthy(msg:find("invalid listen address", 1, true), msg)
  raises(function() a:shutdown(-1) end, "grace must be a number of seconds in 0..86400")
  raises(function() a:shutdown(0 / 0) end, "grace must be a number of seconds in 0..86400")
  assert.is_true(a:close())
  raises(function() http.listen("127.0.0.1") end, "bad argument #1")
  raises(function() http.listen { host = "127.0.0.1", port = 2 ^ 32 + 8080 } end, "option port must be a number in 0..2^31-1")
end

CASES["http.url_decode"] = function()
  local http = require "jararaca.core.http"
  local msg = failed("http.url_decode", "invalid", pack(http.url_decode("%zz")))
  assert.truthy(msg:find("malformed", 1, true), msg)
  raises(function() http.url_decode({}) end, "bad argument #1")
end

CASES["tsgen.generate"] = function()
  local A = j.RestController("/a", { name = "Same" })
  local B = j.RestController("/b", { name = "Same" })
  local msg = failed("tsgen.generate", "invalid", pack(tsgen.generate(j.Microservice { controllers = { A, B } })))
  assert.truthy(msg:find("two controllers are named Same", 1, true), msg)
  raises(function() tsgen.generate(42) end, "expected an app", true)
  raises(function() tsgen.generate(j.Microservice {}, "x") end, "opts must be a table", true)
end

CASES["process.spawn"] = function()
  local msg = failed("process.spawn", "enoent", pack(process.spawn { tmp .. "/no-such-program" }))
  assert.are.equal("cannot spawn " .. tmp .. "/no-such-program: no such file or directory", msg)
  msg = failed("process.spawn", "enoent", pack(process.spawn { "/bin/sh", "-c", "true", stdout = tmp .. "/no/dir/out" }))
  assert.truthy(msg:find("cannot open its stdout file", 1, true), msg)
  raises(function() process.spawn {} end, "give at least the program path")
  raises(function() process.spawn { "/bin/sh", 5 } end, "argument 2 must be a string")
end

CASES["process:wait"] = function()
  local p = assert(process.spawn { "/bin/sh", "-c", "exec sleep 30" })
  local msg = failed("process:wait", "timeout", pack(p:wait(0.01)))
  assert.are.equal("the process is still running", msg)
  assert(p:kill("SIGKILL"))
  assert.are.same({ 0, 9 }, { p:wait(30) })
end

CASES["process:kill"] = function()
  local p = assert(process.spawn { "/bin/sh", "-c", "exit 3" })
  assert.are.same({ 3, 0 }, { p:wait(30) })
  failed("process:kill", "esrch", pack(p:kill("SIGTERM")))
  raises(function() p:kill("SIGNOPE") end, "unknown signal")
end

CASES["sys.setenv"] = function()
  failed("sys.setenv", "einval", pack(sys.setenv("A=B", "x")))
  raises(function() sys.setenv(nil) end, "string expected")
end

CASES["sys.kill"] = function()
  local msg = failed("sys.kill", "esrch", pack(sys.kill(2147483647, "SIGTERM")))
  assert.truthy(msg:find("no such process", 1, true), msg)
  raises(function() sys.kill(1, "SIGNOPE") end, "unknown signal")
end

CASES["sys.set_log"] = function()
  failed("sys.set_log", "invalid", pack(sys.set_log("chatty")))
end

-- What fn returns in a task cancelled while it parks there.
local function when_cancelled(fn)
  local t = sched.spawn(fn)
  sched.sleep(0)
  assert.is_true(t:cancel())
  local r = pack(t:wait())
  assert.is_true(r[1])
  return { n = r.n - 1, unpack(r, 2, r.n) }
end

CASES["core.sched.sleep"] = function()
  failed("core.sched.sleep", "cancelled", when_cancelled(function() return csched.sleep(5) end))
end

CASES["core.sched.wait"] = function()
  failed("core.sched.wait", "timeout", pack(csched.wait(0.001)))
  failed("core.sched.wait", "cancelled", when_cancelled(function() return csched.wait() end))
end

CASES["router:add"] = function()
  local r = router_core.new()
  failed("router:add", "invalid", pack(r:add("GET", "/items/{id:nope}", 1)))
  assert(r:add("GET", "/items/{id}", 1))
  failed("router:add", "invalid", pack(r:add("GET", "/items/{other}", 2)))
end

-- The payload checks come before any socket or backplane is needed.
CASES["mgr:broadcast"] = function()
  local mgr = j.use_ws_manager()
  failed("mgr:broadcast", "invalid", pack(mgr:broadcast("\255")))
  failed("mgr:broadcast", "invalid", pack(mgr:broadcast({ f = print })))
  raises(function() mgr:broadcast(42) end, "the message must be a string or a table", true)
end

CASES["mgr:send"] = function()
  local mgr = j.use_ws_manager()
  failed("mgr:send", "invalid", pack(mgr:send("room", "\255")))
  raises(function() mgr:send(42, "x") end, "rooms must be a string or a list of strings", true)
end

CASES["j.WebSocketMessage"] = function()
  failed("j.WebSocketMessage", "invalid", pack(j.WebSocketMessage("\192\128")))
  failed("j.WebSocketMessage", "invalid_utf8", pack(j.WebSocketMessage({ ["\255"] = 1 })))
  raises(function() j.WebSocketMessage(true) end, "the message must be a string or a table", true)
end

-- The embedded message broker on a fresh file; fn(broker).
local bus_files = 0
local function with_broker(fn)
  local embedded = require "jararaca.bus.embedded"
  bus_files = bus_files + 1
  local b = assert(embedded.open(tmp .. "/bus" .. bus_files .. ".db"))
  assert(b:bind("q", "t"))
  local ok, err = pcall(fn, b, embedded)
  b:close()
  if not ok then error(err, 0) end
end

CASES["embedded.open"] = function()
  with_broker(function(b, embedded)
    local tx = b.db:begin("write")
    assert(tx:execute("UPDATE jr_bus_meta SET value = value + 1 WHERE key = 'schema_version'"))
    assert(tx:commit())
    failed("embedded.open", "invalid", pack(embedded.open(b.path)))
    raises(function() embedded.open(42) end, "target must be a path", true)
  end)
end

CASES["broker:publish"] = function()
  with_broker(function(b)
    raises(function() b:publish { { topic = "t.*", body = "x" } } end, "wildcard", true)
    b:close()
    failed("broker:publish", "closed", pack(b:publish { topic = "t", body = "x" }))
  end)
end

CASES["broker:fetch"] = function()
  with_broker(function(b)
    raises(function() b:fetch("q", 0) end, "n must be an integer", true)
    b:close()
    failed("broker:fetch", "closed", pack(b:fetch("q")))
  end)
end

CASES["broker:ack"] = function()
  with_broker(function(b)
    assert(b:publish { topic = "t", body = "x" })
    local d = assert(b:fetch("q", 1, 0))[1] -- a lease that ends at once
    assert(b:fetch("q", 1, 30, "another consumer"))
    failed("broker:ack", "lost", pack(b:ack(d)))
    raises(function() b:ack({ id = "forged" }) end, "delivery must be one that broker:fetch() returned", true)
  end)
end

CASES["broker:wait"] = function()
  with_broker(function(b)
    failed("broker:wait", "timeout", pack(b:wait("q", 0.01)))
    raises(function() b:wait(5) end, "queue must be a non-empty string", true)
  end)
end

CASES["amqp.connect"] = function()
  local amqp = require "jararaca.core.amqp"
  local r = pack(in_task(function() return amqp.connect("http://localhost") end))
  failed("amqp.connect", "invalid", { n = r.n - 1, unpack(r, 2, r.n) })
  -- nothing listens on a port just freed
  local port = require("spec.support.client").free_port()
  r = pack(in_task(function() return amqp.connect("amqp://u:pw@127.0.0.1:" .. port) end))
  local msg = failed("amqp.connect", "unreachable", { n = r.n - 1, unpack(r, 2, r.n) })
  assert.is_nil(msg:find("pw", 1, true))
  raises(function() amqp.connect(nil) end, "string expected")
  raises(function() amqp.connect("amqp://h", { heartbeat_s = -1 }) end, "heartbeat_s must be a whole number", true)
end

CASES["http_client:request"] = function()
  local http = require "jararaca.core.http_client"
  local c = http.new()
  -- nothing listens on a port just freed
  local port = require("spec.support.client").free_port()
  local r = pack(in_task(function() return c:request { url = "http://127.0.0.1:" .. port .. "/" } end))
  failed("http_client:request", "refused", { n = r.n - 1, unpack(r, 2, r.n) })
  c:close()
  failed("http_client:request", "closed", pack(c:request { url = "http://127.0.0.1:" .. port .. "/" }))
  raises(function() c:request("http://x/") end, "req must be a table")
end

CASES["rpc_client:route"] = function()
  local C = j.RestClient("/c", {
    get = j.rpc.Get("/x/{id:int}"),
    typed = j.rpc.Get("/y", { response = s.object { { "n", s.integer() } } }),
  })
  -- nothing listens on a port just freed: the real HTTP client
  local port = require("spec.support.client").free_port()
  local c = j.rpc.build(C, { base_url = "http://127.0.0.1:" .. port })
  local r = pack(in_task(function() return c:get({ id = 1 }) end))
  failed("rpc_client:route", "refused", { n = r.n - 1, unpack(r, 2, r.n) })
  failed("rpc_client:route", "invalid", pack(c:get({ id = "x" }))) -- nothing is sent
  local answer = { status = 404, headers = {}, body = "" }
  local f = j.rpc.build(C, { base_url = "http://h", transport = function() return answer end })
  local _, res = failed("rpc_client:route", "status", pack(f:get({ id = 1 })))
  assert.are.equal(404, res.status)
  answer = { status = 200, headers = { ["content-type"] = "application/json" }, body = '{"n":"x"}' }
  failed("rpc_client:route", "invalid", pack(f:typed()))
  raises(function() f:get({ idd = 1 }) end, "unknown argument", true)
end

---------------------------------------------------------------------------

describe("the error convention (docs/errors.md)", function()
  teardown(function() os.execute("rm -rf '" .. tmp .. "'") end)

  it("lists its codes in lower case, and only those on the functions' rows", function()
    assert.truthy(next(CODES), "no code table")
    for code in pairs(CODES) do assert.are.equal(code:lower(), code) end
    for _, name in ipairs(ORDER) do
      for code in pairs(ROWS[name].codes) do
        assert.truthy(documented(code), name .. ": code " .. code .. " is not in the code table")
      end
    end
  end)

  it("has a case here for every function of its tables (or a pending change elsewhere)", function()
    for _, name in ipairs(ORDER) do
      assert.truthy(CASES[name] or PENDING[name], "no failure case for " .. name)
      assert.is_false(CASES[name] ~= nil and PENDING[name] ~= nil, name .. " is both tested and pending")
    end
    for name in pairs(CASES) do assert.truthy(ROWS[name], name .. " is tested but not documented") end
    for name in pairs(PENDING) do assert.truthy(ROWS[name], name .. " is pending but not documented") end
  end)

  for _, name in ipairs(ORDER) do
    if CASES[name] then
      it(name .. " fails with nil, message, code and raises on misuse", CASES[name])
    end
  end

  it("answers a lone nil, not a failure, where a function has no value", function()
    with_tx(function(tx) assert.are.same({ n = 1 }, pack(tx:first("SELECT 1 WHERE 0"))) end)
  end)

  it("raises on misuse across the API", function()
    raises(function() j.sleep("1") end, "seconds must be a number", true)
    raises(function() j.spawn(42) end, "fn must be a function", true)
    raises(function() j.gather(1) end, "argument 1 is not a function", true)
    raises(function() j.HTTPError(1000) end, "status must be an integer in 200..599", true)
    raises(function() persistence.use_session(5) end, "name must be a string", true)
    raises(function() j.Microservice { nope = 1 } end, "unknown field", true)
  end)
end)
