-- jararaca.schedule.store on both backends, real ones: the run's Redis and
-- SQLite files. At most one claim per (app, action, tick) succeeds among
-- concurrent claimers of one process and of three processes (the jararaca
-- binary running spec/integration/apps/schedule_claimer.lua), also after
-- the holder died; tokens grow; last() only moves forward; finish records;
-- failures are nil, msg, code, never a hang.
local store = require "jararaca.schedule.store"
local sched = require "jararaca.sched"
local sys = require "jararaca.core.sys"
local process = require "jararaca.core.process"
local support = require "spec.support.redis"
local client = require "spec.support.client"
local files = require "spec.support.files"
local server = require "spec.support.server"
local wait = require "spec.support.wait"
local read = require("spec.support.run").read

local CLAIMER = server.root .. "/spec/integration/apps/schedule_claimer.lua"
local BASE = 1800000000 -- a tick: 2027-01-15 08:00:00 UTC

local dir, fresh
setup(function() dir, fresh = files.temp_dir("sched-store", ".db") end)
teardown(function() files.remove_dir(dir) end)

-- A new app name per test: the shared Redis keeps what earlier tests wrote.
local function app_name()
  return ("spec:%s"):format((sys.random_bytes(6):gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
end

-- A clock the test sets (the window is checked against it).
local function clock_at(t)
  local c = { now = t }
  c.fn = function() return c.now end
  return c
end

local backends = {
  { name = "Redis", url = function() return support.url() end },
  { name = "SQLite", url = function() return "sqlite:///" .. fresh() end },
}

for _, backend in ipairs(backends) do
  describe("scheduler store on " .. backend.name, function()
    local url, app

    before_each(function()
      url = backend.url()
      app = app_name()
    end)

    local function open(opts)
      return assert(store.open(url, app, opts))
    end

    it("lets exactly one of 12 concurrent claimers (4 stores x 3 tasks) win each of 20 ticks, tokens growing", function()
      local stores = {}
      for i = 1, 4 do stores[i] = open() end
      local last_token = 0
      for tick = BASE, BASE + 19 do
        local fns = {}
        for i = 1, 12 do
          local s = stores[(i - 1) % 4 + 1]
          fns[i] = function()
            local token, msg = s:claim("job", tick, "h" .. i)
            assert(token ~= nil, msg)
            return token
          end
        end
        local results = { sched.gather(unpack(fns)) }
        local wins = {}
        for i = 1, 12 do
          if results[i] ~= false then wins[#wins + 1] = results[i] end
        end
        assert.equal(1, #wins, "tick " .. tick)
        assert.truthy(wins[1] > last_token)
        last_token = wins[1]
      end
      local runs = assert(stores[1]:runs("job"))
      assert.equal(20, #runs)
      for i, r in ipairs(runs) do
        assert.equal(BASE + i - 1, r.tick)
        assert.truthy(i == 1 or r.token > runs[i - 1].token)
      end
      assert.equal(BASE + 19, stores[2]:last("job"))
      for _, s in ipairs(stores) do s:close() end
    end)

    it("gives tokens per action, strictly increasing", function()
      local s = open()
      assert.equal(1, s:claim("a", BASE, "h"))
      assert.equal(2, s:claim("a", BASE + 1, "h"))
      assert.equal(1, s:claim("b", BASE, "h"))
      assert.equal(3, s:claim("a", BASE + 5, "h"))
      assert.is_false(s:claim("a", BASE + 5, "h"))
      assert.equal(4, s:claim("a", BASE + 3, "h")) -- a tick not taken yet, out of order
      s:close()
    end)

    it("refuses a tick whose holder died without finishing, in a later process too", function()
      local s1 = open()
      local token = assert(s1:claim("job", BASE, "dead"))
      s1:close() -- gone, never finished
      local s2 = open()
      assert.is_false(s2:claim("job", BASE, "alive"))
      assert.is_false(s2:claim("job", BASE, "dead")) -- not even its own holder claims it twice
      local runs = assert(s2:runs("job"))
      assert.equal(1, #runs)
      assert.equal("dead", runs[1].holder)
      assert.equal(token, runs[1].token)
      assert.is_nil(runs[1].outcome)
      assert.is_nil(runs[1].finished_at)
      s2:close()
    end)

    it("moves last() forward only", function()
      local s = open()
      assert.is_nil(s:last("job"))
      assert(s:claim("job", BASE + 10, "h"))
      assert.equal(BASE + 10, s:last("job"))
      assert(s:claim("job", BASE + 5, "h"))
      assert.equal(BASE + 10, s:last("job"))
      assert(s:claim("job", BASE + 11, "h"))
      assert.equal(BASE + 11, s:last("job"))
      assert.is_nil(s:last("other"))
      s:close()
    end)

    it("records the outcome once, for the holder of the claim only", function()
      local c = clock_at(BASE + 0.5)
      local s = open { clock = c.fn }
      local token = assert(s:claim("job", BASE, "h"))
      local other = assert(s:claim("job", BASE + 1, "h"))
      c.now = BASE + 2.25
      assert.same({ nil, ('action "job": tick %d was claimed with token %d, not %d'):format(BASE, token, other),
        "fenced" }, { s:finish("job", BASE, other, "ok") })
      assert.is_true(s:finish("job", BASE, token, "failed"))
      assert.same({ nil, ('action "job": tick %d finished already (failed)'):format(BASE), "exists" },
        { s:finish("job", BASE, token, "ok") })
      assert.same({ nil, ('action "job" has no claim of tick %d remembered'):format(BASE + 7), "not_found" },
        { s:finish("job", BASE + 7, token, "ok") })
      assert.is_true(s:finish("job", BASE + 1, other, "skipped"))
      local runs = assert(s:runs("job"))
      assert.same({
        { tick = BASE, token = token, holder = "h", outcome = "failed", claimed_at = BASE + 0.5, finished_at = BASE + 2.25 },
        { tick = BASE + 1, token = other, holder = "h", outcome = "skipped", claimed_at = BASE + 0.5,
          finished_at = BASE + 2.25 },
      }, runs)
      assert.same({ runs[2] }, s:runs("job", BASE + 1))
      assert.same({}, s:runs("job", BASE + 2))
      assert.same({}, s:runs("never"))
      s:close()
    end)

    it("with busy_s, skips (and consumes) a tick while the active run is unfinished, in any process, up to busy_s",
      function()
        local c = clock_at(BASE + 0.1)
        local a, b = open { clock = c.fn }, open { clock = c.fn }
        local t1 = assert(a:claim("job", BASE, "ha", nil, 10))
        c.now = BASE + 1.1
        assert.same({ false, "busy" }, { b:claim("job", BASE + 1, "hb", nil, 10) })
        -- consumed: the tick is nobody's to run now, with or without busy_s
        assert.same({ false, "taken" }, { a:claim("job", BASE + 1, "ha") })
        assert.same({ BASE + 1, "skipped", "hb" }, (function()
          local r = assert(b:runs("job", BASE + 1))[1]
          return { r.tick, r.outcome, r.holder }
        end)())
        -- the active run is still BASE's: finished, the next tick runs
        assert.is_true(a:finish("job", BASE, t1, "ok"))
        c.now = BASE + 2.1
        local t3 = assert(b:claim("job", BASE + 2, "hb", nil, 10))
        assert.truthy(t3 > t1)
        -- BASE + 2 never finishes (its holder died): busy for 10 s after its claim, then not
        c.now = BASE + 3.1
        assert.same({ false, "busy" }, { a:claim("job", BASE + 3, "ha", nil, 10) })
        c.now = BASE + 12.2
        assert.truthy(a:claim("job", BASE + 12, "ha", nil, 10))
        -- without busy_s the check is off (allow_overlap = true)
        c.now = BASE + 13.1
        assert.truthy(b:claim("job", BASE + 13, "hb"))
        assert.has_error(function() a:claim("job", BASE + 14, "ha", nil, 0) end)
        a:close()
        b:close()
      end)

    it("refuses ticks older than the window, and forgets runs beyond it", function()
      local c = clock_at(BASE)
      local s = open { clock = c.fn }
      assert.same({ false, "taken" }, { s:claim("job", BASE - 61, "h", 60) }) -- older than now - ttl
      local t1 = assert(s:claim("job", BASE - 60, "h", 60))
      assert(s:claim("job", BASE, "h", 60))
      -- later: the claim at BASE + 100 trims what is older than its window
      c.now = BASE + 100
      assert(s:claim("job", BASE + 100, "h", 60))
      local runs = assert(s:runs("job"))
      assert.equal(1, #runs)
      assert.equal(BASE + 100, runs[1].tick)
      -- a forgotten tick is not claimed again (older than max(now, last) - ttl)
      assert.is_false(s:claim("job", BASE, "h", 60))
      assert.is_false(s:claim("job", BASE - 60, "h", 60))
      -- the window follows the latest claim too, when the clock lags behind it
      c.now = BASE
      assert.same({ false, "taken" }, { s:claim("job", BASE + 39, "h", 60) })
      assert(s:claim("job", BASE + 40, "h", 60))
      assert.truthy(t1 >= 1)
      s:close()
    end)

    it("answers calls after close with \"closed\", and raises on misuse", function()
      local s = open()
      assert.has_error(function() s:claim("job", 1.5, "h") end)
      assert.has_error(function() s:claim("job", -1, "h") end)
      assert.has_error(function() s:claim("", BASE, "h") end)
      assert.has_error(function() s:claim("job", BASE, 7) end)
      assert.has_error(function() s:claim("job", BASE, "h", 0) end)
      assert.has_error(function() s:finish("job", BASE, 1, "done") end,
        'store:finish(action, tick, token, outcome): outcome must be "ok", "failed", "timeout" or "skipped", got "done"')
      assert.has_error(function() s:finish("job", BASE, 0, "ok") end)
      assert.has_error(function() s:runs("job", "x") end)
      assert.has_error(function() store.open(url, "") end)
      assert.has_error(function() store.open(url, app, { nope = 1 }) end)
      assert.is_true(s:close())
      local v, msg, code = s:claim("job", BASE, "h")
      assert.is_nil(v)
      assert.matches("is closed", msg)
      assert.equal("closed", code)
      assert.equal("closed", select(3, s:last("job")))
      assert.is_true(s:close())
    end)

    it("keeps apps apart", function()
      local a, b = open(), assert(store.open(url, app .. ":other"))
      assert.equal(1, a:claim("job", BASE, "h"))
      assert.equal(1, b:claim("job", BASE, "h"))
      assert.is_false(b:claim("job", BASE, "h"))
      a:close()
      b:close()
    end)

    it("lets exactly one of 3 processes (4 tasks each) win each of 20 ticks; a killed holder's tick stays taken", function()
      local function start(name, extra)
        local out = ("%s/%s-%s.out"):format(dir, app:gsub(":", "_"), name)
        local e = { STORE_URL = url, STORE_APP = app, CLAIMER = name, ACTION = "job", BASE = tostring(BASE),
          TICKS = "20", OUT = out, GO = out .. ".go", JARARACA_LOG_LEVEL = "warn" }
        for k, v in pairs(extra or {}) do e[k] = v end
        local log = out .. ".log"
        return { name = name, out = out, log = log,
          proc = assert(process.spawn { server.bin, "test", CLAIMER, env = e, stdout = log, stderr = log }) }
      end
      local go = ("%s/%s.go"):format(dir, app:gsub(":", "_"))
      local procs = {}
      for i = 1, 3 do
        procs[i] = start("p" .. i, { GO = go })
      end
      for _, p in ipairs(procs) do
        wait.until_true(function() return (read(p.out) or ""):match("^ready") end, p.name .. " is ready", 30, 0.02)
      end
      assert(io.open(go, "w")):close()
      local wins, by_tick = {}, {}
      for _, p in ipairs(procs) do
        local status = p.proc:wait(60)
        assert.equal(0, status, p.name .. ": " .. (read(p.log) or ""))
        for tick, token in read(p.out):gmatch("won (%d+) (%d+)") do
          tick, token = tonumber(tick), tonumber(token)
          wins[#wins + 1] = tick
          assert.is_nil(by_tick[tick], "tick " .. tick .. " won twice")
          by_tick[tick] = { token = token, holder = p.name }
        end
      end
      assert.equal(20, #wins)
      local s = open()
      local runs = assert(s:runs("job"))
      assert.equal(20, #runs)
      for i, r in ipairs(runs) do
        assert.equal(BASE + i - 1, r.tick)
        assert.same(by_tick[r.tick], { token = r.token, holder = r.holder })
        assert.equal("ok", r.outcome)
        assert.truthy(i == 1 or r.token > runs[i - 1].token)
      end
      -- a holder killed mid-run: its tick stays taken, for every later claimer
      local dead = start("dead", { DIE = "1", BASE = tostring(BASE + 20) })
      local token = tonumber(wait.until_true(function() return (read(dead.out) or ""):match("^claimed (%d+)") end,
        "the doomed process claimed its tick", 30, 0.02))
      assert(dead.proc:kill("SIGKILL"))
      dead.proc:wait(10)
      assert.truthy(token > runs[20].token)
      assert.is_false(s:claim("job", BASE + 20, "p1"))
      local r = assert(s:runs("job", BASE + 20))[1]
      assert.same({ "dead", token }, { r.holder, r.token })
      assert.is_nil(r.outcome)
      assert.equal(BASE + 20, s:last("job"))
      s:close()
    end)
  end)
end

describe("scheduler store: holder names", function()
  it("names this process: host, pid and a random part", function()
    local a, b = store.holder(), store.holder()
    assert.equal(("%s:%d:"):format(sys.hostname(), sys.pid()), a:match("^(.*:)%x%x%x%x%x%x%x%x$"))
    assert.are_not.equal(a, b)
  end)
end)

describe("scheduler store: bad URLs and unreachable stores", function()
  it("refuses bad URLs with \"invalid\"", function()
    for _, url in ipairs { "http://127.0.0.1", "redis://", "redis://127.0.0.1:99999", "rediss://127.0.0.1",
      "sqlite:///:memory:", "sqlite://x.db", "sqlite:///", "" } do
      local s, msg, code = store.open(url, "app")
      assert.is_nil(s, url)
      assert.equal("invalid", code, url)
      assert.matches("^scheduler store: ", msg)
    end
    assert.has_error(function() store.open(nil, "app") end)
  end)

  it("answers a Redis nobody listens on with nil, msg, \"unreachable\" at once, without the password", function()
    local port = client.free_port()
    local t0 = sched.clock()
    local s, msg, code = store.open(("redis://:hunter2@127.0.0.1:%d/3"):format(port), "app")
    assert.is_nil(s)
    assert.equal("unreachable", code)
    assert.matches(("redis://127.0.0.1:%d/3"):format(port), msg, 1, true)
    assert.is_nil(msg:find("hunter2", 1, true))
    assert.truthy(sched.clock() - t0 < 2)
  end)

  it("answers a SQLite file it cannot create with nil, msg, code", function()
    local s, msg, code = store.open("sqlite:///" .. dir .. "/no/such/dir/x.db", "app")
    assert.is_nil(s)
    assert.matches("cannot open", msg)
    assert.is_string(code)
  end)

  it("answers claims while Redis is down or stuck with nil, msg, code, and works again once it is back", function()
    local own = support.private()
    local s = assert(store.open(own.url, "app", { timeout = 0.3 }))
    assert.equal(1, s:claim("job", BASE, "h"))
    -- stuck: no answer within the timeout
    assert(own.proc:kill("SIGSTOP"))
    local t0 = sched.clock()
    local v, msg, code = s:claim("job", BASE + 1, "h")
    assert.is_nil(v)
    assert.equal("timeout", code)
    assert.matches("^claim on redis://127%.0%.0%.1:%d+: ", msg)
    assert.truthy(sched.clock() - t0 < 2)
    assert(own.proc:kill("SIGCONT"))
    -- down
    own:stop()
    local r = wait.until_true(function()
      local r = { s:claim("job", BASE + 2, "h") }
      if r[3] == "disconnected" then return r end
    end, "the store notices the outage", 5, 0.02)
    assert.is_nil(r[1])
    assert.equal("disconnected", select(3, s:last("job")))
    -- back (an empty server: nothing was persisted)
    own:start()
    local token = wait.until_true(function() return (s:claim("job", BASE + 3, "h")) end, "claims work again", 10, 0.05)
    assert.equal(1, token)
    s:close()
    own:close()
  end)
end)
