-- spec/support/server.lua: start the real jararaca binary on a free port.
--
--   local srv = server.start("spec/integration/apps/basic.lua", { "--workers", "2" }, { ENV = "x" })
--   srv.port, srv.log (path of its stderr/stdout log), srv:stop() -> exit status
local process = require "jararaca.core.process"
local sched = require "jararaca.sched"
local client = require "spec.support.client"

local M = {}

M.bin = os.getenv("JARARACA_BIN") or "build/jararaca"
M.root = os.getenv("JARARACA_SOURCE_DIR") or "."

local Server = {}
Server.__index = Server

local counter = 0

--- Start `jararaca server app args...`; waits until the port accepts
--- connections (or the process died). Raises on failure with the log.
function M.start(app, args, env, opts)
  opts = opts or {}
  counter = counter + 1
  local port = opts.port or client.free_port()
  local log = os.tmpname()
  local argv = { M.bin, "server", app, "--port", tostring(port), "--host", "127.0.0.1" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  argv.env = env
  argv.stdout = log
  argv.stderr = log
  local p = assert(process.spawn(argv))
  local srv = setmetatable({ proc = p, port = port, log = log, pid = p:pid() }, Server)
  if opts.no_wait then return srv end
  -- Wait for the listener: poll connect, but stop early when the process exits.
  local deadline = sched.clock() + (opts.startup_timeout or 15)
  while true do
    local status = p:wait(0.02)
    if status then error(("server exited during startup (status %s):\n%s"):format(status, srv:output()), 2) end
    local c = client.connect(port, 1)
    if c then c:close(); break end
    if sched.clock() > deadline then
      p:kill("SIGKILL")
      error("server did not start listening:\n" .. srv:output(), 2)
    end
  end
  return srv
end

function Server:output()
  local f = io.open(self.log)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

--- Send a signal and wait for the exit. Returns exit status, signal.
function Server:stop(sig, timeout)
  self.proc:kill(sig or "SIGTERM")
  local status, term = self.proc:wait(timeout or 20)
  if status == nil then
    self.proc:kill("SIGKILL")
    status, term = self.proc:wait(5)
  end
  os.remove(self.log)
  return status, term
end

--- Wait for the process to exit by itself.
function Server:wait(timeout)
  return self.proc:wait(timeout or 20)
end

return M
