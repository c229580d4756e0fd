-- The outbox in one process (real SQLite files): the publisher's messages go
-- into the transaction's write session before its commit
-- (persistence.session.before_commit), relayed after it; the relay task
-- takes rows left behind. The processes: spec/integration/bus_outbox_spec.lua.
local j = require "jararaca"
local persistence = require "jararaca.persistence"
local psession = require "jararaca.persistence.session"
local outbox = require "jararaca.bus.outbox"
local runtime = require "jararaca.runtime"
local interceptors = require "jararaca.interceptors"
local context = require "jararaca.context"
local sched = require "jararaca.sched"
local sys = require "jararaca.core.sys"
local wait = require "spec.support.wait"

describe("the outbox", function()
  local dir, rt, outer

  local function start(bus_file)
    local W = j.MessageBusController { name = "W" }
    W.h = j.IncomingHandler("task.#", function() end)
    local app = j.Microservice { name = "ob", controllers = { W },
      interceptors = { persistence.SessionInterceptor { url = "sqlite:///" .. dir .. "/app.db" } },
      bus = { url = "sqlite:///" .. dir .. "/" .. bus_file } }
    local _
    _, rt = assert(sched.spawn(runtime.start, app, "worker"):wait())
    outer = context.current()
    context.bind(context.new("startup", rt.container))
  end

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
  end)

  after_each(function()
    context.bind(outer)
    if rt then assert(sched.spawn(rt.stop, rt):wait()) end
    rt = nil
    os.execute("rm -rf " .. dir)
  end)

  local function broker() return rt.bus.broker end

  local function queued()
    local q = assert(broker():stats()).queues["ob.h"]
    return q and q.total or 0
  end

  local function app_rows(sql)
    return persistence.providing_new_session(function(s) return assert(s:query(sql)) end)
  end

  local function has_outbox()
    return #app_rows("SELECT name FROM sqlite_master WHERE name = 'jr_outbox'") == 1
  end

  -- fn in a transaction of kind "message" through the app's chain
  local function transaction(fn)
    local ctx, prev = context.new("message", rt.container), context.current()
    context.bind(ctx)
    local ok, err = interceptors.run(rt.interceptors, ctx, fn, ctx)
    context.bind(prev)
    return ok, err
  end

  local function write_and_publish(ctx, id)
    local s = j.use_session()
    assert(s:exec_script("CREATE TABLE IF NOT EXISTS t (id TEXT)"))
    assert(s:execute("INSERT INTO t (id) VALUES (?)", { id }))
    assert.is_true(j.use_publisher():publish({ id = id }, "task.a"))
    return s, ctx
  end

  -- A transaction that writes and publishes; sql read by a hook that runs
  -- after the publisher's, before the commit: its first row.
  local function write_publish_and_read(id, sql)
    local inside
    assert.is_true(transaction(function(ctx)
      write_and_publish(ctx, id)
      psession.before_commit(ctx, function(s) inside = s:first(sql) end)
    end))
    return inside
  end

  it("a transaction that wrote: its messages are in its outbox before the commit, in the broker after it", function()
    start("bus.db")
    local inside = write_publish_and_read("a", "SELECT topic, body FROM jr_outbox")
    assert.same({ topic = "task.a", body = '{"id":"a"}' }, { topic = inside.topic, body = inside.body })
    assert.equal(1, queued())
    assert.equal(0, #app_rows("SELECT seq FROM jr_outbox"))
    assert.equal(1, #app_rows("SELECT id FROM t"))
  end)

  it("a transaction that fails: no row, no outbox row, no message; a hook that raises fails the transaction", function()
    start("bus.db")
    local ok, err = transaction(function(ctx)
      write_and_publish(ctx, "b")
      error("fails after publishing")
    end)
    assert.is_false(ok)
    assert.matches("fails after publishing", tostring(err))
    ok, err = transaction(function(ctx)
      write_and_publish(ctx, "c")
      psession.before_commit(ctx, function() error("the hook refuses", 0) end)
    end)
    assert.is_false(ok)
    assert.equal("the hook refuses", err)
    assert.equal(0, queued())
    assert.equal(0, #app_rows("SELECT name FROM sqlite_master WHERE name = 't'"))
    assert.is_false(has_outbox())
  end)

  it("a transaction that did not write publishes after it succeeded, without an outbox", function()
    start("bus.db")
    assert.is_true(transaction(function()
      assert.is_true(j.use_publisher():publish({ id = "d" }, "task.a"))
    end))
    assert.equal(1, queued())
    assert.is_false(has_outbox())
  end)

  it("the broker on the app's own file: the messages go into its tables in the transaction", function()
    start("app.db")
    local inside = write_publish_and_read("e", "SELECT count(*) AS n FROM jr_bus_messages")
    assert.equal(1, inside.n)
    assert.equal(1, queued())
    assert.is_false(has_outbox())
  end)

  it("the relay task takes the rows left behind by a process that is gone, and those whose lease ended", function()
    start("bus.db")
    assert.is_true(transaction(function(ctx) write_and_publish(ctx, "f") end)) -- creates the outbox
    assert.equal(1, queued())
    local now = math.floor(sys.time() * 1000)
    persistence.providing_new_session(function(s)
      local ins = "INSERT INTO jr_outbox (id, topic, body, headers, at_ms, created_at, lease_until, lease_owner) "
        .. "VALUES (?, 'task.left', ?, '{\"x-k\":\"v\"}', NULL, ?, ?, ?)"
      -- a process of this host that is gone (pid 2^22+1 is past pid_max's default), its lease still running
      assert(s:execute(ins, { "gone-1", "g", now, now + 3600 * 1000, sys.hostname() .. ":4194305:ab" }))
      -- a live owner (this process, another tag) whose lease ended
      assert(s:execute(ins, { "ended-1", "e", now, now - 1, sys.hostname() .. ":" .. sys.pid() .. ":zz" }))
      -- a live owner whose lease runs: left alone
      assert(s:execute(ins, { "kept-1", "k", now, now + 3600 * 1000, sys.hostname() .. ":" .. sys.pid() .. ":zz" }))
    end)
    wait.until_true(function() return queued() == 3 end, "the relay task relayed two rows", 5)
    local ds = assert(broker():fetch("ob.h", 10))
    local ids = {}
    for _, d in ipairs(ds) do ids[d.id] = d end
    assert.truthy(ids["gone-1"] and ids["ended-1"])
    assert.equal("v", ids["gone-1"].headers["x-k"])
    assert.same({ { id = "kept-1" } }, app_rows("SELECT id FROM jr_outbox"))
    assert.equal(outbox.VERSION, app_rows("SELECT value FROM jr_bus_meta WHERE key = 'outbox_schema_version'")[1].value)
  end)
end)
