-- The tasks app on the message bus, real processes on real files: `jararaca
-- server` publishes "task" after a POST /tasks commits, `jararaca worker`
-- runs TaskWorker (process: marks the task processed and publishes
-- "task.done"; done: logs it), on the embedded broker in its default file,
-- tasks.bus.db next to TASKS_DB. The spec opens that file too: to read the
-- queues and dead letters, and to bind a queue of its own to "task.done" so
-- it sees what the worker published.
local process = require "jararaca.core.process"
local embedded = require "jararaca.bus.embedded"
local json = require "jararaca.json"
local server = require "spec.support.server"
local client = require "spec.support.client"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"

local APP = server.root .. "/examples/tasks/app.lua"
local SPY = "spec.task_done" -- the spec's own queue, bound to "task.done"
local T = 15 -- seconds any awaited state may take (a loaded machine)

local dir, env, srv, worker, worker_log, broker

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
  env = { TASKS_DB = dir .. "/tasks.db", JARARACA_LOG_LEVEL = "info" }
  srv = server.start(APP, { "--worker-timeout", "0" }, env)
  -- the server opened the broker at startup (the app has handlers) and bound their queues
  broker = assert(embedded.open(dir .. "/tasks.bus.db"))
  assert(broker:bind(SPY, "task.done"))
end)

teardown(function()
  if worker then worker:kill("SIGKILL"); worker:wait(5) end
  if srv then srv:stop() end
  if broker then broker:close() end
  files.remove_dir(dir)
end)

describe("tasks app on the message bus (server + worker processes, embedded broker)", function()
  it("POST /tasks answers 201 with no worker running; the message waits, and a worker started later processes it",
    function()
      local t = create("write docs")
      -- staged: in the queue once the request is answered (published after the commit)
      local q = queue("tasks.process")
      assert.equal(1, q.total)
      assert.equal(1, q.ready)
      assert.is_false(get(t.id).processed)

      start_worker()
      local got = wait.until_true(function()
        local x = get(t.id)
        return x.processed and x
      end, "the task is processed", T)
      assert.equal("write docs", got.name)
      assert.is_false(got.done)
      assert.is_true(got.updated_at > t.updated_at)
      wait.until_true(function() return queue("tasks.process").total == 0 end, "tasks.process is empty (acked)", T)
    end)

  it("processing publishes task.done { id, name } after its commit; TaskWorker.done handles it", function()
    local t = create("announce me")
    wait.until_true(function() drain_spy(); return done_seen[t.id] end, "task.done reached the spec's queue", T)
    assert.same({ id = t.id, name = "announce me" }, done_seen[t.id].body)
    assert.equal("application/json", done_seen[t.id].headers["content-type"])
    assert.is_true(get(t.id).processed) -- published after the commit: the row is there before the message
    -- the app's own handler of task.done got its copy too (fan-out)
    local line = ("task %s (announce me) is done"):format(t.id)
    wait.until_true(function() return worker_output():find(line, 1, true) end, "TaskWorker.done logged it", T)
  end)

  it('a task named "fail..." is retried max_retries (3) times, then dead-lettered with its attempt count', function()
    local t = create("fail on purpose")
    local dead = wait.until_true(function()
      for _, d in ipairs(assert(broker:dlq_list("tasks.process", 1000))) do
        if d.body:find(t.id, 1, true) then return d end
      end
    end, "the failing task is dead-lettered", T)
    assert.equal(3, dead.attempt) -- retries after the first attempt: max_retries
    assert.equal(4, dead.deliveries)
    assert.equal("task", dead.topic)
    assert.same({ id = t.id, name = "fail on purpose" }, assert(json.decode(dead.body)))
    assert.equal("application/json", dead.headers["content-type"])
    assert.truthy(dead.reason:find("failed after 4 attempt(s): task " .. t.id .. ': its name starts with "fail"',
      1, true), dead.reason)
    -- the worker's log shows every attempt, each failed run rolled back: never processed, no task.done
    local out = worker_output()
    for n = 1, 3 do
      assert.truthy(out:find(("failed (attempt %d of 4)"):format(n), 1, true), out)
    end
    assert.truthy(out:find("dead-lettered: failed after 4 attempt(s)", 1, true), out)
    assert.is_false(get(t.id).processed)
    drain_spy()
    assert.is_nil(done_seen[t.id])
    assert.equal(1, queue("tasks.process").dead)
  end)

  it("the Task schema in the OpenAPI document has the processed field (POST's NewTask does not)", function()
    local doc = client.get_json(srv.port, "/openapi.json")
    local task = doc.components.schemas.Task
    assert.same({ type = "boolean" }, task.properties.processed)
    local required = {}
    for _, k in ipairs(task.required) do required[k] = true end
    assert.is_true(required.processed)
    assert.is_nil(doc.components.schemas.NewTask.properties.processed)
  end)
end)
