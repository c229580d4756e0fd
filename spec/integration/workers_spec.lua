-- --workers N: a pre-forking master, SO_REUSEPORT, restarts, draining.
local client = require "spec.support.client"
local server = require "spec.support.server"
local process = require "jararaca.core.process"
local cjson = require "cjson"
local sched = require "jararaca.sched"

local function pid_of(port)
  local res = client.request(port, "GET", "/pid")
  return res and res.status == 200 and cjson.decode(res.body).pid or nil
end

-- Distinct worker pids seen over up to n fresh connections.
local function pids(port, n)
  local seen, count = {}, 0
  for _ = 1, n do
    local p = pid_of(port)
    if p and not seen[p] then seen[p] = true; count = count + 1 end
    if count >= 2 then break end
  end
  return seen, count
end

describe("--workers 2", function()
  it("serves from two processes, restarts a crashed one, drains all on SIGTERM", function()
    local srv = server.start("spec/integration/apps/basic.lua", { "--workers", "2" })
    local seen, count = pids(srv.port, 200)
    assert.equal(2, count)
    for p in pairs(seen) do assert.are_not.equal(srv.pid, p) end

    -- crash one worker: the master restarts it and the port keeps answering
    local c = assert(client.connect(srv.port))
    c:send(client.format("POST", "/crash", { body = "" }))
    assert.is_true(c:closed(5))
    -- the restarted worker (after a short back-off) shows up with a new pid
    local new_pid
    local deadline = sched.clock() + 10
    while not new_pid and sched.clock() < deadline do
      local p = pid_of(srv.port)
      if p and not seen[p] then new_pid = p end
    end
    assert.is_not_nil(new_pid)
    -- and the port answers
    for _ = 1, 20 do assert.is_not_nil(pid_of(srv.port)) end
    assert.truthy(srv:output():find("restarting", 1, true), srv:output())

    local status = srv:stop("SIGTERM", 20)
    assert.equal(0, status)
    assert.is_nil(client.connect(srv.port))
  end)

  it("exits 1 without restart-looping when workers fail at startup", function()
    local out = os.tmpname()
    local p = assert(process.spawn { server.bin, "server", "spec/integration/apps/missing_provider.lua",
      "--workers", "2", "--port", tostring(client.free_port()), stdout = out, stderr = out })
    local status = p:wait(20)
    local f = io.open(out); local text = f:read("*a"); f:close(); os.remove(out)
    assert.equal(1, status)
    assert.truthy(text:find("failed during startup", 1, true), text)
    assert.truthy(text:find("no provider for", 1, true), text)
  end)
end)
