-- `jararaca server --scheduler` (and JARARACA_SCHEDULER=1): the server
-- process also fires the app's scheduled actions, as `jararaca scheduler`
-- does. Real processes on real SQLite files
-- (spec/integration/apps/sched_server.lua: an every-second action that
-- records its runs, and GET /runs that lists them). Every wait is for a
-- row or a log line; only the tick counts depend on the clock.
local process = require "jararaca.core.process"
local server = require "spec.support.server"
local client = require "spec.support.client"
local wait = require "spec.support.wait"
local run = require "spec.support.run"
local files = require "spec.support.files"

local APP = server.root .. "/spec/integration/apps/sched_server.lua"

local dir, env, srv, others

before_each(function()
  dir = files.temp_dir("srvsched")
  env = { SCHED_DB = dir .. "/app.db", JARARACA_LOG_LEVEL = "info" }
  others = {}
end)

after_each(function()
  if srv and not srv.stopped then srv.proc:kill("SIGKILL"); srv.proc:wait(5); os.remove(srv.log) end
  srv = nil
  for _, p in ipairs(others) do p:kill("SIGKILL"); p:wait(5) end
  files.remove_dir(dir)
end)

local function runs() return client.get_json(srv.port, "/runs").runs end

-- the runs from tick `from` on, once tick `to` has a run
local function runs_until(from, to)
  local all = wait.until_true(function()
    local r = runs()
    return #r > 0 and r[#r].tick >= to and r
  end, "a run of tick " .. to, 30)
  local list = {}
  for _, x in ipairs(all) do
    if x.tick >= from and x.tick <= to then list[#list + 1] = x end
  end
  return list
end

-- SIGTERM: the exit status and the whole log (srv:stop would remove it)
local function stop()
  srv.proc:kill("SIGTERM")
  local status = srv.proc:wait(40)
  if status == nil then srv.proc:kill("SIGKILL"); srv.proc:wait(5) end
  srv.stopped = true
  local out = srv:output()
  os.remove(srv.log)
  return status, out
end

local function count_lines(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

describe("jararaca server --scheduler", function()
  it("serves HTTP and fires the every-second action in the same process, once per tick; SIGTERM exits 0", function()
    srv = server.start(APP, { "--scheduler" }, env)
    local t0 = wait.until_true(function() local r = runs(); return r[1] and r[1].tick end, "a first run", 30)
    local list = runs_until(t0, t0 + 3)
    assert.equal(4, #list)
    for i, x in ipairs(list) do
      assert.equal(t0 + i - 1, x.tick) -- one run per tick, none missing
      assert.equal(list[1].pid, x.pid)
      assert.is_true(x.fired_at >= x.tick and x.fired_at - x.tick < 0.5, "jitter " .. (x.fired_at - x.tick))
    end
    -- the process that answers HTTP is the one that ran the action
    assert.equal(client.get_json(srv.port, "/runs").pid, list[1].pid)
    assert.is_truthy(srv:output():find("scheduler started (pid " .. list[1].pid, 1, true), srv:output())
    local status, out = stop()
    assert.equal(0, status, out)
    assert.is_truthy(out:find("stopped: %d+ ok, 0 failed"), out)
  end)

  it("JARARACA_SCHEDULER=1 with --workers 2: both workers run the timers and each tick runs once", function()
    env.JARARACA_SCHEDULER = "1"
    srv = server.start(APP, { "--workers", "2" }, env)
    wait.until_true(function() return count_lines(srv:output(), "scheduler started %(pid") == 2 end,
      "both workers started their scheduler:\n" .. srv:output(), 30)
    local t0 = wait.until_true(function() local r = runs(); return r[#r] and r[#r].tick end, "a run", 30) + 1
    local list = runs_until(t0, t0 + 5)
    assert.equal(6, #list, "runs of 6 ticks")
    for i, x in ipairs(list) do assert.equal(t0 + i - 1, x.tick) end -- each tick exactly once
    local status, out = stop()
    assert.equal(0, status, out)
    -- each worker fired every tick; the claim gave each to one of them
    local ok, not_ours = 0, 0
    for o, n in out:gmatch("stopped: (%d+) ok, 0 failed, 0 timed out, 0 skipped %(overlap%), (%d+) not ours") do
      ok, not_ours = ok + tonumber(o), not_ours + tonumber(n)
    end
    assert.is_true(ok >= 6 and not_ours >= 6, out)
  end)

  it("without the flag the server runs no scheduled action (a `jararaca scheduler` beside it runs them all)",
    function()
      srv = server.start(APP, {}, env)
      local argv = { server.bin, "scheduler", APP, env = env, stdout = dir .. "/s.log", stderr = dir .. "/s.log" }
      local sp = assert(process.spawn(argv))
      others[1] = sp
      local t0 = wait.until_true(function() local r = runs(); return r[1] and r[1].tick end, "a first run", 30)
      local list = runs_until(t0, t0 + 2)
      local spid = tonumber((run.read(dir .. "/s.log") or ""):match("scheduler started %(pid (%d+)"))
      for _, x in ipairs(list) do assert.equal(spid, x.pid) end
      assert.is_falsy(srv:output():find("scheduler started", 1, true), srv:output())
      local status, out = stop()
      assert.equal(0, status, out)
      assert.is_truthy(out:find(" stopped\n", 1, true), out)
    end)

  it("--scheduler on an app without scheduled actions is a startup error (exit 1, with or without a master)",
    function()
      local path = dir .. "/none.lua"
      local f = assert(io.open(path, "w"))
      f:write("local j = require 'jararaca'\nlocal C = j.RestController('', { name = 'C' })\n",
        "C.x = j.Get('/x', function() return {} end)\nreturn j.Microservice { name = 'none', controllers = { C } }\n")
      f:close()
      for _, extra in ipairs { { "--worker-timeout", "0" }, { "--workers", "2" } } do
        local status, out, err = run.run({ server.bin, "server", path, "--port", "0", "--scheduler", extra[1],
          extra[2] }, 30)
        assert.equal(1, status, out .. err)
        assert.is_truthy((out .. err):find("the app has no scheduled action to run", 1, true), out .. err)
      end
    end)
end)
