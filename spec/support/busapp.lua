-- spec/support/busapp.lua: spec/integration/apps/bus_app.lua run as real
-- processes (`jararaca server` + `jararaca worker`), for the bus specs of
-- either broker (bus_spec.lua: embedded; bus_amqp_spec.lua: RabbitMQ).
--
--   local app = busapp.start(dir, { JARARACA_BUS_URL = ... })   -- the server, the app's database open
--   local w = app:start_worker("worker", { "--groups", "jobs" })  -- { proc, log }
--   app:create("ok-1", "ok", "acme"); app:until_status("ok-1", "done"); app:runs("ok-1")
--   app:stop()
local process = require "jararaca.core.process"
local dbmod = require "jararaca.db"
local json = require "jararaca.json"
local server = require "spec.support.server"
local client = require "spec.support.client"
local run = require "spec.support.run"
local wait = require "spec.support.wait"

local M = {}

M.APP = server.root .. "/spec/integration/apps/bus_app.lua"

local App = {}
App.__index = App

--- Start the app's server in dir (its database dir/app.db) with env added.
function M.start(dir, extra_env)
  local env = { BUS_APP_DB = dir .. "/app.db", JARARACA_LOG_LEVEL = "info" }
  for k, v in pairs(extra_env or {}) do env[k] = v end
  local self = setmetatable({ dir = dir, env = env, workers = {} }, App)
  self.srv = server.start(M.APP, { "--worker-timeout", "0" }, env)
  self.db = assert(dbmod.open { path = dir .. "/app.db" })
  return self
end

--- A `jararaca worker` of the app (args added); its output in dir/<name>.log.
function App:start_worker(name, args)
  local log = ("%s/%s.log"):format(self.dir, name)
  local argv = { server.bin, "worker", M.APP, env = self.env, stdout = log, stderr = log }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local w = { proc = assert(process.spawn(argv)), log = log }
  self.workers[#self.workers + 1] = w
  return w
end

--- What a worker wrote so far.
function M.output(w)
  return run.read(w.log) or ""
end

function App:rows(sql, params)
  local tx = self.db:begin("read")
  local rows = assert(tx:query(sql, params))
  tx:commit()
  return rows
end

function App:post(path, body)
  return assert(client.request(self.srv.port, "POST", path,
    { headers = { ["Content-Type"] = "application/json" }, body = assert(json.encode(body)) }))
end

--- POST /jobs (201 asserted): the job is inserted and "job.<kind>" published.
function App:create(id, kind, tenant)
  local res = self:post("/jobs", { id = id, kind = kind, tenant = tenant })
  if res.status ~= 201 then error(("POST /jobs %s: expected 201, got %d: %s"):format(id, res.status, res.body), 2) end
end

function App:job(id)
  return client.get_json(self.srv.port, "/jobs/" .. id)
end

function App:until_status(id, status, what)
  return wait.until_true(function()
    local j = self:job(id)
    return j.status == status and j
  end, what or (id .. " is " .. status), 15)
end

--- The runs the handlers recorded for job id, in order.
function App:runs(id)
  local out = {}
  for _, r in ipairs(self:rows("SELECT attempt, retry_count, tenant, handler FROM runs WHERE id = ? ORDER BY rowid",
    { id })) do
    out[#out + 1] = r
  end
  return out
end

--- Open the gate the "hold" handler waits for.
function App:open_gate(name)
  local tx = self.db:begin("write")
  assert(tx:execute("INSERT INTO gates (name) VALUES (?)", { name }))
  assert(tx:commit())
end

--- The dead letters of handler queue "busapp.<queue>" on broker (either
--- kind: both have dlq_list), by message id.
function M.dead(broker, queue)
  local out = {}
  for _, d in ipairs(assert(broker:dlq_list("busapp." .. queue, 1000))) do out[d.id] = d end
  return out
end

--- Wait for a dead letter of that queue for which pred(d) holds.
function M.dead_where(broker, queue, pred, what)
  return wait.until_true(function()
    for _, d in pairs(M.dead(broker, queue)) do if pred(d) then return d end end
  end, what, 15, 0.05)
end

--- Kill what is left and close the database.
function App:stop()
  for _, w in ipairs(self.workers) do
    w.proc:kill("SIGKILL")
    w.proc:wait(5)
  end
  if self.srv then self.srv:stop() end
  if self.db then self.db:close() end
end

return M
