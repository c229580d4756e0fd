-- The tasks app on the message bus with RabbitMQ (the run's private node,
-- spec/support/rabbitmq.lua): real processes, JARARACA_BUS_URL=amqp://...
-- for all of them. `jararaca declare` declares the app's topology (the
-- server and the worker check it at startup), `jararaca server` publishes
-- "task" after a POST /tasks commits, `jararaca worker` runs TaskWorker
-- (process: marks the task processed and publishes "task.done"; done: logs
-- it). The spec reads the queues through the RabbitMQ client
-- (jararaca.core.amqp), binds a queue of its own to "task.done" to see what
-- the worker published, and reads the dead letters with `jararaca dlq`.
-- The app's names on the broker: the exchange "tasks", the queues
-- "tasks.process", "tasks.done" and "tasks.dlq" (no other spec uses them).
-- (worker_spec.lua: the same on the embedded broker.)
local amqp = require "jararaca.core.amqp"
local json = require "jararaca.json"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local rabbitmq = require "spec.support.rabbitmq"
local P = require "examples.tasks.spec.bus_processes"

local SPY = "spec.tasks.task_done" -- the spec's own queue, bound to "task.done"
local T = P.T

local dir, app, ac

-- Ready messages in a queue (not counting those delivered and not acked yet).
local function ready(queue)
  return assert(ac:queue_info(queue)).messages
end

-- What reached the spy queue, by task id.
local done_seen = {}

-- The dead letters of TaskWorker.process (`jararaca dlq list --json`).
local function dead_letters()
  local status, out, err = app:jararaca("dlq", "list", P.APP, "--handler", "process", "--limit", "100", "--json")
  assert.equal(0, status, out .. err)
  return assert(json.decode(out)) -- a list: { handler, queue, id, topic, body, headers, attempt, reason, ... }
end

setup(function()
  dir = files.temp_dir("tasks-amqp")
  local url = rabbitmq.url()
  local env = { TASKS_DB = dir .. "/tasks.db", JARARACA_BUS_URL = url, JARARACA_LOG_LEVEL = "info" }
  ac = assert(amqp.connect(url))
  -- a queue left by an earlier run on this node must not hold old messages
  for _, q in ipairs { "tasks.process", "tasks.done", "tasks.dlq", SPY } do
    local ok, err, code = ac:purge(q)
    assert(ok or code == "not_found", err)
  end
  -- the topology first: the server checks it at startup
  local status, out, err = P.jararaca(env, "declare", P.APP)
  assert.equal(0, status, out .. err)
  assert(ac:declare_queue(SPY))
  assert(ac:bind(SPY, "tasks", "task.done"))
  ac:consume(SPY, 50, function(d)
    local body = assert(json.decode(d.body))
    done_seen[body.id] = { body = body, content_type = d.content_type }
    d:ack()
  end)
  app = P.start(dir, env)
end)

teardown(function()
  if app then app:stop() end
  if ac then ac:close() end
  files.remove_dir(dir)
end)

describe("tasks app on the message bus (server + worker processes, RabbitMQ)", function()
  it("jararaca declare declared the app's topology: its exchanges and a queue per handler", function()
    for _, x in ipairs { "tasks", "tasks.retry", "tasks.dlx" } do assert.is_true(ac:exchange_exists(x)) end
    for _, q in ipairs { "tasks.process", "tasks.done", "tasks.dlq" } do assert.truthy(ac:queue_info(q)) end
    -- declaring again is fine
    local status, out, err = app:jararaca("declare", P.APP)
    assert.equal(0, status, out .. err)
  end)

  it("POST /tasks answers 201 with no worker running; the message waits in RabbitMQ, and a worker started later "
    .. "processes it", function()
    local t = app:create("write docs")
    -- staged: published (and confirmed) after the commit, before the answer
    assert.equal(1, ready("tasks.process"))
    assert.is_false(app:get(t.id).processed)

    app:start_worker()
    app:until_processed(t)
    wait.until_true(function() return ready("tasks.process") == 0 end, "tasks.process is empty (acked)", T)
  end)

  it("processing publishes task.done { id, name } after its commit; TaskWorker.done handles it", function()
    local t = app:create("announce me")
    wait.until_true(function() return done_seen[t.id] end, "task.done reached the spec's queue", T)
    assert.same({ id = t.id, name = "announce me" }, done_seen[t.id].body)
    assert.equal("application/json", done_seen[t.id].content_type)
    assert.is_true(app:get(t.id).processed) -- published after the commit: the row is there before the message
    app:until_done_logged(t)
  end)

  it('a task named "fail..." is retried max_retries (3) times through the delay queues, then dead-lettered',
    function()
      local t = app:create("fail on purpose")
      local dead = wait.until_true(function()
        for _, d in ipairs(dead_letters()) do
          if d.body:find(t.id, 1, true) then return d end
        end
      end, "the failing task is dead-lettered", T)
      P.assert_dead_task(dead, t)
      assert.same({ "process", "tasks.process" }, { dead.handler, dead.queue })
      P.assert_failing_attempts(app, t)
      assert.is_nil(done_seen[t.id])
      assert.equal(0, ready("tasks.process"))
    end)

  it("the worker exits 0 on SIGTERM", function()
    assert(app.worker:kill("SIGTERM"))
    assert.equal(0, app.worker:wait(T), app:worker_output())
    app.worker = nil
  end)
end)
