-- spec/support/rabbitmq.lua: the tests' RabbitMQ (a real private node,
-- started by spec/services/rabbitmq.sh; never a system-wide broker).
--
--   local rabbitmq = require "spec.support.rabbitmq"
--   rabbitmq.url()                        -- the run's node: the ctest fixture's
--                                         -- ($JR_TEST_SERVICES/rabbitmq.url), else one started
--                                         -- here on first use (6-10 s) and stopped when the run ends
--   rabbitmq.ctl("list_queues", "name")   -- rabbitmqctl against it: its output, or nil, err
--   rabbitmq.tool("amqp-get", "-q", q)    -- an amqp-tools command with --url=<the node>
--   local node = rabbitmq.private()       -- a node of the caller's own (6-10 s): node.url,
--   node.restart(); node.stop()           -- restarted keeping its data, stopped by PID
--
-- One node per run: booting one takes seconds, so specs share it and keep
-- to queue names of their own.
local sys = require "jararaca.core.sys"
local run = require "spec.support.run"
local server = require "spec.support.server"

local M = {}

local SCRIPT = server.root .. "/spec/services/rabbitmq.sh"

local function url_in(dir)
  local url = dir and dir ~= "" and run.read(dir .. "/rabbitmq.url")
  return url and (url:gsub("%s+$", "")), dir
end

-- The node's directory and URL: the fixture's, an earlier spec file's
-- (busted loads this module afresh per file: the environment carries it),
-- or a new one.
local function node()
  local url, dir = url_in(os.getenv("JR_TEST_SERVICES"))
  if url then return url, dir end
  url, dir = url_in(os.getenv("JR_TEST_RABBITMQ"))
  if url then return url, dir end
  dir = os.tmpname()
  os.remove(dir)
  local status, out, err = run.run({ SCRIPT, "start", dir }, 120)
  assert(status == 0, "cannot start a RabbitMQ node through " .. SCRIPT .. ":\n" .. out .. err)
  assert(sys.setenv("JR_TEST_RABBITMQ", dir))
  require("busted").subscribe({ "suite", "end" }, function()
    run.run({ SCRIPT, "stop", dir }, 120)
    run.run({ "rm", "-rf", dir }, 30)
    sys.setenv("JR_TEST_RABBITMQ", nil)
    return nil, true
  end)
  return url_in(dir)
end

--- The run's node's URL (amqp://guest:guest@127.0.0.1:PORT).
function M.url() return (node()) end

--- rabbitmqctl against the node: its output, or nil, err.
function M.ctl(...)
  local _, dir = node()
  local argv = { SCRIPT, "ctl", dir }
  for _, a in ipairs { ... } do argv[#argv + 1] = tostring(a) end
  local status, out, err = run.run(argv, 60)
  if status ~= 0 then return nil, ("rabbitmqctl %s: %s"):format(table.concat({ ... }, " "), err ~= "" and err or out) end
  return (out:gsub("\n$", ""))
end

--- An amqp-tools command (amqp-publish, amqp-get, amqp-declare-queue...)
--- against the node: its output, or nil, err.
function M.tool(cmd, ...)
  local argv = { cmd, "--url=" .. M.url() }
  for _, a in ipairs { ... } do argv[#argv + 1] = tostring(a) end
  local status, out, err = run.run(argv, 30)
  if status ~= 0 then return nil, ("%s: %s"):format(cmd, err ~= "" and err or out) end
  return (out:gsub("\n$", ""))
end

--- A node of the caller's own, for a test that restarts or stops it (on
--- the run's node that would disturb the other specs): { url, dir,
--- restart(), stop() }. restart keeps the ports and the data (durable
--- queues, persistent messages) and returns once the node is up again;
--- stop stops it by PID and removes its directory.
function M.private()
  local dir = os.tmpname()
  os.remove(dir)
  local status, out, err = run.run({ SCRIPT, "start", dir }, 120)
  assert(status == 0, "cannot start a RabbitMQ node through " .. SCRIPT .. ":\n" .. out .. err)
  local own = { url = (url_in(dir)), dir = dir }
  function own.restart()
    local st, o, e = run.run({ SCRIPT, "restart", dir }, 120)
    assert(st == 0, "cannot restart the RabbitMQ node in " .. dir .. ":\n" .. o .. e)
  end
  -- rabbitmqctl against it (e.g. stop_app / start_app: the broker refuses
  -- connections in between, its data kept): true | raises
  function own.ctl(...)
    local st, o, e = run.run({ SCRIPT, "ctl", dir, ... }, 120)
    assert(st == 0, "rabbitmqctl " .. table.concat({ ... }, " ") .. " failed:\n" .. o .. e)
    return true
  end
  function own.stop()
    run.run({ SCRIPT, "stop", dir }, 120)
    run.run({ "rm", "-rf", dir }, 30)
  end
  return own
end

return M
