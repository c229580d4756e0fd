-- The built-in metric families in one process: registry collectors, the
-- workers' snapshot and merge, the message bus (a real embedded broker and
-- worker), SQLite (a real database's group commit) and the scheduler's
-- counting. Real processes, the admin port and the WebSocket family:
-- spec/integration/metrics_builtin_spec.lua.
local j = require "jararaca"
local registry = require "jararaca.metrics.registry"
local text = require "jararaca.metrics.text"
local builtin = require "jararaca.metrics.builtin"
local workers = require "jararaca.metrics.workers"
local mbus = require "jararaca.metrics.bus"
local mdb = require "jararaca.metrics.db"
local msched = require "jararaca.metrics.schedule"
local worker = require "jararaca.bus.worker"
local db = require "jararaca.db"
local sched = require "jararaca.sched"
local csched = require "jararaca.core.sched"
local wait = require "spec.support.wait"
local bus_support = require "spec.support.bus"
local sample = require("spec.support.metrics").value

-- The built-ins' text (this process's: no other workers here).
local function scrape() return workers.scrape() end

-- A gate a task waits at until open() (an event, not a polled flag).
local function gate()
  local g = { opened = false }
  function g.wait()
    if g.opened then return end
    g.waiter = { csched.current() }
    while not g.opened do
      local ok, _, code = csched.wait()
      if not ok and code == "cancelled" then error(sched.CANCELLED, 0) end
    end
  end
  function g.open()
    g.opened = true
    local w = g.waiter
    g.waiter = nil
    if w then csched.wake(w[1], w[2]) end
  end
  return g
end

describe("registry collectors", function()
  it("run before each render and may set series from elsewhere", function()
    local reg = registry.new()
    local g = reg:updown_counter("outside_things", "Things counted elsewhere.")
    local calls, outside = 0, 7
    reg:on_collect(function()
      calls = calls + 1
      g:with().value = outside
    end)
    assert.matches("\noutside_things 7\n", text.render(reg), 1, true)
    outside = 9
    assert.matches("\noutside_things 9\n", text.render(reg), 1, true)
    assert.equal(2, calls)
    assert.has_error(function() reg:on_collect(1) end, "on_collect(fn): fn must be a function")
  end)
end)

describe("the workers' merge", function()
  it("sums counters, up-down counters and histograms series by series, keeping each label set", function()
    local function worker_registry(jobs, queue, obs)
      local reg = registry.new()
      local c = reg:counter("jobs_total", "Jobs.", { "kind" })
      for kind, n in pairs(jobs) do c:add(n, { kind = kind }) end
      reg:updown_counter("queue_length", "Queue."):add(queue)
      local h = reg:histogram("job_seconds", "Job time.", nil, { 1, 10 })
      for _, v in ipairs(obs) do h:observe(v) end
      return reg
    end
    local a = worker_registry({ mail = 2 }, 3, { 0.5, 20 })
    local b = worker_registry({ mail = 1, sms = 4 }, -1, { 5, 1/0 })
    local merged = { list = {}, by_name = {} }
    workers.merge(merged, workers.snapshot { a })
    -- (through JSON, as a peer's answer comes)
    workers.merge(merged, j.json.decode(assert(j.json.encode(workers.snapshot { b }))))
    local body = text.render(merged)
    assert.equal(3, sample(body, 'jobs_total{kind="mail"}'))
    assert.equal(4, sample(body, 'jobs_total{kind="sms"}'))
    assert.equal(2, sample(body, "queue_length"))
    assert.equal(1, sample(body, 'job_seconds_bucket{le="1"}'))
    assert.equal(2, sample(body, 'job_seconds_bucket{le="10"}'))
    assert.equal(4, sample(body, 'job_seconds_bucket{le="+Inf"}'))
    assert.equal(4, sample(body, "job_seconds_count"))
    assert.matches("\njob_seconds_sum %+Inf\n", body)
    assert.matches("# TYPE queue_length gauge\n", body, 1, true)
  end)
end)

describe("built-in bus metrics", function()
  setup(function() builtin.enable() end)

  it("count sent by topic, settled by handler and outcome, failures, time and in-flight", function()
    local hold = gate()
    local app = bus_support.start_app(function(url)
      local W = j.MessageBusController { name = "W" }
      W.okay = j.IncomingHandler("mb.ok.#", function() end)
      local nacked = false
      W.nacks = j.IncomingHandler("mb.nack.#", function(_, msg)
        if not nacked then -- released once, then acked
          nacked = true
          msg:nack()
        end
      end)
      W.rejects = j.IncomingHandler("mb.reject.#", function(_, msg) msg:reject("no") end)
      W.raises = j.IncomingHandler("mb.raise.#", { max_retries = 1, backoff = { initial = 0.001, jitter = 0 } },
        function() error("on purpose") end)
      W.holds = j.IncomingHandler("mb.hold.#", function() hold.wait() end)
      return j.Microservice { name = "mb", controllers = { W }, bus = { url = url } }
    end)
    local ok, err = pcall(function()
      local pub = j.use_publisher()
      for _, t in ipairs { "mb.ok.a", "mb.ok.b", "mb.nack.a", "mb.reject.a", "mb.raise.a", "mb.hold.a" } do
        assert.is_true(pub:publish({}, t))
      end
      local body = scrape()
      assert.equal(1, sample(body, 'jararaca_bus_messages_sent_total{topic="mb.ok.a"}'))
      assert.equal(1, sample(body, 'jararaca_bus_messages_sent_total{topic="mb.hold.a"}'))
      local w = assert(worker.start(app.rt, {}))
      local function v(series) return sample(scrape(), series) or 0 end
      wait.until_true(function()
        return v('jararaca_bus_messages_processed_total{handler="raises",outcome="dead"}') == 1
          and v('jararaca_bus_messages_processed_total{handler="nacks",outcome="ack"}') == 1
          and v('jararaca_bus_messages_in_flight{handler="holds"}') == 1
      end, "every delivery but the held one settled", 10)
      body = scrape()
      assert.equal(2, sample(body, 'jararaca_bus_messages_processed_total{handler="okay",outcome="ack"}'))
      assert.equal(1, sample(body, 'jararaca_bus_messages_processed_total{handler="nacks",outcome="release"}'))
      assert.equal(1, sample(body, 'jararaca_bus_messages_processed_total{handler="rejects",outcome="dead"}'))
      assert.equal(1, sample(body, 'jararaca_bus_messages_processed_total{handler="raises",outcome="retry"}'))
      assert.equal(2, sample(body, 'jararaca_bus_handler_failures_total{handler="raises"}'))
      assert.is_nil(sample(body, 'jararaca_bus_handler_failures_total{handler="okay"}'))
      assert.equal(2, sample(body, 'jararaca_bus_handler_duration_seconds_count{handler="okay"}'))
      assert.equal(0, sample(body, 'jararaca_bus_messages_in_flight{handler="okay"}'))
      hold.open()
      wait.until_true(function()
        return v('jararaca_bus_messages_processed_total{handler="holds",outcome="ack"}') == 1
      end, "the held one settled")
      assert.equal(0, v('jararaca_bus_messages_in_flight{handler="holds"}'))
      w:stop(5)
    end)
    hold.open()
    app.stop()
    assert(ok, err)
  end)
end)

describe("built-in SQLite metrics", function()
  setup(function() builtin.enable() end)

  it("count statements, the transactions of each group commit, and the writer wait", function()
    local path = os.tmpname()
    local d = assert(db.open({ path = path }, "mdb-unit"))
    local ok, err = pcall(function()
      local function v(series) return sample(scrape(), series) or 0 end
      local t = sched.spawn(function()
        local tx = d:begin("write")
        assert(tx:exec_script("CREATE TABLE t(x)"))
        return tx:commit()
      end)
      assert(t:wait(5))
      assert.equal(1, v('jararaca_db_statements_total{database="mdb-unit"}'))
      assert.equal(1, v('jararaca_db_commit_batch_size_count{database="mdb-unit"}'))
      -- a holder keeps the writer while three more queue: they commit as one group
      local go, holding = gate(), false
      local holder = sched.spawn(function()
        local tx = d:begin("write")
        assert(tx:execute("INSERT INTO t VALUES (0)"))
        holding = true
        go.wait()
        return tx:commit()
      end)
      wait.until_true(function() return holding end, "the holder wrote")
      local members = {}
      for i = 1, 3 do
        members[i] = sched.spawn(function()
          local tx = d:begin("write")
          assert(tx:execute("INSERT INTO t VALUES (?)", { i }))
          return tx:commit()
        end)
      end
      wait.until_true(function() return d:stats().writer.waiting == 3 end, "the members queued")
      go.open()
      assert(holder:wait(5))
      for i = 1, 3 do assert(members[i]:wait(5)) end
      local body = scrape()
      assert.equal(5, sample(body, 'jararaca_db_statements_total{database="mdb-unit"}'))
      -- groups: the table's, the holder's, the three members'
      assert.equal(3, sample(body, 'jararaca_db_commit_batch_size_count{database="mdb-unit"}'))
      assert.equal(5, sample(body, 'jararaca_db_commit_batch_size_sum{database="mdb-unit"}'))
      assert.equal(2, sample(body, 'jararaca_db_commit_batch_size_bucket{database="mdb-unit",le="2"}')) -- the groups of one
      assert.equal(3, sample(body, 'jararaca_db_commit_batch_size_bucket{database="mdb-unit",le="4"}'))
      -- every write transaction waited (0 for the first two): five observations
      assert.equal(5, sample(body, 'jararaca_db_writer_wait_seconds_count{database="mdb-unit"}'))
      assert.truthy(sample(body, 'jararaca_db_writer_wait_seconds_sum{database="mdb-unit"}') > 0)
    end)
    d:close(5)
    for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end
    assert(ok, err)
  end)
end)

describe("built-in scheduler metrics", function()
  setup(function() builtin.enable() end)

  it("map the scheduler's counts to runs, skips and failures", function()
    msched.count("ms-unit", "ok", 1, true)
    msched.count("ms-unit", "failed", 1, true)     -- the run raised
    msched.count("ms-unit", "timeout", 1, true)
    msched.count("ms-unit", "failed")              -- claiming the tick failed: no run
    msched.count("ms-unit", "skipped")
    msched.count("ms-unit", "not_ours")
    msched.count("ms-unit", "missed", 3)
    msched.count("ms-unit", "published")
    msched.late("ms-unit", 0.002)
    msched.late("ms-unit", -0.001) -- a timer that woke a little early: 0
    local body = scrape()
    local function v(s) return sample(body, s) end
    assert.equal(1, v('jararaca_scheduler_runs_total{action="ms-unit",outcome="ok"}'))
    assert.equal(1, v('jararaca_scheduler_runs_total{action="ms-unit",outcome="error"}'))
    assert.equal(1, v('jararaca_scheduler_runs_total{action="ms-unit",outcome="timeout"}'))
    assert.equal(1, v('jararaca_scheduler_runs_total{action="ms-unit",outcome="published"}'))
    assert.equal(3, v('jararaca_scheduler_failures_total{action="ms-unit"}'))
    assert.equal(1, v('jararaca_scheduler_skips_total{action="ms-unit",reason="busy"}'))
    assert.equal(1, v('jararaca_scheduler_skips_total{action="ms-unit",reason="not_ours"}'))
    assert.equal(3, v('jararaca_scheduler_skips_total{action="ms-unit",reason="missed"}'))
    assert.equal(2, v('jararaca_scheduler_lateness_seconds_count{action="ms-unit"}'))
    assert.equal(1, v('jararaca_scheduler_lateness_seconds_bucket{action="ms-unit",le="0.001"}'))
    assert.equal(0.002, v('jararaca_scheduler_lateness_seconds_sum{action="ms-unit"}'))
  end)

  it("the switches are on only once the built-ins are enabled", function()
    assert.is_true(mbus.on and mdb.on and msched.on)
  end)
end)
