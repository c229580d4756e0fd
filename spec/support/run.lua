-- spec/support/run.lua: run a command to completion, and temporary files.
--
--   local run = require "spec.support.run"
--   local status, stdout, stderr = run.run({ "node", "--version" }, 30)
--   local path = run.temp_file("text", ".lua")    -- removed by run.cleanup()
local process = require "jararaca.core.process"

local M = {}

--- The contents of a file, or nil.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Run argv (argv.env is kept) to completion within timeout seconds (a
--- command still running then is killed): exit status (nil when killed),
--- stdout, stderr.
function M.run(argv, timeout)
  local out, err = os.tmpname(), os.tmpname()
  local spec = { env = argv.env }
  for i, a in ipairs(argv) do spec[i] = a end
  spec.stdout, spec.stderr = out, err
  local p, serr = process.spawn(spec)
  if not p then
    os.remove(out); os.remove(err)
    return nil, "", serr -- "cannot spawn <argv[1]>: <why>"
  end
  local status = p:wait(timeout or 120)
  if status == nil then
    p:kill("SIGKILL")
    p:wait(5)
  end
  local o, e = M.read(out) or "", M.read(err) or ""
  os.remove(out); os.remove(err)
  return status, o, e
end

--- Stop a child process (jararaca.core.process): SIGTERM, SIGKILL when it
--- still runs after grace seconds (default 10), and wait for its exit.
function M.stop(proc, grace)
  proc:kill("SIGTERM")
  if not proc:wait(grace or 10) then
    proc:kill("SIGKILL")
    proc:wait(5)
  end
end

--- The stop() and close() of a service a spec runs as its child, for
--- tables { proc, dir } (spec/support/redis.lua, prometheus.lua): stop it
--- (M.stop) / stop it and remove its directory.
M.Child = {}
function M.Child:stop()
  if not self.proc then return end
  M.stop(self.proc)
  self.proc = nil
end
function M.Child:close()
  self:stop()
  M.run({ "rm", "-rf", self.dir }, 30)
end

local temps = {}

--- A new temporary file holding text, its name ending with suffix.
function M.temp_file(text, suffix)
  local base = os.tmpname()
  os.remove(base)
  local path = base .. (suffix or "")
  local f = assert(io.open(path, "wb"))
  assert(f:write(text or ""))
  f:close()
  temps[#temps + 1] = path
  return path
end

--- A temporary path, not created, ending with suffix.
function M.temp_path(suffix)
  local base = os.tmpname()
  os.remove(base)
  temps[#temps + 1] = base .. (suffix or "")
  return base .. (suffix or "")
end

--- Remove every temporary file made so far.
function M.cleanup()
  for _, p in ipairs(temps) do os.remove(p) end
  temps = {}
end

return M
