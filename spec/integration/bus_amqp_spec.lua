-- The message bus on RabbitMQ end to end: the same app as bus_spec.lua
-- (spec/integration/apps/bus_app.lua), `jararaca server` publishing and
-- `jararaca worker` handling through the run's private RabbitMQ node
-- (JARARACA_BUS_URL=amqp://...), its topology declared by `jararaca
-- declare`. Every path a delivery can take is provoked as on the embedded
-- broker: ack, retries through the delay queues, dead letters (max_retries,
-- invalid payloads, reject), timeouts, a rollback, dispositions, SIGTERM,
-- `jararaca dlq`; and what only RabbitMQ has: the startup check of the
-- topology, a delayed publish, an unreachable broker.
local amqp = require "jararaca.bus.amqp"
local json = require "jararaca.json"
local server = require "spec.support.server"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local rabbitmq = require "spec.support.rabbitmq"
local busapp = require "spec.support.busapp"

local APP = busapp.APP

local dir, url, app, worker, broker, ac

local function where(u) return (u:gsub("//[^@/]*:[^@/]*@", "//guest@")) end

local function runs(id) return app:runs(id) end

-- The dead letters of a handler's queue, by message id.
local function dead(queue) return busapp.dead(broker, queue) end

local function dead_where(queue, pred, what) return busapp.dead_where(broker, queue, pred, what) end

local function ready(queue)
  return assert(ac:queue_info(queue)).messages
end

local function tool(...)
  local argv = { server.bin, env = app and app.env or { BUS_APP_DB = dir .. "/app.db", JARARACA_BUS_URL = url } }
  for _, a in ipairs { ... } do argv[#argv + 1] = a end
  return run.run(argv, 60)
end

local JSON = { ["content-type"] = "application/json" }

setup(function()
  dir = files.temp_dir("bus-amqp")
  url = rabbitmq.url()
  -- the topology first: servers and workers check it at startup
  local status, out, err = tool("declare", APP)
  assert.equal(0, status, out .. err)
  app = busapp.start(dir, { JARARACA_BUS_URL = url })
  worker = app:start_worker("worker", { "--groups", "jobs,follow-up" })
  broker = assert(amqp.open { url = url, where = where(url), app = "busapp" })
  ac = broker.ac
end)

teardown(function()
  if app then app:stop() end
  if broker then broker:close() end
  files.remove_dir(dir)
end)

describe("jararaca declare", function()
  it("declares the app's exchanges, its dead-letter queue and a queue per handler; again is fine", function()
    local status, out, err = tool("declare", APP)
    assert.equal(0, status, out .. err)
    assert.truthy(out:find("declared on amqp://guest@127.0.0.1:", 1, true), out)
    assert.truthy(out:find("busapp.process <- job.ok", 1, true), out)
    assert.falsy((out .. err):find("guest:guest", 1, true))
    for _, x in ipairs { "busapp", "busapp.retry", "busapp.dlx" } do assert.is_true(ac:exchange_exists(x)) end
    assert.truthy(ac:queue_info("busapp.dlq"))
    assert.truthy(ac:queue_info("busapp.stuck"))
  end)
end)

describe("the message bus on RabbitMQ (server + worker processes)", function()
  it("a POST publishes after its commit; the worker handles it; the handler's own publish reaches the next handler",
    function()
      app:create("ok-1", "ok")
      local j1 = app:until_status("ok-1", "done")
      assert.equal(1, j1.attempt)
      local r = runs("ok-1")
      assert.equal(1, #r)
      assert.same({ 1, 0, "-", "process" }, { r[1].attempt, r[1].retry_count, r[1].tenant, r[1].handler })
      wait.until_true(function() return #app:rows("SELECT id FROM done WHERE id = 'ok-1'") == 1 end,
        "on_done handled job.done", 15)
    end)

  it("a request that fails after publishing sends nothing", function()
    local res = app:post("/jobs/fail-after-publish", { id = "never" })
    assert.equal(409, res.status, res.body)
    app:create("after-never", "ok") -- published after: once it is handled, the other would have been too
    app:until_status("after-never", "done")
    assert.equal(0, #runs("never"))
  end)

  it("a handler that fails twice succeeds on its third attempt, through the delay queues", function()
    app:create("flaky-1", "flaky", "acme")
    local j1 = app:until_status("flaky-1", "done")
    assert.equal(3, j1.attempt)
    local r = runs("flaky-1")
    assert.equal(3, #r)
    for i = 1, 3 do
      assert.same({ i, i - 1, "acme" }, { r[i].attempt, r[i].retry_count, r[i].tenant })
    end
    -- the retries went through a delay tier (0.05 s rounds to the 100 ms one)
    assert.truthy(ac:queue_info("busapp.wait.100"))
  end)

  it("a handler that always fails lands in the app's DLQ after max_retries, with its headers", function()
    app:create("fail-1", "fail", "acme")
    local d = dead_where("always_fails", function(x) return x.body:find("fail-1", 1, true) end,
      "fail-1 is dead-lettered")
    assert.same({ 2, "acme", "application/json", "job.fail", "busapp.always_fails" },
      { d.attempt, d.headers["x-tenant"], d.headers["content-type"], d.topic, d.queue })
    assert.truthy(d.reason:find("failed after 3 attempt(s)", 1, true), d.reason)
    assert.truthy(d.reason:find("this handler always fails", 1, true), d.reason)
    assert.truthy(d.died_at)
    assert.equal(3, #runs("fail-1"))
    assert.equal("new", app:job("fail-1").status) -- each failed run rolled back its own writes
  end)

  it("a payload that is not JSON, or fails the handler's schema, is dead-lettered at once, never run", function()
    assert(broker:publish {
      { topic = "job.ok", id = "bad-json", body = "{oops", headers = JSON },
      { topic = "job.ok", id = "bad-schema", body = '{"id": 5, "kind": "ok"}', headers = JSON },
    })
    local bad
    wait.until_true(function()
      bad = dead("process")
      return bad["bad-json"] and bad["bad-schema"]
    end, "both are dead-lettered", 15, 0.1)
    assert.truthy(bad["bad-json"].reason:find("not valid JSON", 1, true), bad["bad-json"].reason)
    assert.truthy(bad["bad-schema"].reason:find("payload is invalid", 1, true), bad["bad-schema"].reason)
    assert.same({ 0, 0 }, { bad["bad-json"].attempt, bad["bad-schema"].attempt })
    assert.equal(0, #app:rows("SELECT id FROM runs WHERE handler = 'process' AND id = '5'"))
  end)

  it("a handler past its timeout is cancelled and retried", function()
    app:create("slow-1", "slow")
    local j1 = app:until_status("slow-1", "done")
    assert.equal(2, j1.attempt)
    assert.equal(2, #runs("slow-1"))
    assert.truthy(busapp.output(worker):find("timed out after 0.5 s", 1, true), busapp.output(worker))
  end)

  it("a handler that writes, publishes and then raises leaves no row and publishes nothing", function()
    app:create("rollback-1", "rollback")
    local d = dead_where("rollback", function(x) return x.body:find("rollback-1", 1, true) end,
      "rollback-1 is dead-lettered")
    assert.truthy(d.reason:find("rolled back after writing and publishing", 1, true), d.reason)
    assert.equal("new", app:job("rollback-1").status)
    -- its staged publish was dropped: it would have been handled (or dead-lettered) before this one
    app:create("after-rollback", "ok")
    app:until_status("after-rollback", "done")
    assert.equal(0, #runs("rollback-1-side"))
    assert.is_nil(dead("process")["rollback-1-side"])
  end)

  it("dispositions: reject() dead-letters at once, retry()/retry_later() retry, nack() releases, an ack() whose "
    .. "transaction fails retries",
    function()
      local msgs = {}
      for _, k in ipairs { "reject", "retry_later", "ack_then_fail", "retry", "nack" } do
        local id = k == "ack_then_fail" and "d-ack" or k == "retry_later" and "d-later" or ("d-" .. k)
        msgs[#msgs + 1] = { topic = "job.dispose", body = ('{"id":"%s","kind":"%s"}'):format(id, k), headers = JSON }
      end
      assert(broker:publish(msgs))
      local d = dead_where("dispositions", function(x) return x.body:find("d-reject", 1, true) end,
        "d-reject is dead-lettered")
      assert.same({ "not for us", 0 }, { d.reason, d.attempt })
      assert.equal(1, #runs("d-reject"))
      wait.until_true(function()
        return #runs("d-later") == 2 and #runs("d-ack") == 2 and #runs("d-retry") == 2 and #runs("d-nack") == 2
      end, "d-later, d-ack, d-retry and d-nack ran twice", 15)
      assert.same({ 1, 2 }, { runs("d-retry")[1].attempt, runs("d-retry")[2].attempt })
      assert.same({ 1, 1 }, { runs("d-nack")[1].attempt, runs("d-nack")[2].attempt })
      assert.is_nil(dead("dispositions")["d-later"])
      assert.equal(0, ready("busapp.dispositions"))
    end)

  it("a delayed publish is delivered after its delay, not before", function()
    local pub = { topic = "job.ok", id = "delayed-1", body = '{"id":"delayed-1","kind":"ok"}', headers = JSON,
      delay = 1.5 }
    assert(broker:publish { pub })
    assert(broker:publish { topic = "job.ok", id = "now-1", body = '{"id":"now-1","kind":"ok"}', headers = JSON })
    wait.until_true(function() return #runs("now-1") == 1 end, "now-1 is handled", 15)
    assert.equal(0, #runs("delayed-1")) -- still in busapp.delay.1500
    assert.equal(1, ready("busapp.delay.1500"))
    wait.until_true(function() return #runs("delayed-1") == 1 end, "delayed-1 is handled after its delay", 15)
  end)

  it("SIGTERM: stops consuming, lets the handler in flight finish, releases the one past the grace period, exits 0",
    function()
      local w = app:start_worker("shutdown", { "--groups", "shutdown", "--grace-period", "2" })
      app:create("hold-1", "hold")
      app:create("stuck-1", "stuck")
      wait.until_true(function() return #runs("hold-1") == 1 and #runs("stuck-1") == 1 end, "both handlers run", 15)
      w.proc:kill("SIGTERM")
      wait.until_true(function() return busapp.output(w):find("SIGTERM: stopping", 1, true) end,
        "the worker is stopping", 15)
      app:open_gate("hold-1")
      assert.equal(0, w.proc:wait(30), busapp.output(w))
      assert.equal("done", app:job("hold-1").status)
      assert.equal(0, ready("busapp.hold"))
      -- stuck-1 was cancelled at the end of the grace period and released: ready again, not a retry
      assert.equal(1, ready("busapp.stuck"))
      assert.truthy(busapp.output(w):find("still running at the end of the grace period: released", 1, true))
      assert.is_nil(dead("stuck")["stuck-1"])
      assert.equal(1, assert(ac:purge("busapp.stuck")))
    end)
end)

describe("message types and header propagation on RabbitMQ", function()
  it("a handler's publishes inherit traceparent, tracestate, baggage and the allow-listed headers, not the others",
    function()
      -- a spy queue on the topic chain_a publishes to
      assert(ac:declare_queue("busapp-spec.spy"))
      assert(ac:bind("busapp-spec.spy", "busapp", "job.chained"))
      local tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
      assert(broker:publish { topic = "job.chain", id = "c-1", body = '{"id":"c-1"}', headers = {
        ["content-type"] = "application/json", traceparent = tp, tracestate = "vendor=x", baggage = "user=7",
        ["x-tenant"] = "acme", ["x-secret"] = "no", ["x-own"] = "from the original",
      } })
      local r = wait.until_true(function()
        return app:rows("SELECT value FROM seen WHERE id = 'c-1' AND handler = 'chain_b'")[1]
      end, "chain_b handled c-1", 15)
      local want = { traceparent = tp, tracestate = "vendor=x", baggage = "user=7", ["x-tenant"] = "acme",
        ["x-own"] = "a", ["content-type"] = "application/json" }
      local d = wait.until_true(function() return ac:get("busapp-spec.spy") end, "the spy got chain_a's message", 5)
      assert.same(want, d.headers)
      assert(d:ack())
      want["x-retry-count"] = 0 -- chain_b's own delivery
      assert.same(want, json.decode(r.value))
    end)
end)

describe("jararaca dlq on RabbitMQ", function()
  local function fail_job(id)
    app:create(id, "fail", "acme")
    return dead_where("always_fails", function(x) return x.body:find('"' .. id .. '"', 1, true) end,
      id .. " is dead-lettered").id
  end

  it("stats, list, requeue --ids (the worker runs it again, with its headers) and purge", function()
    local id = fail_job("dlq-1")
    local status, out, err = tool("dlq", "stats", APP, "--handler", "always_fails", "--json")
    assert.equal(0, status, out .. err)
    local st = assert(json.decode(out))
    assert.same({ "always_fails", "busapp.always_fails" }, { st[1].handler, st[1].queue })
    local n = st[1].count
    assert.truthy(n >= 1)
    status, out, err = tool("dlq", "list", APP, "--handler", "always_fails", "--limit", "1000", "--json")
    assert.equal(0, status, out .. err)
    local mine
    for _, d in ipairs(assert(json.decode(out))) do if d.id == id then mine = d end end
    assert.truthy(mine, out)
    assert.same({ "job.fail", 2, "acme" }, { mine.topic, mine.attempt, mine.headers["x-tenant"] })
    -- listing left them all in place
    assert.equal(n, assert(broker:dlq_stats("busapp.always_fails")).count)
    status, out, err = tool("dlq", "requeue", APP, "--handler", "always_fails", "--ids", id)
    assert.equal(0, status, out .. err)
    assert.truthy(out:find("requeued 1 dead letter(s)", 1, true), out)
    wait.until_true(function() return #runs("dlq-1") == 6 end, "dlq-1 ran three more times", 15)
    for _, r in ipairs(runs("dlq-1")) do assert.equal("acme", r.tenant) end
    dead_where("always_fails", function(x) return x.id == id end, "dlq-1 is dead-lettered again")
    status, out, err = tool("dlq", "purge", APP, "--handler", "always_fails", "--ids", id, "--json")
    assert.equal(0, status, out .. err)
    assert.same({ action = "purge", handlers = { always_fails = 1 }, total = 1 }, json.decode(out))
    assert.is_nil(dead("always_fails")[id])
    status, out, err = tool("dlq", "purge", APP, "--all")
    assert.equal(0, status, out .. err)
    assert.equal(0, assert(broker:dlq_stats("busapp.always_fails")).count)
    assert.equal(0, ready("busapp.dlq"))
  end)
end)

describe("RabbitMQ startup errors", function()
  local function worker_run(app_file, e)
    local status, out, err = run.run({ server.bin, "worker", app_file, env = e }, 60)
    return status, out .. err
  end

  it("an undeclared topology stops the start, naming what is missing and how to declare it", function()
    local file = run.temp_file([[
local j = require "jararaca"
local W = j.MessageBusController { name = "W" }
W.h = j.IncomingHandler("a.b", function() end)
return j.Microservice { name = "undeclared-spec", controllers = { W } }
]], ".lua")
    local status, out = worker_run(file, { JARARACA_BUS_URL = url })
    assert.equal(1, status, out)
    assert.truthy(out:find("the app's topology is not declared (missing: exchange undeclared-spec, exchange "
      .. "undeclared-spec.retry, exchange undeclared-spec.dlx, queue undeclared-spec.dlq, queue undeclared-spec.h)",
      1, true), out)
    assert.truthy(out:find("run `jararaca declare " .. file, 1, true), out)
    -- the check is passive: nothing was created
    local ok, _, code = ac:exchange_exists("undeclared-spec")
    assert.same({ nil, "not_found" }, { ok, code })
    run.cleanup()
  end)

  it("an unreachable broker fails the start with its address, never the password", function()
    local port = require("spec.support.client").free_port() -- nothing listens there
    local status, out = worker_run(APP, { BUS_APP_DB = dir .. "/other.db",
      JARARACA_BUS_URL = ("amqp://user:s3cret@127.0.0.1:%d/"):format(port) })
    assert.equal(1, status, out)
    assert.truthy(out:find(("cannot connect to amqp://user@127.0.0.1:%d/"):format(port), 1, true), out)
    assert.falsy(out:find("s3cret", 1, true), out)
  end)

  it("bad bus URLs and options are startup errors", function()
    local status, out = worker_run(APP, { BUS_APP_DB = dir .. "/other.db", JARARACA_BUS_URL = "amqps://h/" })
    assert.equal(1, status, out)
    assert.truthy(out:find("amqps:// (TLS) is not supported yet", 1, true), out)
    status, out = worker_run(APP, { BUS_APP_DB = dir .. "/other.db", JARARACA_BUS_URL = "amqp:///vhost" })
    assert.equal(1, status, out)
    assert.truthy(out:find("no host in the RabbitMQ URL", 1, true), out)
  end)

  it("a handler named like the app's own queues is refused", function()
    local file = run.temp_file([[
local j = require "jararaca"
local W = j.MessageBusController { name = "W" }
W.dlq = j.IncomingHandler("a.b", function() end)
return j.Microservice { name = "reserved-spec", controllers = { W } }
]], ".lua")
    local status, out = worker_run(file, { JARARACA_BUS_URL = url })
    assert.equal(1, status, out)
    assert.truthy(out:find('name: "dlq" is reserved for the app\'s own queues', 1, true), out)
    run.cleanup()
  end)
end)

describe("the RabbitMQ broker (jararaca.bus.amqp)", function()
  it("subscribe on a closed client answers nil, msg, \"closed\" (not true with no consumer)", function()
    local b = assert(amqp.open { url = url, where = where(url), app = "busapp" })
    b:close()
    local ok, err, code = b:subscribe("busapp.never", 1)
    assert.is_nil(ok)
    assert.equal("closed", code)
    assert.truthy(tostring(err):find("consuming busapp.never failed", 1, true), err)
    assert.is_nil(b.consumers["busapp.never"])
  end)
end)
