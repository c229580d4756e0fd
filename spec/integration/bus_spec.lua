-- The message bus end to end, real processes on real SQLite files: `jararaca
-- server` publishes (staged: after the request's commit), `jararaca worker`
-- processes handle (spec/integration/apps/bus_app.lua), on the embedded
-- broker in its default file next to the app's database. Every path a
-- delivery can take is provoked: ack, retries, dead letters (max_retries,
-- invalid payloads, reject), timeouts, a rollback, dispositions, SIGTERM.
local embedded = require "jararaca.bus.embedded"
local json = require "jararaca.json"
local server = require "spec.support.server"
local client = require "spec.support.client"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local bus = require "spec.support.bus"
local busapp = require "spec.support.busapp"

local APP = busapp.APP

local dir, env, srv, worker, app, broker

local function start_worker(name, args) return app:start_worker(name, args) end
local function rows(sql, params) return app:rows(sql, params) end
local function post(path, body) return app:post(path, body) end
local function create(id, kind, tenant) return app:create(id, kind, tenant) end
local function job(id) return app:job(id) end
local function until_status(id, status, what) return app:until_status(id, status, what) end
local function runs(id) return app:runs(id) end

-- The dead letters of a handler's queue, by message id.
local function dead(queue) return busapp.dead(broker, queue) end

local function dead_where(queue, pred, what) return busapp.dead_where(broker, queue, pred, what) end

local output = busapp.output

setup(function()
  dir = files.temp_dir("bus")
  app = busapp.start(dir)
  srv, env = app.srv, app.env
  -- handlers of the groups jobs and follow-up; the shutdown group has its own worker below
  worker = start_worker("worker", { "--groups", "jobs,follow-up" })
  -- the default broker file: "<app name>.bus.db" next to the app's database
  broker = assert(embedded.open(dir .. "/busapp.bus.db"))
end)

teardown(function()
  if app then app:stop() end
  if broker then broker:close() end
  files.remove_dir(dir)
end)

describe("the message bus (server + worker processes, embedded broker)", function()
  it("a POST publishes after its commit; the worker handles it; the handler's own publish reaches the next handler",
    function()
      create("ok-1", "ok")
      local j1 = until_status("ok-1", "done")
      assert.equal(1, j1.attempt)
      local r = runs("ok-1")
      assert.equal(1, #r)
      assert.same({ 1, 0, "-", "process" }, { r[1].attempt, r[1].retry_count, r[1].tenant, r[1].handler })
      -- process published job.done after its commit; on_done recorded it
      wait.until_true(function() return #rows("SELECT id FROM done WHERE id = 'ok-1'") == 1 end,
        "on_done handled job.done", 15)
    end)

  it("a request that fails after publishing sends nothing (and its insert is rolled back)", function()
    local res = post("/jobs/fail-after-publish", { id = "never" })
    assert.equal(409, res.status, res.body)
    create("after-never", "ok") -- published after: once it is handled, the other would have been too
    until_status("after-never", "done")
    assert.equal(0, #runs("never"))
    assert.equal(404, assert(client.request(srv.port, "GET", "/jobs/never")).status)
    assert.equal(0, bus.count(broker, "SELECT (SELECT count(*) FROM jr_bus_messages WHERE body LIKE '%\"never\"%') + "
      .. "(SELECT count(*) FROM jr_bus_dead WHERE body LIKE '%\"never\"%') AS n"))
  end)

  it("a handler that fails twice succeeds on its third attempt (attempt and x-retry-count count)", function()
    create("flaky-1", "flaky", "acme")
    local j1 = until_status("flaky-1", "done")
    assert.equal(3, j1.attempt)
    local r = runs("flaky-1")
    assert.equal(3, #r)
    for i = 1, 3 do
      assert.equal(i, r[i].attempt)
      assert.equal(i - 1, r[i].retry_count)
      assert.equal("acme", r[i].tenant) -- the headers come with every delivery
    end
    assert.is_nil(dead("flaky")[1])
  end)

  it("a handler that always fails lands in the dead letters after max_retries, with its headers", function()
    create("fail-1", "fail", "acme")
    local d = dead_where("always_fails", function(x) return x.body:find("fail-1", 1, true) end,
      "fail-1 is dead-lettered")
    assert.equal(2, d.attempt) -- max_retries = 2: three runs
    assert.equal("acme", d.headers["x-tenant"])
    assert.equal("application/json", d.headers["content-type"])
    assert.truthy(d.reason:find("failed after 3 attempt(s)", 1, true), d.reason)
    assert.truthy(d.reason:find("this handler always fails", 1, true), d.reason)
    assert.equal(3, #runs("fail-1"))
    -- each failed run rolled back its own writes
    assert.equal("new", job("fail-1").status)
  end)

  it("a payload that is not JSON, or fails the handler's schema, is dead-lettered at once, never run", function()
    assert(broker:publish {
      { topic = "job.ok", id = "bad-json", body = "{oops", headers = { ["content-type"] = "application/json" } },
      { topic = "job.ok", id = "bad-schema", body = '{"id": 5, "kind": "ok"}',
        headers = { ["content-type"] = "application/json" } },
    })
    local bad
    wait.until_true(function()
      bad = dead("process")
      return bad["bad-json"] and bad["bad-schema"]
    end, "both are dead-lettered", 15)
    assert.truthy(bad["bad-json"].reason:find("not valid JSON", 1, true), bad["bad-json"].reason)
    assert.truthy(bad["bad-schema"].reason:find("payload is invalid", 1, true), bad["bad-schema"].reason)
    for _, id in ipairs { "bad-json", "bad-schema" } do
      assert.equal(0, bad[id].attempt)
      assert.equal(1, bad[id].deliveries)
    end
    assert.equal(0, #rows("SELECT id FROM runs WHERE handler = 'process' AND id = '5'"))
  end)

  it("a handler past its timeout is cancelled and retried", function()
    create("slow-1", "slow")
    local j1 = until_status("slow-1", "done")
    assert.equal(2, j1.attempt)
    assert.equal(2, #runs("slow-1"))
    assert.truthy(output(worker):find("timed out after 0.5 s", 1, true), output(worker))
  end)

  it("a handler that writes, publishes and then raises leaves no row and publishes nothing", function()
    create("rollback-1", "rollback")
    local d = dead_where("rollback", function(x) return x.body:find("rollback-1", 1, true) end,
      "rollback-1 is dead-lettered")
    assert.truthy(d.reason:find("rolled back after writing and publishing", 1, true), d.reason)
    assert.equal("new", job("rollback-1").status) -- its UPDATE was rolled back
    -- its staged publish was dropped: settled before the dead letter, it would be there by now
    assert.equal(0, bus.count(broker, "SELECT (SELECT count(*) FROM jr_bus_messages WHERE body LIKE '%rollback-1-side%') + "
      .. "(SELECT count(*) FROM jr_bus_dead WHERE body LIKE '%rollback-1-side%') AS n"))
    assert.equal(0, #runs("rollback-1-side"))
  end)

  it("dispositions: reject() dead-letters at once, retry()/retry_later() retry, nack() releases, an ack() whose "
    .. "transaction fails retries",
    function()
      -- the payload's kind says what the handler does
      assert(broker:publish {
        { topic = "job.dispose", body = '{"id":"d-reject","kind":"reject"}', headers = { ["content-type"] = "application/json" } },
        { topic = "job.dispose", body = '{"id":"d-later","kind":"retry_later"}', headers = { ["content-type"] = "application/json" } },
        { topic = "job.dispose", body = '{"id":"d-ack","kind":"ack_then_fail"}', headers = { ["content-type"] = "application/json" } },
        { topic = "job.dispose", body = '{"id":"d-retry","kind":"retry"}', headers = { ["content-type"] = "application/json" } },
        { topic = "job.dispose", body = '{"id":"d-nack","kind":"nack"}', headers = { ["content-type"] = "application/json" } },
      })
      local d = dead_where("dispositions", function(x) return x.body:find("d-reject", 1, true) end,
        "d-reject is dead-lettered")
      assert.equal("not for us", d.reason)
      assert.equal(0, d.attempt)
      assert.equal(1, #runs("d-reject"))
      wait.until_true(function()
        return #runs("d-later") == 2 and #runs("d-ack") == 2 and #runs("d-retry") == 2 and #runs("d-nack") == 2
      end, "d-later, d-ack, d-retry and d-nack ran twice", 15)
      -- retry() and retry_later() count as retries; nack() does not
      assert.same({ 1, 2 }, { runs("d-retry")[1].attempt, runs("d-retry")[2].attempt })
      assert.same({ 1, 1 }, { runs("d-nack")[1].attempt, runs("d-nack")[2].attempt })
      -- both ended acked on their second run: their queue empties
      wait.until_true(function()
        local q = assert(broker:stats()).queues["busapp.dispositions"]
        return q and q.total == 0
      end, "the dispositions queue is empty", 15)
      assert.is_nil(dead("dispositions")["d-later"])
    end)

  it("SIGTERM: stops fetching, lets the handler in flight finish, releases the one past the grace period, exits 0",
    function()
      local w = start_worker("shutdown", { "--groups", "shutdown", "--grace-period", "2" })
      create("hold-1", "hold")
      create("stuck-1", "stuck")
      wait.until_true(function() return #runs("hold-1") == 1 and #runs("stuck-1") == 1 end, "both handlers run", 15)
      w.proc:kill("SIGTERM")
      wait.until_true(function() return output(w):find("SIGTERM: stopping", 1, true) end, "the worker is stopping", 15)
      -- the handler in flight finishes after the signal: its gate opens now
      app:open_gate("hold-1")
      local status = w.proc:wait(30)
      assert.equal(0, status, output(w))
      assert.equal("done", job("hold-1").status)
      local q = assert(broker:stats()).queues
      assert.equal(0, q["busapp.hold"].total)
      -- stuck-1 was cancelled at the end of the grace period and released: ready again, not a retry
      assert.equal(1, q["busapp.stuck"].total)
      assert.equal(1, q["busapp.stuck"].ready)
      assert.equal(0, q["busapp.stuck"].dead)
      assert.equal(0, bus.count(broker, "SELECT attempt AS n FROM jr_bus_messages WHERE queue = 'busapp.stuck'"))
      assert.truthy(output(w):find("still running at the end of the grace period: released", 1, true), output(w))
    end)
end)

describe("message types and header propagation (server + worker processes)", function()
  local function seen(id, handler)
    return rows("SELECT value FROM seen WHERE id = ? AND handler = ?", { id, handler })
  end

  it("publish(MessageType { ... }) goes to the type's topic; MessageHandler validates against the type", function()
    local res = post("/jobs/typed", { id = "t-1", n = 7 })
    assert.equal(201, res.status, res.body)
    local r = wait.until_true(function() return seen("t-1", "typed")[1] end, "typed handled t-1", 15)
    assert.equal("job.typed 7", r.value)
    -- a payload that does not fit the type: the publisher refuses it, nothing is sent
    res = post("/jobs/typed", { id = "t-bad", n = "seven" })
    assert.equal(422, res.status, res.body)
    assert.truthy(res.body:find("invalid: the JobTyped message is invalid", 1, true), res.body)
    -- one published around the publisher: the handler's schema dead-letters it at once
    assert(broker:publish { topic = "job.typed", id = "t-raw", body = '{"id":"t-raw","n":-1}',
      headers = { ["content-type"] = "application/json" } })
    local d = dead_where("typed", function(x) return x.id == "t-raw" end, "t-raw is dead-lettered")
    assert.truthy(d.reason:find("payload is invalid", 1, true), d.reason)
    assert.equal(0, #seen("t-raw", "typed"))
    assert.equal(0, bus.count(broker, "SELECT count(*) AS n FROM jr_bus_dead WHERE body LIKE '%t-bad%'"))
  end)

  it("a handler's publishes inherit traceparent, tracestate, baggage and the allow-listed headers, not the others",
    function()
      -- a spy queue on the topic chain_a publishes to: the headers as stored
      assert(broker:bind("spy", "job.chained"))
      local tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
      assert(broker:publish { topic = "job.chain", id = "c-1", body = '{"id":"c-1"}', headers = {
        ["content-type"] = "application/json", traceparent = tp, tracestate = "vendor=x", baggage = "user=7",
        ["x-tenant"] = "acme", ["x-secret"] = "no", ["x-own"] = "from the original",
      } })
      local r = wait.until_true(function() return seen("c-1", "chain_b")[1] end, "chain_b handled c-1", 15)
      local want = { traceparent = tp, tracestate = "vendor=x", baggage = "user=7", ["x-tenant"] = "acme",
        ["x-own"] = "a", ["content-type"] = "application/json" }
      local ds = assert(broker:fetch("spy", 10))
      assert.equal(1, #ds)
      -- no x-secret (not allow-listed), no x-retry-count (chain_a ran twice: its own was 1)
      assert.same(want, ds[1].headers)
      assert(broker:ack(ds[1]))
      assert(broker:unbind("spy", "job.chained"))
      want["x-retry-count"] = 0 -- chain_b's own delivery
      assert.same(want, json.decode(r.value))
    end)
end)

describe("jararaca dlq (a worker producing dead letters)", function()
  local function dlq(...)
    local argv = { server.bin, "dlq", env = env }
    for _, a in ipairs { ... } do argv[#argv + 1] = a end
    local status, out, err = run.run(argv, 60)
    return status, out, err
  end

  -- the count on the text line of a queue
  local function count_on_line(out, queue)
    for line in out:gmatch("[^\n]+") do
      if line:find("(" .. queue .. ")", 1, true) then return tonumber(line:match("%)%s+(%d+)")) end
    end
  end

  local function fail_job(id)
    create(id, "fail", "acme")
    return dead_where("always_fails", function(x) return x.body:find('"' .. id .. '"', 1, true) end,
      id .. " is dead-lettered").id
  end

  it("stats and list show each handler's dead letters (text and --json)", function()
    local id = fail_job("dlq-1")
    local status, out, err = dlq("stats", APP)
    assert.equal(0, status, out .. err)
    local n = assert(broker:dlq_stats("busapp.always_fails")).count
    assert.equal(n, count_on_line(out, "busapp.always_fails"), out)
    assert.truthy(count_on_line(out, "busapp.process"), out)
    status, out, err = dlq("stats", APP, "--handler", "always_fails", "--json")
    assert.equal(0, status, out .. err)
    local st = assert(json.decode(out))
    assert.equal(1, #st)
    assert.same({ "always_fails", "busapp.always_fails", n }, { st[1].handler, st[1].queue, st[1].count })
    status, out, err = dlq("list", APP, "--handler", "always_fails", "--limit", "1000", "--json")
    assert.equal(0, status, out .. err)
    local mine
    for _, d in ipairs(assert(json.decode(out))) do if d.id == id then mine = d end end
    assert.truthy(mine, out)
    assert.same({ "job.fail", 2, "acme" }, { mine.topic, mine.attempt, mine.headers["x-tenant"] })
    assert.truthy(mine.reason:find("this handler always fails", 1, true), mine.reason)
    status, out = dlq("list", APP, "--handler", "always_fails", "--limit", "1000")
    assert.equal(0, status)
    assert.truthy(out:find(id .. "  ", 1, true), out)
    assert.truthy(out:find("x-tenant=acme", 1, true), out)
  end)

  it("requeue --ids sends the message back with its headers: the worker runs it again", function()
    local id = fail_job("dlq-2")
    assert.equal(3, #runs("dlq-2"))
    local status, out, err = dlq("requeue", APP, "--handler", "always_fails", "--ids", id)
    assert.equal(0, status, out .. err)
    assert.truthy(out:find("always_fails (busapp.always_fails): requeued 1 dead letter(s)", 1, true), out)
    -- three more runs (a fresh set of retries), each with the original headers, then dead again
    wait.until_true(function() return #runs("dlq-2") == 6 end, "dlq-2 ran three more times", 15)
    for _, r in ipairs(runs("dlq-2")) do assert.equal("acme", r.tenant) end
    dead_where("always_fails", function(x) return x.id == id end, "dlq-2 is dead-lettered again")
    -- an id no dead letter has: exit 1
    status, out, err = dlq("requeue", APP, "--ids", "no-such-id")
    assert.equal(1, status, out .. err)
    assert.truthy(err:find("no dead letter of the app's handlers has the id(s) no-such-id", 1, true), err)
  end)

  it("purge --ids deletes those, purge --all the rest of a handler's", function()
    local a, b = fail_job("dlq-3"), fail_job("dlq-4")
    local status, out, err = dlq("purge", APP, "--handler", "always_fails", "--ids", a, "--json")
    assert.equal(0, status, out .. err)
    assert.same({ action = "purge", handlers = { always_fails = 1 }, total = 1 }, json.decode(out))
    assert.is_nil(dead("always_fails")[a])
    assert.truthy(dead("always_fails")[b])
    status, out, err = dlq("purge", APP, "--handler", "always_fails", "--all")
    assert.equal(0, status, out .. err)
    assert.equal(0, assert(broker:dlq_stats("busapp.always_fails")).count)
  end)

  it("bad arguments exit 2 with a clear message; --help exits 0", function()
    local cases = {
      { { "purge", APP }, "purge needs --ids a,b or --all" },
      { { "requeue", APP, "--ids", "a", "--all" }, "--ids and --all cannot be combined" },
      { { "list", APP, "--limit", "0" }, "--limit: expected a whole number in 1..100000, got '0'" },
      { { "stats", APP, "--all" }, "--ids and --all belong to requeue and purge, not stats" },
      { { "drop", APP }, "unknown action 'drop'" },
      { { "stats" }, "expected an action and one app file" },
      { { "stats", APP, "--frob" }, "unknown option --frob" },
      { { "stats", APP, "--handler", "nope" }, 'no handler named "nope" (the app\'s handlers: process, ' },
    }
    for _, c in ipairs(cases) do
      local status, out, err = dlq(unpack(c[1]))
      assert.equal(2, status, table.concat(c[1], " ") .. ": " .. out .. err)
      assert.truthy(err:find(c[2], 1, true), err)
    end
    local status, out = dlq("--help")
    assert.equal(0, status)
    assert.truthy(out:find("usage: jararaca dlq stats|list|requeue|purge APP.lua", 1, true), out)
  end)
end)

describe("jararaca worker: startup errors", function()
  it("a handler with a bad option names the app file, the line and the handler", function()
    local file = run.temp_file([[
local j = require "jararaca"
local W = j.MessageBusController { name = "W" }
W.h = j.IncomingHandler("a.b", { max_retries = -1 }, function() end)
return j.Microservice { name = "bad", controllers = { W }, bus = { url = "sqlite:///]] .. dir .. [[/bad.bus.db" } }
]], ".lua")
    local status, out, err = run.run({ server.bin, "worker", file }, 60)
    assert.equal(1, status, out .. err)
    assert.truthy(err:find(file:match("[^/]+$") .. ":3: handler W.h (a.b): max_retries: expected a whole number in "
      .. "0..1000000, got -1", 1, true), err)
    run.cleanup()
  end)

  it("--prefetch above 1000 exits 2", function()
    local status, out, err = run.run({ server.bin, "worker", APP, "--prefetch", "1001", env = env }, 60)
    assert.equal(2, status, out .. err)
    assert.truthy(err:find("--prefetch: expected at most 1000, got 1001", 1, true), err)
  end)

  it("--handlers with an unknown name exits 2 naming the app's handlers", function()
    local status, out, err = run.run({ server.bin, "worker", APP, "--handlers", "nope", env = env }, 60)
    assert.equal(2, status, out .. err)
    assert.truthy(err:find('no handler named "nope"', 1, true), err)
    assert.truthy(err:find("process, on_done", 1, true), err)
  end)
end)
