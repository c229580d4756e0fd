-- examples/tasks/spec/bus_processes.lua: the tasks app's server and worker
-- as real processes, for the message-bus specs of either broker
-- (worker_spec.lua: embedded; worker_amqp_spec.lua: RabbitMQ), and the
-- checks both make of what the worker did.
--
--   local P = require "examples.tasks.spec.bus_processes"
--   local app = P.start(dir, env)        -- `jararaca server` (env: TASKS_DB, JARARACA_BUS_URL...)
--   app:start_worker()                   -- `jararaca worker`, its log in dir/worker.log
--   local t = app:create("name")         -- POST /tasks (201): the task
--   app:get(id) / app:until_processed(t) / app:until_done_logged(t) / app:worker_output()
--   app:jararaca("dlq", "list", P.APP) / P.jararaca(env, "declare", P.APP)   -- a command: status, out, err
--   P.assert_dead_task(dead, t)          -- the failing task's dead letter
--   P.assert_failing_attempts(app)       -- its attempts in the worker's log
--   app:stop()
local process = require "jararaca.core.process"
local json = require "jararaca.json"
local server = require "spec.support.server"
local client = require "spec.support.client"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local assert = require "luassert" -- busted's, as the specs see it (a module has the plain one)

local M = {}

M.APP = server.root .. "/examples/tasks/app.lua"
M.T = 15 -- seconds any awaited state may take (a loaded machine)

local App = {}
App.__index = App

--- `jararaca server` on the tasks app with env.
function M.start(dir, env)
  local srv = server.start(M.APP, { "--worker-timeout", "0" }, env)
  return setmetatable({ dir = dir, env = env, srv = srv, log = dir .. "/worker.log" }, App)
end

function App:start_worker()
  self.worker = assert(process.spawn { server.bin, "worker", M.APP, env = self.env, stdout = self.log,
    stderr = self.log })
  return self.worker
end

function App:worker_output()
  return run.read(self.log) or ""
end

--- A `jararaca` command with environment env: status, stdout, stderr.
function M.jararaca(env, ...)
  local argv = { server.bin, env = env }
  for _, a in ipairs { ... } do argv[#argv + 1] = a end
  return run.run(argv, 60)
end

--- The same with the app's environment.
function App:jararaca(...)
  return M.jararaca(self.env, ...)
end

function App:create(name)
  local res = assert(client.request(self.srv.port, "POST", "/tasks",
    { headers = { ["Content-Type"] = "application/json" }, body = assert(json.encode { name = name }) }))
  assert.equal(201, res.status, res.body)
  return assert(json.decode(res.body))
end

function App:get(id)
  return client.get_json(self.srv.port, "/tasks/" .. id)
end

--- Wait until the worker processed task t (as GET shows it): the task.
function App:until_processed(t)
  local got = wait.until_true(function()
    local x = self:get(t.id)
    return x.processed and x
  end, "the task is processed", M.T)
  assert.equal(t.name, got.name)
  assert.is_false(got.done)
  assert.is_true(got.updated_at > t.updated_at)
  return got
end

--- TaskWorker.done logged task t's "task.done" (fan-out to the app's own handler).
function App:until_done_logged(t)
  local line = ("task %s (%s) is done"):format(t.id, t.name)
  wait.until_true(function() return self:worker_output():find(line, 1, true) end, "TaskWorker.done logged it", M.T)
end

function App:stop()
  if self.worker then self.worker:kill("SIGKILL"); self.worker:wait(5) end
  if self.srv then self.srv:stop() end
end

--- The dead letter of the failing task t (named "fail..."): its attempts,
--- topic, body, headers and reason.
function M.assert_dead_task(dead, t)
  assert.equal(3, dead.attempt) -- retries after the first attempt: max_retries
  assert.equal("task", dead.topic)
  assert.same({ id = t.id, name = t.name }, assert(json.decode(dead.body)))
  assert.equal("application/json", dead.headers["content-type"])
  assert.truthy(dead.reason:find("failed after 4 attempt(s): task " .. t.id .. ': its name starts with "fail"',
    1, true), dead.reason)
end

--- The worker's log shows every failed attempt, then the dead letter; each
--- failed run rolled back, so the task was never processed.
function M.assert_failing_attempts(app, t)
  local out = app:worker_output()
  for n = 1, 3 do
    assert.truthy(out:find(("failed (attempt %d of 4)"):format(n), 1, true), out)
  end
  assert.truthy(out:find("dead-lettered: failed after 4 attempt(s)", 1, true), out)
  assert.is_false(app:get(t.id).processed)
end

return M
