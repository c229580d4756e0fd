-- --worker-timeout: the master replaces a worker whose event loop is stuck,
-- the log says where it was stuck, and the port keeps answering.
local client = require "spec.support.client"
local server = require "spec.support.server"
local process = require "jararaca.core.process"
local cjson = require "cjson"

local APP = "spec/integration/apps/stuck.lua"

-- The line of the app's endless loop, as the traceback must name it.
local LOOP_LINE = (function()
  local n = 0
  for line in io.lines(APP) do
    n = n + 1
    if line:find("while true do end", 1, true) then return n end
  end
  error("no loop in " .. APP)
end)()

-- What we wait for happens in other processes: look again every 20 ms
-- until it holds.
local wait = require "spec.support.wait"
local function await(cond, what, timeout) return wait.until_true(cond, what, timeout or 10, 0.02) end

local function pid_of(port)
  local res = client.request(port, "GET", "/pid", { timeout = 5 })
  return res and res.status == 200 and cjson.decode(res.body).pid or nil
end

-- The pids of all n workers (fresh connections spread over them).
local function worker_pids(port, n)
  local seen, count = {}, 0
  await(function()
    local p = pid_of(port)
    if p and not seen[p] then seen[p] = true; count = count + 1 end
    return count == n
  end, n .. " workers answered")
  return seen
end

-- n requests sent at once, each on its own connection, then every answer
-- read with a 10 s client timeout. Returns answers by pid, how many
-- connections were refused or reset, and how many got nothing in 10 s.
local function burst(port, n)
  local conns = {}
  for i = 1, n do
    local c = client.connect(port, 10)
    if c then c:send(client.format("GET", "/pid", { headers = { Connection = "close" } })) end
    conns[i] = c or false
  end
  local by_pid, failed, hung = {}, 0, 0
  for _, c in ipairs(conns) do
    if not c then
      failed = failed + 1
    else
      local res, err = c:read_response()
      c:close()
      if res and res.status == 200 then
        local p = cjson.decode(res.body).pid
        by_pid[p] = (by_pid[p] or 0) + 1
      elseif err == "timeout" then
        hung = hung + 1
      else
        failed = failed + 1
      end
    end
  end
  return by_pid, failed, hung
end

local function total(by_pid)
  local n = 0
  for _, k in pairs(by_pid) do n = n + k end
  return n
end

-- Start the app, get one worker stuck on `target`, and check what every
-- case shares: requests made meanwhile do not hang, the stuck request's
-- connection is closed, a new worker replaces the stuck one, and 40 new
-- requests are all answered, none by the stuck pid. Returns srv.
local function stuck_and_replaced(workers, target)
  local srv = server.start(APP, { "--workers", tostring(workers), "--worker-timeout", "1" })
  local before = worker_pids(srv.port, workers)
  local stuck = assert(client.connect(srv.port, 15))
  assert(stuck:send(client.format("GET", target)))

  -- Meanwhile: the other worker answers; what the kernel queued on the
  -- stuck one's socket is reset when the watchdog closes it. Nothing hangs.
  local by_pid, _, hung = burst(srv.port, 40)
  assert.equal(0, hung)
  if workers > 1 then assert.is_true(total(by_pid) >= 1) end

  assert.is_true(stuck:closed(15))
  stuck:close()
  local new_pid = await(function()
    local p = pid_of(srv.port)
    return p and not before[p] and p
  end, "a new worker answers")

  local stuck_pid = tonumber(srv:output():match("worker %d+ %(pid (%d+)%) made no progress"))
  assert.is_truthy(before[stuck_pid], srv:output())
  assert.are_not.equal(stuck_pid, new_pid)
  local failed
  by_pid, failed, hung = burst(srv.port, 40)
  assert.same({ 40, 0, 0 }, { total(by_pid), failed, hung })
  assert.is_nil(by_pid[stuck_pid])
  return srv
end

describe("--worker-timeout (the watchdog)", function()
  for _, workers in ipairs { 1, 2 } do
    it(("replaces a worker stuck in a Lua loop and logs the handler's traceback (--workers %d)"):format(workers),
      function()
        local srv = stuck_and_replaced(workers, "/loop")
        local out = srv:output()
        -- the worker's own line: the request, then the stuck handler's file:line first
        local line = out:match("watchdog: the event loop made no progress[^\n]*\n[^\n]*")
        assert.is_truthy(line, out)
        assert.truthy(line:find("while running GET /loop (Stuck.loop)", 1, true), out)
        assert.truthy(line:find("stuck.lua:" .. LOOP_LINE .. ": in function", 1, true), out)
        assert.truthy(out:find("stopped by the watchdog (exit 70)", 1, true), out)
        assert.falsy(out:find("killing it", 1, true), out)
        assert.equal(0, (srv:stop("SIGTERM", 20)))
      end)

    it(("kills and replaces a worker blocked in C, where no Lua hook can run (--workers %d)"):format(workers),
      function()
        -- the handler's child sleeps 10 s: well past the 1 s timeout and the 2 s grace
        local srv = stuck_and_replaced(workers, "/block?s=10")
        local out = srv:output()
        assert.truthy(out:find("did not stop within 2000 ms of the watchdog's signal", 1, true), out)
        assert.truthy(out:find("stopped by the watchdog (signal 9)", 1, true), out)
        assert.falsy(out:find("watchdog: the event loop made no progress", 1, true), out)
        assert.equal(0, (srv:stop("SIGTERM", 20)))
      end)
  end

  it("runs one worker under a master by default, and in one process with --worker-timeout 0", function()
    local srv = server.start(APP, {})
    assert.are_not.equal(srv.pid, pid_of(srv.port))
    assert.truthy(srv:output():find("(worker timeout 30.0 s)", 1, true), srv:output())
    assert.equal(0, (srv:stop("SIGTERM", 20)))
    srv = server.start(APP, {}, { JARARACA_WORKER_TIMEOUT = "0" })
    assert.equal(srv.pid, pid_of(srv.port))
    assert.equal(0, (srv:stop("SIGTERM", 20)))
  end)

  it("refuses a timeout below 0.1 s or not a number, naming the option", function()
    local function run(args, env)
      local out = os.tmpname()
      local argv = { server.bin, "server", APP }
      for _, a in ipairs(args) do argv[#argv + 1] = a end
      argv.stdout, argv.stderr, argv.env = out, out, env
      local status = assert(process.spawn(argv)):wait(20)
      local f = io.open(out); local text = f:read("*a"); f:close(); os.remove(out)
      return status, text
    end
    local status, out = run({ "--worker-timeout", "0.05" })
    assert.equal(2, status)
    assert.truthy(out:find("--worker-timeout: expected 0 (off) or at least 0.1 seconds", 1, true), out)
    status, out = run({}, { JARARACA_WORKER_TIMEOUT = "soon" })
    assert.equal(2, status)
    assert.truthy(out:find("JARARACA_WORKER_TIMEOUT: expected a non-negative number, got 'soon'", 1, true), out)
  end)
end)
