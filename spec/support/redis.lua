-- spec/support/redis.lua: the tests' Redis (a real redis-server, started by
-- spec/services/redis.sh; never a system-wide one).
--
--   local redis = require "spec.support.redis"
--   redis.url()                      -- the run's shared server: the ctest fixture's
--                                    -- ($JR_TEST_SERVICES/redis.url), else one started
--                                    -- here on first use and stopped when the run ends
--   redis.cli("SET", "k", "v")       -- redis-cli against it: its output, or nil, err
--   redis.cli_at(url, "PING")         -- the same against any URL
--   local own = redis.private { "--requirepass", "s" }   -- a server of the spec's own,
--   own.url, own.port, own:cli(...), own:stop(), own:start(), own:restart(), own:close()
--
-- Outage tests stop and restart a private server (same port, same options),
-- never the shared one, which other specs may be using. Private servers run
-- in the foreground as our children: `jararaca test` kills any a failed
-- spec leaves running.
local process = require "jararaca.core.process"
local sys = require "jararaca.core.sys"
local sched = require "jararaca.sched"
local client = require "spec.support.client"
local run = require "spec.support.run"
local server = require "spec.support.server"

local M = {}

local SCRIPT = server.root .. "/spec/services/redis.sh"

local function cli(url, ...)
  -- redis-cli 7.0 sends AUTH with an empty user name for redis://:pw@ (and
  -- fails): the password alone belongs to the ACL user "default"
  url = url:gsub("^redis://:", "redis://default:")
  local argv = { "redis-cli", "--no-auth-warning", "-u", url }
  for _, a in ipairs { ... } do argv[#argv + 1] = tostring(a) end
  local status, out, err = run.run(argv, 30)
  if status ~= 0 then return nil, ("redis-cli %s: %s"):format(table.concat({ ... }, " "), err ~= "" and err or out) end
  out = out:gsub("\n$", "")
  -- redis-cli exits 0 on an error reply: keep it an error here
  if out:match("^ERR ") or out:match("^NOAUTH") or out:match("^WRONGPASS") then return nil, out end
  return out
end

local Private = {}
Private.__index = Private

--- (Re)start the server in the foreground on its port; wait until it accepts.
function Private:start()
  assert(not self.proc, "the private Redis is running")
  local argv = { SCRIPT, "run", self.dir }
  for _, a in ipairs(self.args) do argv[#argv + 1] = a end
  argv.env = self.port and { JR_REDIS_PORT = tostring(self.port) } or nil
  argv.stdout = self.dir .. "/redis.out"
  argv.stderr = self.dir .. "/redis.out"
  self.proc = assert(process.spawn(argv))
  local deadline = sched.clock() + 10
  while true do
    local status = self.proc:wait(0.02)
    if status then
      self.proc = nil
      error(("redis-server exited during startup (status %s):\n%s"):format(status,
        run.read(self.dir .. "/redis.out") or ""), 2)
    end
    if not self.port then
      local p = run.read(self.dir .. "/redis.port")
      self.port = p and tonumber(p:match("%d+"))
      if self.port then self.url = "redis://127.0.0.1:" .. self.port end
    end
    local c = self.port and client.connect(self.port, 1)
    if c then c:close(); return self end
    assert(sched.clock() < deadline, "redis-server did not start listening:\n" .. (run.read(self.dir .. "/redis.out") or ""))
  end
end

--- stop(): SIGTERM, then SIGKILL after 10 s, and wait for the exit;
--- close(): stop it and remove its directory.
Private.stop, Private.close = run.Child.stop, run.Child.close

function Private:restart()
  self:stop()
  return self:start()
end


function Private:cli(...) return cli(self.url, ...) end

--- A server of the caller's own, on a free port (args: redis-server
--- options, e.g. { "--requirepass", "secret" }; url has no password).
function M.private(args)
  local dir = os.tmpname()
  os.remove(dir)
  assert(run.run({ "mkdir", "-p", dir }, 10) == 0, "cannot create " .. dir)
  return setmetatable({ dir = dir, args = args or {} }, Private):start()
end

--- The run's shared server's URL.
function M.url()
  local dir = os.getenv("JR_TEST_SERVICES")
  if dir and dir ~= "" then
    local url = run.read(dir .. "/redis.url")
    assert(url, "no redis.url in $JR_TEST_SERVICES (" .. dir .. "): start it with spec/services/redis.sh start " .. dir)
    return (url:gsub("%s+$", ""))
  end
  -- Run by hand, without ctest's fixture: one server for the rest of the
  -- run. busted loads this module afresh for every spec file, so the
  -- environment is what the later files find it through.
  local own = M.private()
  assert(sys.setenv("JR_TEST_SERVICES", own.dir))
  local f = assert(io.open(own.dir .. "/redis.url", "w"))
  f:write(own.url, "\n")
  f:close()
  require("busted").subscribe({ "suite", "end" }, function()
    own:close()
    sys.setenv("JR_TEST_SERVICES", nil)
    return nil, true
  end)
  return own.url
end

--- redis-cli against the shared server.
function M.cli(...) return cli(M.url(), ...) end

--- redis-cli against any URL (e.g. one with a password).
function M.cli_at(url, ...) return cli(url, ...) end

return M
