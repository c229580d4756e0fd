-- The message bus on RabbitMQ under faults, real processes on a real
-- broker: `jararaca worker` (spec/integration/apps/bus_amqp_faults.lua)
-- records what it handles in SQLite, this spec publishes through the bus's
-- RabbitMQ broker (jararaca.bus.amqp) and reads the records.
--   * a worker killed (SIGKILL) in the middle of a handler: RabbitMQ gives
--     the message back when the connection drops; a second worker handles it;
--   * the broker restarted (SIGTERM, then started again on its data) while
--     10,000 messages flow, with a backlog in the broker and the publisher
--     mid-way: the worker reconnects by itself, every message published
--     (confirmed) is handled, and so is a retry that waited in a delay
--     queue across the restart; duplicates are allowed (at least once) and
--     printed; the worker then exits 0 on SIGTERM. That test restarts a
--     node of its own (spec.support.rabbitmq.private), not the run's one.
local process = require "jararaca.core.process"
local dbmod = require "jararaca.db"
local amqp = require "jararaca.bus.amqp"
local json = require "jararaca.json"
local sched = require "jararaca.sched"
local server = require "spec.support.server"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local rabbitmq = require "spec.support.rabbitmq"

local APP = server.root .. "/spec/integration/apps/bus_amqp_faults.lua"
local T = 30 -- seconds a state may take to come (a loaded machine)

local dir
local workers, dbs = {}, {}

-- A worker process recording into dir/<db>.db.
local function start_worker(name, db, url, extra)
  local log = ("%s/%s.log"):format(dir, name)
  local env = { FAULTS_DB = ("%s/%s.db"):format(dir, db), JARARACA_BUS_URL = url, JARARACA_LOG_LEVEL = "info" }
  for k, v in pairs(extra or {}) do env[k] = v end
  local w = { proc = assert(process.spawn { server.bin, "worker", APP, env = env, stdout = log, stderr = log }),
    log = log }
  workers[#workers + 1] = w
  return w
end

local function output(w)
  return run.read(w.log) or ""
end

-- Until the worker consumes queue (its topology is declared, so what is
-- published from now on is routed to it).
local function consuming(w, queue)
  wait.until_true(function()
    assert(w.proc:wait(0) == nil, "the worker exited:\n" .. output(w))
    return output(w):find("consumes " .. queue, 1, true)
  end, "the worker consumes " .. queue, T, 0.05)
end

-- The rows of a query on dir/<db>.db (the workers' records).
local function rows(db, sql, params)
  dbs[db] = dbs[db] or assert(dbmod.open { path = ("%s/%s.db"):format(dir, db) })
  local tx = dbs[db]:begin("read")
  local r = assert(tx:query(sql, params))
  tx:commit()
  return r
end

local function message(topic, id)
  return { topic = topic, id = id, body = assert(json.encode { id = id }),
    headers = { ["content-type"] = "application/json" } }
end

local function stop_worker(w)
  assert(w.proc:kill("SIGTERM"))
  local status = w.proc:wait(T)
  assert.equal(0, status, output(w))
end

-- The restart test's own node boots (6-10 s) while the first test runs.
local booting

setup(function()
  dir = files.temp_dir("bus-amqp-faults")
  booting = sched.spawn(rabbitmq.private)
end)

teardown(function()
  local ok, node = booting:wait()
  if ok then node.stop() end
  for _, w in ipairs(workers) do
    if w.proc:wait(0) == nil then w.proc:kill("SIGKILL"); w.proc:wait(5) end
  end
  for _, db in pairs(dbs) do db:close() end
  files.remove_dir(dir)
end)

describe("the message bus on RabbitMQ under faults (worker processes)", function()
  it("a worker killed (SIGKILL) in the middle of a handler: the message is redelivered to another worker "
    .. "and handled", function()
    local url = rabbitmq.url()
    local first = start_worker("first", "k9", url, { FAULTS_HANG = "1" })
    consuming(first, "faults.hang")
    local b = assert(amqp.open { url = url, app = "faults" })
    assert.equal(1, b:publish(message("hang", "k9-1")))
    wait.until_true(function() return #rows("k9", "SELECT id FROM runs WHERE id = 'k9-1'") == 1 end,
      "the first worker runs the handler", T, 0.02)
    assert(first.proc:kill("SIGKILL"))
    assert.is_not_nil(first.proc:wait(T))

    local second = start_worker("second", "k9", url)
    wait.until_true(function() return #rows("k9", "SELECT id FROM handled WHERE id = 'k9-1'") == 1 end,
      "the second worker handles the message", T, 0.05)
    local r = rows("k9", "SELECT pid, attempt FROM runs WHERE id = 'k9-1' ORDER BY rowid")
    assert.equal(2, #r)
    assert.same({ first.proc:pid(), 1 }, { r[1].pid, r[1].attempt })
    -- a redelivery is not a retry: the attempt is unchanged
    assert.same({ second.proc:pid(), 1 }, { r[2].pid, r[2].attempt })
    local h = rows("k9", "SELECT runs, pid FROM handled WHERE id = 'k9-1'")[1]
    assert.same({ 1, second.proc:pid() }, { h.runs, h.pid })
    -- acked once: nothing left in the queue, nothing dead-lettered
    wait.until_true(function() return assert(b.ac:queue_info("faults.hang")).messages == 0 end,
      "faults.hang is empty", T, 0.05)
    assert.equal(0, assert(b.ac:queue_info("faults.dlq")).messages)
    b:close()
    stop_worker(second)
  end)

  describe("a RabbitMQ node of the test's own", function()
    local node
    setup(function()
      local ok, n = booting:wait()
      assert(ok, tostring(n))
      node = n
    end)

    it("restarted while 10,000 messages flow: the worker reconnects, every published message is handled",
      function()
        -- WORK: the handler's time per message (50 at a time), so that a
        -- backlog is still in the broker when it stops (at most about 1700 messages/s)
        local N, BATCH, AHEAD, GATE, WORK = 10000, 100, 3000, 7000, 0.03
        local w = start_worker("flow", "flow", node.url, { FAULTS_WORK = tostring(WORK) })
        consuming(w, "faults.record")
        local function handled()
          return rows("flow", "SELECT count(*) AS n, coalesce(sum(runs), 0) AS runs FROM handled WHERE id LIKE 'm%'")[1]
        end

        local b = assert(amqp.open({ url = node.url, app = "faults" }, { max_pending_ms = 90000 }))
        local function went_down()
          local st = b:stats()
          return not st.up or st.reconnects > 0
        end
        local published, failures = 0, {}
        -- What the spec's own connection saw when the node went down.
        local at_down
        local watcher = sched.spawn(function()
          while not went_down() do sched.sleep(0.005) end
          at_down = { handled = handled().n, published = published }
        end)

        -- The publisher: batches of BATCH confirmed messages, at most AHEAD
        -- published and not handled yet; past GATE it waits for the node to
        -- go down, so the rest is published across the restart.
        local publisher = sched.spawn(function()
          while published < N do
            local batch = {}
            for i = published + 1, published + BATCH do batch[#batch + 1] = message("flow", ("m%05d"):format(i)) end
            local n, err, code = b:publish(batch)
            if n ~= BATCH then
              failures[#failures + 1] = ("batch after %d: %s (%s)"):format(published, tostring(err), tostring(code))
              return
            end
            published = published + BATCH
            while published - handled().n > AHEAD do sched.sleep(0.02) end
            if published >= GATE then
              local deadline = sched.clock() + T
              while not went_down() and sched.clock() < deadline do sched.sleep(0.01) end
            end
          end
        end)

        wait.until_true(function() return handled().n >= 2000 end, "2000 messages are handled", T, 0.05)
        -- a retry waiting in its delay queue (a TTL queue) across the restart
        assert.equal(1, b:publish(message("later", "later-1")))
        wait.until_true(function()
          local q = b.ac:queue_info("faults.wait.5000")
          return q and q.messages == 1
        end, "later-1 waits in faults.wait.5000", T, 0.02)
        node.restart()
        local after_restart = handled().n

        assert.is_true(watcher:wait(T))
        local ok, perr = publisher:wait(120)
        assert.is_true(ok, tostring(perr))
        assert.same({}, failures)
        assert.equal(N, published)
        wait.until_true(function() return handled().n == N end, N .. " distinct messages are handled", 90, 0.1)
        local got = handled()
        print(("\n  broker restart: when it went down %d published, %d handled; %d handled once it was up again; "
          .. "%d distinct handled of %d published, %d duplicate run(s)"):format(at_down.published, at_down.handled,
          after_restart, got.n, published, got.runs - got.n))
        -- both were running when the node went down: messages were in the broker, more came after
        assert.is_true(at_down.handled < at_down.published, "the worker had caught up: nothing was in the broker")
        assert.is_true(at_down.published < N, "the publisher had finished")
        assert.equal(N, got.n)
        assert.is_true(got.runs >= N)
        -- the same process handled them all: it reconnected, nobody restarted it
        assert.equal(0, rows("flow", "SELECT count(*) AS n FROM handled WHERE pid <> ?", { w.proc:pid() })[1].n)
        assert.is_nil(w.proc:wait(0), "the worker exited:\n" .. output(w))
        local out = output(w)
        assert.truthy(out:find("connection lost", 1, true), out)
        assert.truthy(out:find("connected again", 1, true), out)
        wait.until_true(function() return #rows("flow", "SELECT id FROM handled WHERE id = 'later-1'") == 1 end,
          "later-1 is handled on its retry", T, 0.05)
        local later = rows("flow", "SELECT attempt FROM runs WHERE id = 'later-1' ORDER BY rowid")
        assert.same({ 1, 2 }, { later[1].attempt, later[2] and later[2].attempt })
        -- the publisher's connection went down and came back too
        assert.is_true(b:stats().reconnects >= 1)
        b:close()
        stop_worker(w)
      end)

    it("a request while the broker is down answers at once; its message waits in the outbox and is handled once "
      .. "the broker is back", function()
        local busapp = require "spec.support.busapp"
        local adir = dir .. "/outage"
        assert(os.execute("mkdir -p " .. adir) == 0)
        local env = { BUS_APP_DB = adir .. "/app.db", JARARACA_BUS_URL = node.url }
        local status, out, err = run.run({ server.bin, "declare", busapp.APP, env = env }, 60)
        assert.equal(0, status, out .. err)
        local app = busapp.start(adir, { JARARACA_BUS_URL = node.url })
        local ok, perr = pcall(function()
          local w = app:start_worker("outage-worker", { "--handlers", "process" })
          app:create("up-1", "ok")
          app:until_status("up-1", "done")
          node.ctl("stop_app")
          wait.until_true(function() return app.srv:output():find("connection lost", 1, true) end,
            "the server saw the broker go", T, 0.05)
          -- answered within the client's 5 s (it used to wait 30 s for the broker)
          app:create("down-1", "ok")
          assert.equal("new", app:job("down-1").status)
          assert.equal(1, #app:rows("SELECT seq FROM jr_outbox WHERE topic = 'job.ok'"))
          node.ctl("start_app")
          app:until_status("down-1", "done")
          wait.until_true(function() return #app:rows("SELECT seq FROM jr_outbox") == 0 end, "the outbox is empty", T)
          assert.truthy(app.srv:output():find("stay in the outbox", 1, true), app.srv:output())
          stop_worker(w)
        end)
        app:stop()
        assert(ok, perr)
      end)
  end)
end)
