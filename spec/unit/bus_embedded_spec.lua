-- jararaca.bus.embedded: the SQLite-backed broker in one process, on real
-- files (lua/jararaca/bus/). Several processes on one file:
-- spec/integration/bus_embedded_spec.lua. Only works under `jararaca test`.
local embedded = require "jararaca.bus.embedded"
local topic = require "jararaca.bus.topic"
local db = require "jararaca.db"
local sched = require "jararaca.sched"

local files = require "spec.support.files"

local dir, fresh_path

setup(function() dir, fresh_path = files.temp_dir("bus", ".db") end)
teardown(function() files.remove_dir(dir) end)

local function open(target, opts)
  local b, err, code = embedded.open(target or fresh_path(), opts)
  assert(b, tostring(err) .. " " .. tostring(code))
  return b
end

local function ids_of(ds)
  local out = {}
  for i, d in ipairs(ds) do out[i] = d.id end
  return out
end

describe("topic patterns (AMQP topic exchange)", function()
  local cases = {
    -- pattern, topic, matches
    { "a.b.c", "a.b.c", true }, { "a.b.c", "a.b", false }, { "a.b", "a.b.c", false },
    { "*", "a", true }, { "*", "a.b", false }, { "*", "", true },
    { "a.*", "a.b", true }, { "a.*", "a", false }, { "a.*", "a.b.c", false },
    { "*.b.*", "a.b.c", true }, { "*.b.*", "a.x.c", false },
    { "#", "a", true }, { "#", "a.b.c", true },
    { "a.#", "a", true }, { "a.#", "a.b", true }, { "a.#", "a.b.c", true }, { "a.#", "b.a", false },
    { "#.c", "c", true }, { "#.c", "a.b.c", true }, { "#.c", "a.b.c.d", false },
    { "a.#.c", "a.c", true }, { "a.#.c", "a.b.c", true }, { "a.#.c", "a.b.x.c", true }, { "a.#.c", "a.b", false },
    { "#.#", "a.b", true }, { "a.*.#", "a", false }, { "a.*.#", "a.b", true }, { "a.*.#", "a.b.c.d", true },
    { "#.b.#", "b", true }, { "#.b.#", "x.b.y", true }, { "#.b.#", "x.y", false },
    { "a*.b", "ab.b", false }, { "a*.b", "a*.b", true }, -- wildcards only as whole words
    { "user.*.created", "user.eu.created", true }, { "user.*.created", "user.created", false },
  }
  for _, c in ipairs(cases) do
    it(("%q %s %q"):format(c[1], c[3] and "matches" or "does not match", c[2]), function()
      assert.equal(c[3], topic.matches(c[1], c[2]))
    end)
  end

  it("refuses wildcard words in a topic and empty names", function()
    assert.truthy(topic.topic_error("a.*.b"))
    assert.truthy(topic.topic_error("#"))
    assert.truthy(topic.topic_error(""))
    assert.is_nil(topic.topic_error("a.b*"))
    assert.truthy(topic.pattern_error(""))
    assert.is_nil(topic.pattern_error("a.#"))
  end)
end)

describe("embedded broker", function()
  it("publish -> fetch -> ack", function()
    local b = open()
    assert(b:bind("q", "task.created"))
    local n = assert(b:publish { { topic = "task.created", body = "hello\0bytes", headers = { h = "1" }, id = "m1" } })
    assert.equal(1, n)
    local ds = assert(b:fetch("q", 10, 30))
    assert.equal(1, #ds)
    local d = ds[1]
    assert.equal("m1", d.id)
    assert.equal("q", d.queue)
    assert.equal("task.created", d.topic)
    assert.equal("hello\0bytes", d.body)
    assert.same({ h = "1" }, d.headers)
    assert.equal(0, d.attempt)
    assert.equal(1, d.deliveries)
    assert.same({}, assert(b:fetch("q", 10, 30))) -- leased: hidden
    assert.is_true(assert(b:ack(d)))
    local s = assert(b:stats())
    assert.equal(0, s.queues.q.total)
    -- a second ack: the message is gone
    local ok, _, code = b:ack(d)
    assert.is_nil(ok)
    assert.equal("lost", code)
    assert(b:close())
  end)

  it("fans a publish out to every bound queue, once per queue; unrouted messages are dropped", function()
    local b = open()
    assert(b:bind("all", "#"))
    assert(b:bind("eu", "user.eu.*"))
    assert(b:bind("eu", "user.*.created")) -- two patterns of one queue: still one row
    assert(b:bind("eu", "user.eu.*"))     -- idempotent
    assert.equal(2, assert(b:publish { topic = "user.eu.created", body = "x" }))
    assert.equal(1, assert(b:publish { topic = "user.us.deleted", body = "y" }))
    assert(b:unbind("all", "#"))
    assert.equal(0, assert(b:publish { topic = "nobody.listens", body = "z" }))
    local eu = assert(b:fetch("eu", 10))
    local all = assert(b:fetch("all", 10))
    assert.equal(1, #eu)
    assert.equal(2, #all)
    assert.equal(eu[1].id, all[1].id) -- the same message in two queues
    assert.same({ "x", "y" }, { all[1].body, all[2].body })
    assert(b:close())
  end)

  it("sees a binding another broker object made (read in the publishing transaction)", function()
    local path = fresh_path()
    local a, c = open(path), open(path)
    assert.equal(0, assert(a:publish { topic = "t", body = "1" }))
    assert(c:bind("q", "t"))
    assert.equal(1, assert(a:publish { topic = "t", body = "2" }))
    assert.equal("2", assert(c:fetch("q"))[1].body)
    a:close(); c:close()
  end)

  it("honours delays and absolute times (available_at)", function()
    local b = open()
    assert(b:bind("q", "t"))
    assert(b:publish {
      { topic = "t", body = "later", delay = 0.3 },
      { topic = "t", body = "now" },
      { topic = "t", body = "at", at = os.time() + 3600 },
    })
    local first = assert(b:fetch("q", 10))
    assert.same({ "now" }, { first[1].body, first[2] and first[2].body })
    local s = assert(b:stats()).queues.q
    assert.same({ total = 3, ready = 0, delayed = 2, leased = 1, dead = 0 }, s)
    -- wait() returns when the delayed one is due (it knows when from the file)
    assert.is_true(assert(b:wait("q", 5)))
    local later = assert(b:fetch("q", 10))
    assert.equal(1, #later)
    assert.equal("later", later[1].body)
    assert.equal(1, assert(b:stats()).queues.q.delayed) -- "at" is an hour away
    assert(b:close())
  end)

  it("gives a message whose lease expired to the next fetch; the old owner's ack is then lost", function()
    local b = open()
    assert(b:bind("q", "t"))
    assert(b:publish { topic = "t", body = "x", id = "m" })
    local d1 = assert(b:fetch("q", 1, 0.2, "consumer-1"))[1]
    assert.same({}, assert(b:fetch("q", 1, 0.2, "consumer-2")))
    assert.is_true(assert(b:wait("q", 5))) -- until the lease ends
    local d2 = assert(b:fetch("q", 1, 30, "consumer-2"))[1]
    assert.equal("m", d2.id)
    assert.equal(2, d2.deliveries)
    for _, op in ipairs { "ack", "nack", "extend" } do
      local ok, _, code = b[op](b, d1)
      assert.is_nil(ok)
      assert.equal("lost", code)
    end
    local ok, _, code = b:retry(d1, 0)
    assert.is_nil(ok); assert.equal("lost", code)
    ok, _, code = b:dead_letter(d1, "x")
    assert.is_nil(ok); assert.equal("lost", code)
    -- the new lease is untouched
    local s = assert(b:stats()).queues.q
    assert.equal(1, s.leased)
    assert.is_true(assert(b:ack(d2)))
    -- the same owner fetching again gets a new token: its old delivery is stale too
    assert(b:publish { topic = "t", body = "y" })
    local e1 = assert(b:fetch("q", 1, 0.05, "same"))[1]
    assert(b:wait("q", 5))
    local e2 = assert(b:fetch("q", 1, 30, "same"))[1]
    assert.equal(e1.seq, e2.seq)
    ok, _, code = b:ack(e1)
    assert.is_nil(ok); assert.equal("lost", code)
    assert.is_true(assert(b:ack(e2)))
    assert(b:close())
  end)

  it("an expired lease nobody took over can still be acked (the work is done)", function()
    local b = open()
    assert(b:bind("q", "t"))
    assert(b:publish { topic = "t", body = "x" })
    local d = assert(b:fetch("q", 1, 0.05))[1]
    assert(b:wait("q", 5))
    assert.is_true(assert(b:ack(d)))
    assert.equal(0, assert(b:stats()).queues.q.total)
    assert(b:close())
  end)

  it("extend keeps the lease", function()
    local b = open()
    assert(b:bind("q", "t"))
    assert(b:publish { topic = "t", body = "x" })
    local d = assert(b:fetch("q", 1, 0.2))[1]
    assert.is_true(assert(b:extend(d, 30)))
    local ok, _, code = b:wait("q", 0.5)
    assert.is_nil(ok); assert.equal("timeout", code)
    assert.same({}, assert(b:fetch("q")))
    assert.is_true(assert(b:ack(d)))
    assert(b:close())
  end)

  it("retry increments attempt and delays; nack gives it back now, unchanged", function()
    local b = open()
    assert(b:bind("q", "t"))
    assert(b:publish { topic = "t", body = "x" })
    local d = assert(b:fetch("q"))[1]
    assert.equal(0, d.attempt)
    assert.is_true(assert(b:retry(d, 0.2)))
    assert.same({}, assert(b:fetch("q"))) -- not before its delay
    assert.equal(1, assert(b:stats()).queues.q.delayed)
    assert(b:wait("q", 5))
    d = assert(b:fetch("q"))[1]
    assert.equal(1, d.attempt)
    assert.equal(2, d.deliveries)
    assert.is_true(assert(b:retry(d)))
    d = assert(b:fetch("q"))[1]
    assert.equal(2, d.attempt)
    assert.is_true(assert(b:nack(d)))
    d = assert(b:fetch("q"))[1]
    assert.equal(2, d.attempt)
    assert.equal(4, d.deliveries)
    assert(b:ack(d))
    assert(b:close())
  end)

  it("dead-letters with the reason and the original headers; requeue sends them back with their headers", function()
    local b = open()
    assert(b:bind("q", "t.#"))
    assert(b:publish {
      { topic = "t.a", body = "a", id = "A", headers = { traceparent = "00-abc-01", ["x-user"] = "ana" } },
      { topic = "t.b", body = "b", id = "B", headers = { k = "v" } },
      { topic = "t.c", body = "c", id = "C" },
    })
    local ds = assert(b:fetch("q", 10))
    assert(b:retry(ds[1])) -- A: attempt 1, then dead
    local a = assert(b:fetch("q"))[1]
    assert.equal("A", a.id)
    assert.is_true(assert(b:dead_letter(a, "handler failed 1 time")))
    assert.is_true(assert(b:dead_letter(ds[2], "invalid payload")))
    assert.is_true(assert(b:dead_letter(ds[3], "x")))
    local st = assert(b:dlq_stats("q"))
    assert.equal(3, st.count)
    assert.truthy(st.oldest_at <= st.newest_at)
    local list = assert(b:dlq_list("q", 10))
    assert.same({ "A", "B", "C" }, ids_of(list))
    assert.equal("handler failed 1 time", list[1].reason)
    assert.same({ traceparent = "00-abc-01", ["x-user"] = "ana" }, list[1].headers)
    assert.equal(1, list[1].attempt)
    assert.equal("t.a", list[1].topic)
    assert.same({ "A" }, ids_of(assert(b:dlq_list("q", 1))))
    assert.equal(0, assert(b:stats()).queues.q.total)
    assert.equal(3, assert(b:stats()).queues.q.dead)
    -- requeue two by id, then the rest
    assert.equal(2, assert(b:dlq_requeue("q", { "A", "B", "nope" })))
    local back = assert(b:fetch("q", 10))
    assert.same({ "A", "B" }, ids_of(back))
    assert.same({ traceparent = "00-abc-01", ["x-user"] = "ana" }, back[1].headers)
    assert.equal("a", back[1].body)
    assert.equal(0, back[1].attempt) -- a fresh set of retries
    assert.equal(1, assert(b:dlq_stats("q")).count)
    assert.equal(1, assert(b:dlq_requeue("q", "all")))
    assert.equal(0, assert(b:dlq_stats("q")).count)
    assert.is_nil(assert(b:dlq_stats("q")).oldest_at)
    local c = assert(b:fetch("q"))[1]
    assert(b:dead_letter(c, "again"))
    assert.equal(1, assert(b:dlq_purge("q")))
    assert.same({}, assert(b:dlq_list("q")))
    assert(b:close())
  end)

  it("wait: a publish of this process wakes it at once; a timeout says so", function()
    local b = open(nil, { poll_interval = 30 }) -- polling alone would take 30 s
    assert(b:bind("q", "t"))
    local ok, _, code = b:wait("q", 0.05)
    assert.is_nil(ok); assert.equal("timeout", code)
    local t0 = sched.clock()
    local waiter = sched.spawn(function() return b:wait("q", 20) end)
    sched.sleep(0) -- the waiter parks
    local other = open(b.path) -- another broker object on the file: same process, woken too
    assert(other:publish { topic = "t", body = "x" })
    local done, r = waiter:wait(10)
    assert.is_true(done)
    assert.is_true(r)
    assert.truthy(sched.clock() - t0 < 5)
    other:close(); b:close()
  end)

  it("fetch takes the earliest available first and leases atomically among concurrent fetches", function()
    local b = open()
    assert(b:bind("q", "t"))
    local msgs = {}
    for i = 1, 200 do msgs[i] = { topic = "t", body = tostring(i) } end
    assert.equal(200, assert(b:publish(msgs)))
    local got, tasks = {}, {}
    for k = 1, 8 do
      tasks[k] = sched.spawn(function()
        while true do
          local ds = assert(b:fetch("q", 7, 30, "task" .. k))
          if #ds == 0 then return end
          for _, d in ipairs(ds) do got[#got + 1] = tonumber(d.body) end
        end
      end)
    end
    for k = 1, 8 do assert(tasks[k]:wait(10)) end
    table.sort(got)
    assert.equal(200, #got)
    for i = 1, 200 do assert.equal(i, got[i]) end
    b:close()
  end)

  it("publish_in writes in the caller's transaction: gone when it rolls back, there when it commits", function()
    local path = fresh_path()
    local d = assert(db.open { path = path })
    local b = open(d)
    assert(b:bind("q", "t"))
    local tx = d:begin("write")
    assert(tx:exec_script("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)"))
    assert(tx:commit())
    tx = d:begin("write")
    assert(tx:execute("INSERT INTO orders (id) VALUES (1)"))
    assert.equal(1, assert(b:publish_in(tx, { { topic = "t", body = "order 1" } })))
    assert(tx:rollback())
    assert.same({}, assert(b:fetch("q")))
    tx = d:begin("write")
    assert(tx:execute("INSERT INTO orders (id) VALUES (2)"))
    assert.equal(1, assert(b:publish_in(tx, { topic = "t", body = "order 2" })))
    assert(tx:commit())
    b:notify("q")
    local ds = assert(b:fetch("q"))
    assert.equal("order 2", ds[1].body)
    -- ack_in: the handler's write and the ack commit together, or neither
    tx = d:begin("write")
    assert(tx:execute("INSERT INTO orders (id) VALUES (3)"))
    assert.is_true(assert(b:ack_in(tx, ds[1])))
    assert(tx:rollback())
    assert.equal(1, assert(b:stats()).queues.q.leased)
    tx = d:begin("write")
    assert.is_true(assert(b:ack_in(tx, ds[1])))
    assert(tx:commit())
    assert.equal(0, assert(b:stats()).queues.q.total)
    b:close() -- the database was given: it stays open
    local r = d:begin("read")
    assert.equal(1, assert(r:first("SELECT count(*) AS n FROM orders")).n)
    r:commit()
    assert(d:close())
  end)

  it("publish_in through a persistence session, on the app's database (a started SessionInterceptor)", function()
    local persistence = require "jararaca.persistence"
    local interceptors = require "jararaca.interceptors"
    local context = require "jararaca.context"
    local di = require "jararaca.di"
    local container = di.Container.new({})
    local saved = context.current()
    context.bind(context.new("startup", container, { app_kind = "test" }))
    local lc = interceptors.start({}, container, { persistence.SessionInterceptor { path = fresh_path() } })
    local b = open(lc.list[1]) -- shares the app's writer: no second writer on the file
    assert(b:bind("q", "t"))
    local ok = pcall(persistence.providing_new_session, function(s)
      assert.equal(1, assert(b:publish_in(s, { topic = "t", body = "dropped" })))
      error("the handler failed")
    end)
    assert.is_false(ok)
    persistence.providing_new_session(function(s)
      assert.equal(1, assert(b:publish_in(s, { topic = "t", body = "sent" })))
    end)
    local ds = assert(b:fetch("q", 10))
    assert.same({ "sent" }, { ds[1].body, ds[2] and ds[2].body })
    b:close()
    lc:stop()
    context.bind(saved)
  end)

  it("creates its tables once (versioned) and refuses a newer layout", function()
    local path = fresh_path()
    local b1 = open(path)
    assert(b1:bind("q", "t"))
    assert(b1:publish { topic = "t", body = "kept" })
    b1:close()
    local b2 = open(path) -- again: nothing lost
    assert.equal("kept", assert(b2:fetch("q"))[1].body)
    local tx = b2.db:begin("write")
    assert.equal(1, assert(tx:first("SELECT value FROM jr_bus_meta WHERE key = 'schema_version'")).value)
    assert(tx:execute("UPDATE jr_bus_meta SET value = 99 WHERE key = 'schema_version'"))
    assert(tx:commit())
    b2:close()
    local b3, err, code = embedded.open(path)
    assert.is_nil(b3)
    assert.equal("invalid", code)
    assert.truthy(err:find("99", 1, true), err)
  end)

  it("raises on misuse", function()
    local b = open()
    assert.has_error(function() b:bind("", "t") end)
    assert.has_error(function() b:bind("q", 5) end)
    assert.has_error(function() b:publish { { topic = "a.*", body = "x" } } end)
    assert.has_error(function() b:publish { { topic = "a", body = 5 } } end)
    assert.has_error(function() b:publish { { topic = "a", body = "x", delay = -1 } } end)
    assert.has_error(function() b:fetch("q", 0) end)
    assert.has_error(function() b:ack({ id = "forged" }) end)
    assert.has_error(function() b:dead_letter(nil, "x") end)
    assert.has_error(function() embedded.open(fresh_path(), { nope = 1 }) end)
    assert.has_error(function() embedded.open(42) end)
    local other = assert(db.open { path = fresh_path() })
    local tx = other:begin("write")
    assert.has_error(function() b:publish_in(tx, { topic = "t", body = "x" }) end) -- another file
    tx:rollback()
    other:close()
    b:close()
    local ok, _, code = b:publish { topic = "t", body = "x" }
    assert.is_nil(ok); assert.equal("closed", code)
  end)
end)
