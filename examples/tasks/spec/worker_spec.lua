-- The tasks app on the message bus, real processes on real files: `jararaca
-- server` publishes "task" after a POST /tasks commits, `jararaca worker`
-- runs TaskWorker (process: marks the task processed and publishes
-- "task.done"; done: logs it), on the embedded broker in its default file,
-- tasks.bus.db next to TASKS_DB. The spec opens that file too: to read the
-- queues and dead letters, and to bind a queue of its own to "task.done" so
-- it sees what the worker published. (worker_amqp_spec.lua: the same on
-- RabbitMQ; bus_processes.lua: the processes and the checks both make.)
local embedded = require "jararaca.bus.embedded"
local json = require "jararaca.json"
local client = require "spec.support.client"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local P = require "examples.tasks.spec.bus_processes"

local SPY = "spec.task_done" -- the spec's own queue, bound to "task.done"
local T = P.T

local dir, app, broker

local function queue(name)
  return assert(broker:stats()).queues[name] or { total = 0, ready = 0, dead = 0 }
end

-- The messages of the spy queue (fetched and acked), by task id.
local done_seen = {}
local function drain_spy()
  for _, d in ipairs(assert(broker:fetch(SPY, 100, 30))) do
    local body = assert(json.decode(d.body))
    done_seen[body.id] = { body = body, headers = d.headers }
    assert(broker:ack(d))
  end
end

setup(function()
  dir = files.temp_dir("tasks-bus")
  app = P.start(dir, { TASKS_DB = dir .. "/tasks.db", JARARACA_LOG_LEVEL = "info" })
  -- the server opened the broker at startup (the app has handlers) and bound their queues
  broker = assert(embedded.open(dir .. "/tasks.bus.db"))
  assert(broker:bind(SPY, "task.done"))
end)

teardown(function()
  if app then app:stop() end
  if broker then broker:close() end
  files.remove_dir(dir)
end)

describe("tasks app on the message bus (server + worker processes, embedded broker)", function()
  it("POST /tasks answers 201 with no worker running; the message waits, and a worker started later processes it",
    function()
      local t = app:create("write docs")
      -- staged: in the queue once the request is answered (published after the commit)
      local q = queue("tasks.process")
      assert.equal(1, q.total)
      assert.equal(1, q.ready)
      assert.is_false(app:get(t.id).processed)

      app:start_worker()
      app:until_processed(t)
      wait.until_true(function() return queue("tasks.process").total == 0 end, "tasks.process is empty (acked)", T)
    end)

  it("processing publishes task.done { id, name } after its commit; TaskWorker.done handles it", function()
    local t = app:create("announce me")
    wait.until_true(function() drain_spy(); return done_seen[t.id] end, "task.done reached the spec's queue", T)
    assert.same({ id = t.id, name = "announce me" }, done_seen[t.id].body)
    assert.equal("application/json", done_seen[t.id].headers["content-type"])
    assert.is_true(app:get(t.id).processed) -- published after the commit: the row is there before the message
    app:until_done_logged(t)
  end)

  it('a task named "fail..." is retried max_retries (3) times, then dead-lettered with its attempt count', function()
    local t = app:create("fail on purpose")
    local dead = wait.until_true(function()
      for _, d in ipairs(assert(broker:dlq_list("tasks.process", 1000))) do
        if d.body:find(t.id, 1, true) then return d end
      end
    end, "the failing task is dead-lettered", T)
    P.assert_dead_task(dead, t)
    assert.equal(4, dead.deliveries)
    P.assert_failing_attempts(app, t)
    drain_spy()
    assert.is_nil(done_seen[t.id])
    assert.equal(1, queue("tasks.process").dead)
  end)

  it("the Task schema in the OpenAPI document has the processed field (POST's NewTask does not)", function()
    local doc = client.get_json(app.srv.port, "/openapi.json")
    local task = doc.components.schemas.Task
    assert.same({ type = "boolean" }, task.properties.processed)
    local required = {}
    for _, k in ipairs(task.required) do required[k] = true end
    assert.is_true(required.processed)
    assert.is_nil(doc.components.schemas.NewTask.properties.processed)
  end)
end)
