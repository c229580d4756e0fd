-- The message bus's API in one process: declarations and their startup
-- checks, the broker settings, messages and dispositions, the retry delay,
-- handler selection, and staged publishing (on a real embedded broker in a
-- temporary file). The worker processes: spec/integration/bus_spec.lua.
local j = require "jararaca"
local bc = require "jararaca.bus.controller"
local settings = require "jararaca.bus.settings"
local message = require "jararaca.bus.message"
local worker = require "jararaca.bus.worker"
local runtime = require "jararaca.runtime"
local interceptors = require "jararaca.interceptors"
local context = require "jararaca.context"
local sched = require "jararaca.sched"
local wait = require "spec.support.wait"
local bus_support = require "spec.support.bus"
local s = j.schema

local THIS = debug.getinfo(1, "S").short_src

local function app_of(...)
  return j.Microservice { name = "app", controllers = { ... } }
end

-- The startup error of an app with one handler declared with opts (and
-- the line it was declared on).
local function startup_error(opts, topic)
  local W = j.MessageBusController { name = "W" }
  W.h = j.IncomingHandler(topic or "a.b", opts, function() end); local line = debug.getinfo(1, "l").currentline
  local ok, err = pcall(bc.handlers, app_of(W))
  assert.is_false(ok)
  return err, line
end

describe("MessageBusController and IncomingHandler", function()
  it("declaring checks the shapes (misuse raises at the caller's line)", function()
    assert.has_error(function() j.IncomingHandler("a.b", {}) end,
      "IncomingHandler(topic, [opts], fn): expected a handler function as the last argument, got nil")
    assert.has_error(function() j.IncomingHandler(7, function() end) end,
      "IncomingHandler(topic, [opts], fn): topic must be a string, got number")
    assert.has_error(function() j.IncomingHandler("a", "x", function() end) end,
      "IncomingHandler(topic, [opts], fn): opts must be a table, got string")
    assert.has_error(function() j.MessageBusController { prefix = "/x" } end,
      'MessageBusController: unknown option "prefix"')
    assert.has_error(function() j.MessageBusController { group = "" } end,
      "MessageBusController: opts.group must be a non-empty string, got string")
  end)

  it("handlers(app): defaults, one queue per handler named <app>.<handler>, in declaration order", function()
    local W = j.MessageBusController { name = "W", group = "mail" }
    W.second = j.IncomingHandler("user.created", function() end)
    W.first = j.IncomingHandler("user.#", { name = "audit", group = "audit", timeout = 5, max_retries = 0,
      prefetch = 1, backoff = { initial = 0.5 }, payload = s.object { id = s.integer() } }, function() end)
    local R = j.RestController("/r")
    local hs = bc.handlers(app_of(R, W))
    assert.equal(2, #hs)
    local a, b = hs[1], hs[2]
    assert.same({ "second", "app.second", "user.created", "mail", 60, 3, 10 },
      { a.name, a.queue, a.topic, a.group, a.timeout, a.max_retries, a.prefetch })
    assert.same({ initial = 1, factor = 2, max = 60, jitter = 0.1 }, a.backoff)
    assert.same({ "audit", "app.audit", "audit", 5, 0, 1 }, { b.name, b.queue, b.group, b.timeout, b.max_retries,
      b.prefetch })
    assert.same({ initial = 0.5, factor = 2, max = 60, jitter = 0.1 }, b.backoff)
    assert.equal(W, a.controller)
    assert.equal("second", a.member)
  end)

  it("a bad option is a startup error naming the file, the line and the handler", function()
    local cases = {
      { { timeout = 0 }, "timeout: expected a number of seconds > 0, got 0" },
      { { max_retries = 1.5 }, "max_retries: expected a whole number in 0..1000000, got 1.5" },
      { { prefetch = 0 }, "prefetch: expected a whole number in 1..1000, got 0" },
      { { prefetch = 1001 }, "prefetch: expected a whole number in 1..1000, got 1001" },
      { { backoff = { jitter = 2 } }, "backoff.jitter: expected a fraction in 0..1, got 2" },
      { { backoff = { factor = 0.5 } }, "backoff.factor: expected a number >= 1, got 0.5" },
      { { backoff = { initial = 10, max = 1 } }, "backoff.max (1) is below backoff.initial (10)" },
      { { backoff = { delay = 1 } }, 'backoff: unknown field "delay" (known: initial, factor, max, jitter)' },
      { { backoff = 3 }, "backoff: expected a table { initial, factor, max, jitter }, got number" },
      { { payload = "Task" }, "payload: expected a schema (j.schema...), got string" },
      { { name = "a b" }, "name: expected a non-empty name of letters, digits, '_' and '-', got \"a b\"" },
      { { group = 3 }, "group: expected a non-empty name of letters, digits, '_' and '-', got 3" },
      { { retries = 3 }, 'unknown option "retries" (known: timeout, max_retries, backoff, prefetch, name, group, payload)' },
    }
    for _, c in ipairs(cases) do
      local err, line = startup_error(c[1])
      assert.equal(("%s:%d: handler W.h (a.b): %s"):format(THIS, line, c[2]), err)
    end
    local err, line = startup_error({}, "")
    assert.equal(("%s:%d: handler W.h (): topic: the pattern must not be empty"):format(THIS, line), err)
  end)

  it("two handlers with one name are a startup error naming both", function()
    local A = j.MessageBusController { name = "A" }
    A.run = j.IncomingHandler("x", function() end)
    local B = j.MessageBusController { name = "B" }
    B.other = j.IncomingHandler("y", { name = "run" }, function() end)
    local ok, err = pcall(bc.handlers, app_of(A, B))
    assert.is_false(ok)
    assert.truthy(err:find('handler B.other (y): name: "run" is the name of ', 1, true), err)
    assert.truthy(err:find("handler A.run (x) too", 1, true), err)
  end)

  it("the app's name prefixes its queues: Microservice.name, else the app file's name", function()
    assert.equal("tasks", bc.app_name({ name = "tasks" }))
    assert.equal("orders", bc.app_name({ __file = "/srv/x/orders.lua" }))
  end)

  it("a handler descriptor is callable: Ctl:handler(msg) runs its function", function()
    local W = j.MessageBusController { name = "W" }
    W.h = j.IncomingHandler("x", function(self, msg) return self, msg end)
    local me, m = W:h("m")
    assert.equal(W, me)
    assert.equal("m", m)
  end)
end)

describe("bus settings", function()
  local function env(t) return function(k) return t[k] end end

  it("Microservice{ bus = ... } is checked at declaration", function()
    assert.has_error(function() j.Microservice { bus = "sqlite:///x.db" } end,
      "Microservice.bus must be a table { url = ... }, got string")
    assert.has_error(function() j.Microservice { bus = { uri = "x" } } end,
      'Microservice.bus: unknown field "uri" (known: url, declare, propagate_headers)')
    assert.has_error(function() j.Microservice { bus = { declare = "yes" } } end,
      "Microservice.bus.declare must be a boolean, got string")
    assert.has_error(function() j.Microservice { bus = { url = 3 } } end,
      "Microservice.bus.url must be a non-empty string, got number")
  end)

  it("sqlite:/// is the embedded broker; amqp:// is RabbitMQ, shown without its password; the environment wins",
    function()
    local app = { bus = { url = "sqlite:///var/a.db" } }
    assert.same({ kind = "embedded", path = "var/a.db", url = "sqlite:///var/a.db" }, settings.resolve(app, {}, env {}))
    assert.same({ kind = "embedded", path = "/b.db", url = "sqlite:////b.db" },
      settings.resolve(app, {}, env { JARARACA_BUS_URL = "sqlite:////b.db" }))
    assert.same({ kind = "amqp", url = "amqp://u@h:5673/v", where = "amqp://u@h:5673/v", dial = "amqp://u:secret@h:5673/v" },
      settings.resolve(app, {}, env { JARARACA_BUS_URL = "amqp://u:secret@h:5673/v" }))
    assert.same({ kind = "amqp", url = "amqp://h", where = "amqp://h", dial = "amqp://h" }, settings.parse("amqp://h", "X"))
    assert.same({ nil, "X: no host in the RabbitMQ URL (amqp://user:password@host:port/vhost)", "invalid" },
      { settings.parse("amqp://u:p@/v", "X") })
    assert.same({ nil, "X: amqps:// (TLS) is not supported yet; use amqp:// on a trusted network", "invalid" },
      { settings.parse("amqps://h", "X") })
    assert.same({ nil, "Microservice.bus.url: the embedded broker needs a file the processes share (sqlite:///path.db), "
      .. 'got "sqlite:///:memory:"', "invalid" }, { settings.parse("sqlite:///:memory:", "Microservice.bus.url") })
    assert.same({ nil, 'X: unsupported message bus URL (scheme "redis"): use sqlite:///path.db or amqp://host', "invalid" },
      { settings.parse("redis://h", "X") })
  end)

  it("RabbitMQ delay tiers: the nearest of a 1-1.2-1.5-2-2.5-3-4-5-6-8 ladder, 50 ms to ~11.6 days", function()
    local topology = require "jararaca.bus.amqp_topology"
    assert.is_nil(topology.tier(49))
    assert.same({ 100, 100, 1000, 1200, 5000, 60000, 1e9 },
      { topology.tier(50), topology.tier(109), topology.tier(1000), topology.tier(1100), topology.tier(5300),
        topology.tier(61000), topology.tier(1.04e9) })
    for _, ms in ipairs { 100, 333, 7777, 123456, 9e7 } do
      local t = topology.tier(ms)
      assert.truthy(t / ms < 1.13 and ms / t < 1.13, ms .. " -> " .. t)
    end
    local t, err = topology.tier(2e9)
    assert.is_nil(t)
    assert.truthy(err:find("longer than the RabbitMQ backend's longest", 1, true), err)
    assert.equal(71, #topology.TIERS)
  end)

  it("a RabbitMQ delay tier whose declaration failed after its first caller was cancelled is declared again",
    function()
    local topology = require "jararaca.bus.amqp_topology"
    local csched = require "jararaca.core.sched"
    local calls, parked = 0, nil
    local ac = {}
    function ac.declare_exchange() -- the first declaration waits, then fails; later ones succeed
      calls = calls + 1
      if calls > 1 then return true end
      parked = { csched.current() }
      csched.wait(30)
      return nil, "refused by the spec", "refused"
    end
    function ac.declare_queue() return true end
    function ac.bind() return true end
    local b = { names = topology.names("t"), tiers = {}, ac = ac }
    local first = sched.spawn(topology.delay_exchange, b, "wait", 1000)
    wait.until_true(function() return parked end, "the first declaration waits")
    first:cancel()
    assert.same({ nil, "the task was cancelled", "cancelled" }, { first:wait(5) })
    csched.wake(parked[1], parked[2]) -- the declaration fails now, its caller gone
    wait.until_true(function() return type(b.tiers["t.wait.1000"]) ~= "table" end,
      "the failed declaration is forgotten")
    assert.is_nil(b.tiers["t.wait.1000"])
    assert.same({ true, "t.wait.1000" }, { sched.spawn(topology.delay_exchange, b, "wait", 1000):wait(5) })
    assert.equal(2, calls)
  end)

  it("RabbitMQ: a delivery whose connection dropped is not copied by retry or dead_letter (it comes again)",
    function()
    local amqp = require "jararaca.bus.amqp"
    local topology = require "jararaca.bus.amqp_topology"
    local sent, settled = 0, 0
    local ac = { publish = function() sent = sent + 1; return true end }
    local b = setmetatable({ ac = ac, names = topology.names("t"), tiers = {} }, amqp.Broker)
    local function delivery(live)
      return { id = "m1", queue = "t.h", topic = "a.b", body = "{}", headers = {}, attempt = 0,
        _ad = { live = function() return live end, ack = function() settled = settled + 1; return true end,
          nack = function() settled = settled + 1; return true end } }
    end
    for _, move in ipairs { function(d) return b:retry(d, 0) end, function(d) return b:dead_letter(d, "why") end } do
      local ok, err, code = move(delivery(false))
      assert.is_nil(ok)
      assert.equal("disconnected", code)
      assert.truthy(err:find("delivers it again", 1, true), err)
    end
    assert.same({ 0, 0 }, { sent, settled })
    assert.is_true(b:retry(delivery(true), 0)) -- a live one: copied, then acked
    assert.same({ 1, 1 }, { sent, settled })
  end)

  it("a handler may not be named dlq, dlx or retry (the app's own queues on RabbitMQ)", function()
    local W = j.MessageBusController { name = "W" }
    W.retry = j.IncomingHandler("a.b", function() end)
    local ok, err = pcall(require("jararaca.bus.controller").handlers, { name = "x", controllers = { W } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('name: "retry" is reserved for the app\'s own queues', 1, true), err)
  end)

  it("the default: <app name>.bus.db next to the app's database, else next to the app file", function()
    local app = { name = "tasks", __file = "apps/tasks/app.lua" }
    assert.equal("data/tasks.bus.db", settings.resolve(app, { { path = "data/tasks.db" } }, env {}).path)
    assert.equal("apps/tasks/tasks.bus.db", settings.resolve(app, {}, env {}).path)
    assert.equal("apps/tasks/tasks.bus.db", settings.resolve(app, { { path = ":memory:" } }, env {}).path)
    assert.is_true(settings.resolve(app, {}, env {}).default)
    assert.is_false(settings.explicit(app, env {}))
    assert.is_true(settings.explicit(app, env { JARARACA_BUS_URL = "sqlite:///x" }))
  end)
end)

describe("messages", function()
  -- (a fetched delivery's headers are its own table: the message takes it)
  local function delivery(body, headers, attempt)
    return { id = "m1", topic = "t.x", body = body, headers = headers or { ["content-type"] = "application/json" },
      attempt = attempt or 0 }
  end

  it("payload() is the decoded JSON (validated by the handler's schema) or the string as sent", function()
    local m = assert(message.new(delivery('{"id":7}', nil, 2), { payload = s.object { id = s.integer() } }))
    assert.same({ id = 7 }, m:payload())
    assert.equal(3, m.attempt)
    assert.equal(2, m.headers["x-retry-count"])
    assert.equal("t.x", m.topic)
    local t = assert(message.new(delivery("plain", { ["content-type"] = "text/plain" }), {}))
    assert.equal("plain", t:payload())
  end)

  it("an undecodable or invalid payload gives the reason it is dead-lettered for", function()
    local m, why = message.new(delivery("{oops"), {})
    assert.is_nil(m)
    assert.truthy(why:find("^the payload is not valid JSON: "), why)
    m, why = message.new(delivery('{"id":"x"}'), { payload = s.object { id = s.integer() } })
    assert.is_nil(m)
    assert.truthy(why:find("^the payload is invalid: "), why)
  end)

  it("one disposition per message: a second raises; bad arguments raise", function()
    local m = assert(message.new(delivery("{}"), {}))
    assert.is_nil(message.disposition(m))
    assert.is_true(m:retry_later(2))
    assert.same({ kind = "retry_later", arg = 2 }, message.disposition(m))
    assert.has_error(function() m:ack() end, "msg:ack(): message m1 was already given the disposition retry_later()")
    local m2 = assert(message.new(delivery("{}"), {}))
    assert.has_error(function() m2:retry_later(-1) end, "msg:retry_later(seconds): seconds must be a number >= 0, got -1")
    assert.has_error(function() m2:reject(5) end, "msg:reject([reason]): reason must be a string, got number")
    m2:reject()
    assert.same({ kind = "reject", arg = "rejected by the handler" }, message.disposition(m2))
  end)
end)

describe("the worker's choices", function()
  it("the retry delay grows by factor from initial, up to max; jitter spreads it", function()
    local b = { initial = 1, factor = 2, max = 5, jitter = 0 }
    assert.same({ 1, 2, 4, 5, 5 }, { worker.backoff_delay(b, 0), worker.backoff_delay(b, 1), worker.backoff_delay(b, 2),
      worker.backoff_delay(b, 3), worker.backoff_delay(b, 10) })
    b.jitter = 0.5
    for _ = 1, 100 do
      local d = worker.backoff_delay(b, 1)
      assert.truthy(d >= 1 and d <= 3, d)
    end
  end)

  it("--handlers and --groups select handlers; an unknown name or group is refused", function()
    local hs = { { name = "a", group = "g1" }, { name = "b", group = "g2" }, { name = "c", group = "g2" } }
    local function names(list) local o = {}; for i, h in ipairs(list) do o[i] = h.name end; return o end
    assert.same({ "a", "b", "c" }, names(worker.select(hs)))
    assert.same({ "a", "c" }, names(worker.select(hs, worker.split("a, c"))))
    assert.same({ "b", "c" }, names(worker.select(hs, nil, worker.split("g2"))))
    assert.same({ "c" }, names(worker.select(hs, { "a", "c" }, { "g2" })))
    assert.same({ nil, '--handlers: no handler named "z" (the app\'s handlers: a, b, c)', "invalid" },
      { worker.select(hs, { "z" }) })
    assert.same({ nil, '--groups: no handler is in group "g9"', "invalid" }, { worker.select(hs, nil, { "g9" }) })
    assert.is_nil(worker.split(""))
  end)
end)

describe("the worker's counts", function()
  it("a settle the broker refuses (the lease was lost) counts as lost, not as its outcome", function()
    local app, handled
    app = bus_support.start_app(function(url)
      local W = j.MessageBusController { name = "W" }
      W.h = j.IncomingHandler("lost.#", function()
        -- as if its lease had ended and another consumer had acked it: the row is gone
        local tx = app.broker.db:begin("write")
        assert(tx:execute("DELETE FROM jr_bus_messages"))
        assert(tx:commit())
        handled = true
      end)
      return j.Microservice { name = "lost", controllers = { W }, bus = { url = url } }
    end)
    local ok, err = pcall(function()
      assert.is_true(j.use_publisher():publish({ n = 1 }, "lost.one"))
      local w = assert(worker.start(app.rt, {}))
      wait.until_true(function() return handled end, "the handler ran")
      assert.same({ acked = 0, retried = 0, dead = 0, released = 0, lost = 1 }, w:stop(5))
    end)
    app.stop()
    assert(ok, err)
  end)
end)

describe("the worker's slots", function()
  it("a delivery whose settling raises is counted as lost and gives its slot back", function()
    local app = bus_support.start_app(function(url)
      local W = j.MessageBusController { name = "W" }
      W.h = j.IncomingHandler("raise.#", { prefetch = 1 }, function() end)
      return j.Microservice { name = "raising", controllers = { W }, bus = { url = url } }
    end)
    local ok, err = pcall(function()
      -- an undecodable payload is dead-lettered at once: make that settle raise
      app.broker.dead_letter = function() error("the broker blew up") end
      assert(app.broker:publish {
        { topic = "raise.a", body = "{oops", headers = { ["content-type"] = "application/json" } },
        { topic = "raise.b", body = "{oops", headers = { ["content-type"] = "application/json" } },
      })
      local w = assert(worker.start(app.rt, {}))
      -- prefetch 1: the second is fetched only once the first's slot came back
      wait.until_true(function() return w.counts.lost == 2 end, "both deliveries counted as lost", 10)
      assert.same({ acked = 0, retried = 0, dead = 0, released = 0, lost = 2 }, w:stop(5))
    end)
    app.broker.dead_letter = nil
    app.stop()
    assert(ok, err)
  end)
end)

describe("use_publisher", function()
  local path, rt, broker, outer

  -- The app starts and stops in tasks of their own (they bind lifecycle
  -- contexts); the specs run in a "startup" context of it: no transaction.
  before_each(function()
    path = os.tmpname()
    local W = j.MessageBusController { name = "W" }
    W.h = j.IncomingHandler("task.#", function() end)
    local app = j.Microservice { name = "pub", controllers = { W }, bus = { url = "sqlite:///" .. path } }
    local _
    _, rt = assert(sched.spawn(runtime.start, app, "worker"):wait())
    broker = rt.bus.broker
    outer = context.current()
    context.bind(context.new("startup", rt.container))
  end)

  after_each(function()
    context.bind(outer)
    assert(sched.spawn(rt.stop, rt):wait())
    for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(path .. suffix) end
  end)

  local function queued()
    local q = assert(broker:stats()).queues["pub.h"]
    return q and q.total or 0
  end

  -- fn in a transaction of kind "message" through the app's chain
  local function transaction(fn)
    local ctx, prev = context.new("message", rt.container), context.current()
    context.bind(ctx)
    local ok, err = interceptors.run(rt.interceptors, ctx, fn)
    context.bind(prev)
    return ok, err
  end

  it("outside a transaction: published at once (JSON tables, strings as they are)", function()
    local pub = j.use_publisher()
    assert.is_true(pub:publish({ id = 1 }, "task.created", { headers = { ["x-tenant"] = "a" } }))
    assert.is_true(pub:publish("hello", "task.text"))
    local ds = assert(broker:fetch("pub.h", 10))
    assert.equal(2, #ds)
    assert.equal('{"id":1}', ds[1].body)
    assert.same({ ["x-tenant"] = "a", ["content-type"] = "application/json" }, ds[1].headers)
    assert.equal("hello", ds[2].body)
    assert.equal("text/plain", ds[2].headers["content-type"])
  end)

  it("inside a transaction: staged, published once it succeeded, dropped when it failed", function()
    local during
    assert.is_true(transaction(function()
      assert.is_true(j.use_publisher():publish({ n = 1 }, "task.a"))
      assert.is_true(j.use_publisher():delay({ n = 2 }, "task.b", 0))
      during = queued()
    end))
    assert.equal(0, during)
    assert.equal(2, queued())
    local ok = transaction(function()
      assert.is_true(j.use_publisher():publish({ n = 3 }, "task.c"))
      error("the transaction fails")
    end)
    assert.is_false(ok)
    assert.equal(2, queued())
  end)

  it("delay: not deliverable before its time", function()
    assert.is_true(j.use_publisher():delay({ n = 1 }, "task.later", 3600))
    assert.equal(1, queued())
    assert.same({}, assert(broker:fetch("pub.h", 10)))
  end)

  it("misuse raises; a payload JSON cannot hold is nil, message, \"invalid\"", function()
    local pub = j.use_publisher()
    assert.has_error(function() pub:publish({}, "task.*") end,
      'publisher:publish(payload, topic): the topic "task.*" has a wildcard word (*): wildcards belong in binding patterns')
    assert.has_error(function() pub:publish(true, "task.a") end,
      "publisher:publish(payload, topic): payload must be a table (JSON) or a string, got boolean")
    assert.has_error(function() pub:publish({}, "task.a", { headers = { x = {} } }) end,
      "publisher:publish(): headers must map names to strings, numbers or booleans, got [x] = table")
    assert.has_error(function() pub:publish({}, "task.a", { headers = { [""] = "v" } }) end,
      "publisher:publish(): header names must be 1..255 bytes, got one of 0")
    assert.has_error(function() pub:publish({}, "task.a", { headers = { [("h"):rep(256)] = "v" } }) end,
      "publisher:publish(): header names must be 1..255 bytes, got one of 256")
    local many = {}
    for i = 1, 33 do many["x-h" .. i] = "v" end
    assert.has_error(function() pub:publish({}, "task.a", { headers = many }) end,
      "publisher:publish(): at most 32 headers, got 33")
    assert.has_error(function() pub:delay({}, "task.a", -1) end,
      "publisher:delay(payload, topic, seconds): seconds must be a number >= 0, got -1")
    local ok, err, code = pub:publish({ f = function() end }, "task.a")
    assert.is_nil(ok)
    assert.equal("invalid", code)
    assert.truthy(err:find("^the payload cannot be sent as JSON"), err)
  end)
end)
