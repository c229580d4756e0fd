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
local process = require "jararaca.core.process"
local amqp = require "jararaca.core.amqp"
local json = require "jararaca.json"
local server = require "spec.support.server"
local client = require "spec.support.client"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local rabbitmq = require "spec.support.rabbitmq"

local APP = server.root .. "/examples/tasks/app.lua"
local SPY = "spec.tasks.task_done" -- the spec's own queue, bound to "task.done"
local T = 15 -- seconds any awaited state may take (a loaded machine)

local dir, env, srv, worker, worker_log, ac

local function jararaca(...)
  local argv = { server.bin, env = env }
  for _, a in ipairs { ... } do argv[#argv + 1] = a end
  return run.run(argv, 60)
end

local function start_worker()
  worker_log = dir .. "/worker.log"
  worker = assert(process.spawn { server.bin, "worker", APP, env = env, stdout = worker_log, stderr = worker_log })
end

local function worker_output()
  return run.read(worker_log) or ""
end

local function create(name)
  local res = assert(client.request(srv.port, "POST", "/tasks",
    { headers = { ["Content-Type"] = "application/json" }, body = assert(json.encode { name = name }) }))
  assert.equal(201, res.status, res.body)
  return assert(json.decode(res.body))
end

local function get(id)
  return client.get_json(srv.port, "/tasks/" .. id)
end

-- Ready messages in a queue (not counting those delivered and not acked yet).
local function ready(queue)
  return assert(ac:queue_info(queue)).messages
end

-- What reached the spy queue, by task id.
local done_seen = {}

-- The dead letters of TaskWorker.process (`jararaca dlq list --json`).
local function dead_letters()
  local status, out, err = jararaca("dlq", "list", APP, "--handler", "process", "--limit", "100", "--json")
  assert.equal(0, status, out .. err)
  return assert(json.decode(out)) -- a list: { handler, queue, id, topic, body, headers, attempt, reason, ... }
end

setup(function()
  dir = files.temp_dir("tasks-amqp")
  local url = rabbitmq.url()
  env = { TASKS_DB = dir .. "/tasks.db", JARARACA_BUS_URL = url, JARARACA_LOG_LEVEL = "info" }
  ac = assert(amqp.connect(url))
  -- a queue left by an earlier run on this node must not hold old messages
  for _, q in ipairs { "tasks.process", "tasks.done", "tasks.dlq", SPY } do
    local ok, err, code = ac:purge(q)
    assert(ok or code == "not_found", err)
  end
  local status, out, err = jararaca("declare", APP)
  assert.equal(0, status, out .. err)
  assert(ac:declare_queue(SPY))
  assert(ac:bind(SPY, "tasks", "task.done"))
  ac:consume(SPY, 50, function(d)
    local body = assert(json.decode(d.body))
    done_seen[body.id] = { body = body, headers = d.headers, content_type = d.content_type }
    d:ack()
  end)
  srv = server.start(APP, { "--worker-timeout", "0" }, env)
end)

teardown(function()
  if worker then worker:kill("SIGKILL"); worker:wait(5) end
  if srv then srv:stop() end
  if ac then ac:close() end
  files.remove_dir(dir)
end)

describe("tasks app on the message bus (server + worker processes, RabbitMQ)", function()
  it("jararaca declare declares the app's topology: its exchanges and a queue per handler", function()
    for _, x in ipairs { "tasks", "tasks.retry", "tasks.dlx" } do assert.is_true(ac:exchange_exists(x)) end
    for _, q in ipairs { "tasks.process", "tasks.done", "tasks.dlq" } do assert.truthy(ac:queue_info(q)) end
  end)

  it("POST /tasks answers 201 with no worker running; the message waits in RabbitMQ, and a worker started later "
    .. "processes it", function()
    local t = create("write docs")
    -- staged: published (and confirmed) after the commit, before the answer
    assert.equal(1, ready("tasks.process"))
    assert.is_false(get(t.id).processed)

    start_worker()
    local got = wait.until_true(function()
      local x = get(t.id)
      return x.processed and x
    end, "the task is processed", T)
    assert.equal("write docs", got.name)
    assert.is_false(got.done)
    assert.is_true(got.updated_at > t.updated_at)
    wait.until_true(function() return ready("tasks.process") == 0 end, "tasks.process is empty (acked)", T)
  end)

  it("processing publishes task.done { id, name } after its commit; TaskWorker.done handles it", function()
    local t = create("announce me")
    wait.until_true(function() return done_seen[t.id] end, "task.done reached the spec's queue", T)
    assert.same({ id = t.id, name = "announce me" }, done_seen[t.id].body)
    assert.equal("application/json", done_seen[t.id].content_type)
    assert.is_true(get(t.id).processed) -- published after the commit: the row is there before the message
    -- the app's own handler of task.done got its copy too (fan-out)
    local line = ("task %s (announce me) is done"):format(t.id)
    wait.until_true(function() return worker_output():find(line, 1, true) end, "TaskWorker.done logged it", T)
  end)

  it('a task named "fail..." is retried max_retries (3) times through the delay queues, then dead-lettered',
    function()
      local t = create("fail on purpose")
      local dead = wait.until_true(function()
        for _, d in ipairs(dead_letters()) do
          if d.body:find(t.id, 1, true) then return d end
        end
      end, "the failing task is dead-lettered", T)
      assert.equal(3, dead.attempt) -- retries after the first attempt: max_retries
      assert.same({ "process", "tasks.process", "task" }, { dead.handler, dead.queue, dead.topic })
      assert.same({ id = t.id, name = "fail on purpose" }, assert(json.decode(dead.body)))
      assert.equal("application/json", dead.headers["content-type"])
      assert.truthy(dead.reason:find("failed after 4 attempt(s): task " .. t.id .. ': its name starts with "fail"',
        1, true), dead.reason)
      -- the worker's log shows every attempt; each failed run rolled back: never processed, no task.done
      local out = worker_output()
      for n = 1, 3 do
        assert.truthy(out:find(("failed (attempt %d of 4)"):format(n), 1, true), out)
      end
      assert.truthy(out:find("dead-lettered: failed after 4 attempt(s)", 1, true), out)
      assert.is_false(get(t.id).processed)
      assert.is_nil(done_seen[t.id])
      assert.equal(0, ready("tasks.process"))
    end)

  it("the worker exits 0 on SIGTERM", function()
    assert(worker:kill("SIGTERM"))
    assert.equal(0, worker:wait(T), worker_output())
    worker = nil
  end)
end)
