-- spec/support/prometheus.lua: a real Prometheus scraping a server the spec
-- started (spec/services/prometheus.sh run; Debian's prometheus), and its
-- HTTP query API.
--
--   local prometheus = require "spec.support.prometheus"
--   local p = prometheus.private("127.0.0.1:" .. srv.port, "/metrics")  -- scrapes every 1 s
--   p:query("jararaca_http_requests_total")   -- the result list of /api/v1/query (instant vector)
--   p:close()                                 -- stop it (SIGTERM, by its PID) and remove its dir
--
-- It runs in the foreground as our child: `jararaca test` kills one a
-- failed spec leaves running.
local process = require "jararaca.core.process"
local sched = require "jararaca.sched"
local client = require "spec.support.client"
local run = require "spec.support.run"
local server = require "spec.support.server"
local cjson = require "cjson"

local M = {}

local SCRIPT = server.root .. "/spec/services/prometheus.sh"

local Private = {}
Private.__index = Private

local function output(self) return run.read(self.dir .. "/prometheus.out") or "" end

-- Wait until GET /-/ready answers 200 (or the process died).
local function wait_ready(self)
  local deadline = sched.clock() + 30
  while true do
    local status = self.proc:wait(0.05)
    if status then
      self.proc = nil
      error(("prometheus exited during startup (status %s):\n%s"):format(status, output(self)), 3)
    end
    if not self.port then
      local p = run.read(self.dir .. "/prometheus.port")
      self.port = p and tonumber(p:match("%d+"))
    end
    local res = self.port and client.request(self.port, "GET", "/-/ready", { timeout = 1 })
    if res and res.status == 200 then return end
    assert(sched.clock() < deadline, "prometheus was not ready within 30 s:\n" .. output(self))
  end
end

--- The `result` list of an instant query (GET /api/v1/query); raises when
--- Prometheus does not answer "success".
function Private:query(q)
  local target = "/api/v1/query?query=" .. q:gsub("[^%w_%-%.~]", function(c) return ("%%%02X"):format(c:byte()) end)
  local res = assert(client.request(self.port, "GET", target, { timeout = 5 }))
  assert(res.status == 200, ("GET %s: %d %s"):format(target, res.status, res.body))
  local doc = cjson.decode(res.body)
  assert(doc.status == "success", res.body)
  return doc.data.result
end

--- The scrape targets' states (GET /api/v1/targets): activeTargets.
function Private:targets()
  local doc = client.get_json(self.port, "/api/v1/targets")
  return doc.data.activeTargets
end

--- stop(): SIGTERM, then SIGKILL after 10 s, and wait for the exit;
--- close(): stop it and remove its directory.
Private.stop, Private.close = run.Child.stop, run.Child.close


--- A Prometheus of the caller's own on a free port, scraping
--- http://target/path every second.
function M.private(target, path)
  local dir = os.tmpname()
  os.remove(dir)
  assert(run.run({ "mkdir", "-p", dir }, 10) == 0, "cannot create " .. dir)
  local self = setmetatable({ dir = dir }, Private)
  self.proc = assert(process.spawn {
    SCRIPT, "run", dir, target, path or "/metrics",
    stdout = dir .. "/prometheus.out", stderr = dir .. "/prometheus.out",
  })
  wait_ready(self)
  return self
end

return M
