-- `jararaca scheduler`: real processes on real SQLite files and a real Redis
-- (spec/integration/apps/sched.lua): an every-second action fires once per
-- second with small jitter; three schedulers run each tick of an exclusive
-- action exactly once, also when one is killed with SIGKILL midway; overlap
-- skip, timeout, exception handler, rollback on failure, staged publishes
-- sent on commit, interceptors, misfire, dispatch through the bus to
-- `jararaca worker`, SIGTERM's grace period, startup errors.
-- Nothing here waits a fixed time to synchronise: every wait is for a row
-- or a log line; only the tick counts depend on the clock, with margin.
local sys = require "jararaca.core.sys"
local dbmod = require "jararaca.db"
local embedded = require "jararaca.bus.embedded"
local store_mod = require "jararaca.schedule.store"
local json = require "jararaca.json"
local process = require "jararaca.core.process"
local server = require "spec.support.server"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local redis = require "spec.support.redis"

local APP = server.root .. "/spec/integration/apps/sched.lua"

local dir, env, appdb, procs
local store_url -- the store the spec reads: the schedulers' (JARARACA_SCHEDULER_STORE, else their default)

local function start(name, args, cmd)
  local log = ("%s/%s.log"):format(dir, name)
  local argv = { server.bin, cmd or "scheduler", APP, env = env, stdout = log, stderr = log }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local p = { proc = assert(process.spawn(argv)), log = log, name = name }
  procs[#procs + 1] = p
  return p
end

local function output(p) return run.read(p.log) or "" end

local function until_started(p)
  local pat = p.worker and "worker started %(pid (%d+)" or "scheduler started %(pid (%d+)"
  wait.until_true(function() return output(p):match(pat) end, p.name .. " started:\n" .. output(p), 30)
  p.pid = tonumber(output(p):match(pat))
  if not appdb then appdb = assert(dbmod.open { path = dir .. "/app.db" }) end
  return p
end

local function stop(p, sig)
  p.proc:kill(sig or "SIGTERM")
  local status = p.proc:wait(30)
  if status == nil then p.proc:kill("SIGKILL"); p.proc:wait(5) end
  p.stopped = true
  return status
end

local function rows(sql, params)
  local tx = appdb:begin("read")
  local r = assert(tx:query(sql, params))
  tx:commit()
  return r
end

local function first_tick(action)
  return wait.until_true(function()
    local r = rows("SELECT min(tick) AS t FROM runs WHERE action = ?", { action })[1]
    return r.t ~= dbmod.null and r.t or nil
  end, "a run of " .. action, 30)
end

local function until_tick(action, tick, what, tbl)
  wait.until_true(function()
    return rows(("SELECT count(*) AS n FROM %s WHERE action = ? AND tick >= ?"):format(tbl or "runs"),
      { action, tick })[1].n > 0
  end, what or (action .. " ran tick " .. tick), 30)
end

local function store()
  return assert(store_mod.open(store_url or ("sqlite:///" .. dir .. "/sched.scheduler.db"), "sched"))
end

local function outcomes(action)
  local s = store()
  local list = assert(s:runs(action, 0))
  s:close()
  local by_tick = {}
  for _, r in ipairs(list) do by_tick[r.tick] = r end
  return by_tick, list
end

before_each(function()
  dir = files.temp_dir("sched")
  env = { SCHED_DB = dir .. "/app.db", JARARACA_LOG_LEVEL = "info" }
  procs = {}
  store_url = nil
end)

after_each(function()
  for _, p in ipairs(procs) do
    if not p.stopped then p.proc:kill("SIGKILL"); p.proc:wait(5) end
  end
  if appdb then appdb:close(); appdb = nil end
  files.remove_dir(dir)
end)

describe("jararaca scheduler", function()
  it("fires an every-second action once per tick over 5 s, late by well under 0.5 s (jitter recorded)", function()
    local p = until_started(start("every", { "--actions", "every" }))
    local t0 = first_tick("every")
    until_tick("every", t0 + 5)
    local r = rows("SELECT tick, fired_at, token FROM runs WHERE action = 'every' AND tick >= ? AND tick < ? "
      .. "ORDER BY tick", { t0, t0 + 5 })
    assert.is_true(#r >= 4 and #r <= 6, "runs in 5 s: " .. #r)
    local worst = 0
    for i, x in ipairs(r) do
      assert.equal(t0 + i - 1, x.tick) -- one run per tick, none missing
      local jitter = x.fired_at - x.tick
      assert.is_true(jitter >= 0 and jitter < 0.5, "jitter " .. jitter)
      if jitter > worst then worst = jitter end
      if i > 1 then assert.is_true(x.token > r[i - 1].token) end -- fencing tokens increase
    end
    print(("\n    every-second action: %d runs in 5 s, worst jitter %.1f ms"):format(#r, worst * 1000))
    local by_tick = outcomes("every")
    for _, x in ipairs(r) do assert.equal("ok", by_tick[x.tick].outcome) end
    assert.equal(0, stop(p), output(p))
    assert.is_truthy(output(p):find("stopped: %d+ ok, 0 failed"))
  end)

  -- three scheduler processes on one store: each tick of "every" ran once
  -- (a row in runs), also after one of them was killed with SIGKILL midway
  local function three_schedulers()
    local ps = {}
    for i = 1, 3 do ps[i] = start("s" .. i, { "--actions", "every" }) end
    for i = 1, 3 do until_started(ps[i]) end
    local t0 = first_tick("every") + 1 -- from a tick all three were up for
    until_tick("every", t0 + 4)
    local killed = ps[2]
    assert(sys.kill(killed.pid, "SIGKILL"))
    killed.proc:wait(10)
    killed.stopped = true
    until_tick("every", t0 + 10)
    local by_tick = outcomes("every")
    for tick = t0, t0 + 9 do
      local n = rows("SELECT count(*) AS n FROM runs WHERE action = 'every' AND tick = ?", { tick })[1].n
      local claim = by_tick[tick]
      assert.is_not_nil(claim, "tick " .. tick .. " was claimed")
      if n == 0 then
        -- only a run the killed process had claimed and not finished may be missing (never run twice)
        assert.is_truthy(claim.holder:find(":" .. killed.pid .. ":", 1, true), json.encode(claim))
        assert.is_nil(claim.outcome)
      else
        assert.equal(1, n, "tick " .. tick .. " ran " .. n .. " times")
        assert.equal("ok", claim.outcome)
      end
    end
    for _, i in ipairs { 1, 3 } do assert.equal(0, stop(ps[i]), output(ps[i])) end
    -- the others competed: each saw ticks another process had claimed
    local not_ours = 0
    for _, i in ipairs { 1, 3 } do not_ours = not_ours + tonumber(output(ps[i]):match("(%d+) not ours")) end
    assert.is_true(not_ours >= 10, "ticks claimed elsewhere: " .. not_ours)
  end

  it("three schedulers on the default SQLite store: each tick runs exactly once, also after one is killed with "
    .. "SIGKILL midway", three_schedulers)

  it("three schedulers on Redis: each tick runs exactly once, also after one is killed with SIGKILL midway",
    function()
    local own = redis.private {}
    store_url = own.url .. "/0"
    env.JARARACA_SCHEDULER_STORE = store_url
    local ok, err = pcall(three_schedulers)
    own:close()
    assert(ok, err)
    -- nothing went to the SQLite default
    assert.is_nil(io.open(dir .. "/sched.scheduler.db"))
  end)

  it("exclusive = false: every scheduler process runs every tick, without a claim", function()
    local a = until_started(start("x1", { "--actions", "everywhere" }))
    local b = until_started(start("x2", { "--actions", "everywhere" }))
    local t0
    wait.until_true(function()
      local r = rows("SELECT tick FROM runs WHERE action = 'everywhere' GROUP BY tick HAVING count(*) = 2 "
        .. "ORDER BY tick LIMIT 1")[1]
      t0 = r and r.tick
      return t0
    end, "a tick run by both", 30)
    until_tick("everywhere", t0 + 3)
    for _, p in ipairs { a, b } do assert.equal(0, stop(p), output(p)) end
    for tick = t0, t0 + 2 do
      local r = rows("SELECT count(*) AS n, count(DISTINCT pid) AS pids, count(token) AS tokens FROM runs "
        .. "WHERE action = 'everywhere' AND tick = ?", { tick })[1]
      assert.same({ n = 2, pids = 2, tokens = 0 }, r)
    end
    assert.same({}, select(2, outcomes("everywhere")))
  end)

  it("allow_overlap = false skips (and logs) ticks while the previous run is running; true overlaps", function()
    local p = until_started(start("overlap", { "--actions", "slow,overlap" }))
    local t0 = first_tick("slow")
    until_tick("slow", t0 + 3, "slow ran again", "started")
    until_tick("overlap", t0 + 3, "overlap ran a 4th time", "started")
    assert.equal(0, stop(p), output(p))
    local starts = rows("SELECT tick FROM started WHERE action = 'slow' ORDER BY tick")
    for i = 2, #starts do
      assert.is_true(starts[i].tick - starts[i - 1].tick >= 3, "slow overlapped: " .. json.encode(starts))
    end
    local by_tick = outcomes("slow")
    assert.equal("skipped", by_tick[t0 + 1].outcome)
    assert.equal("skipped", by_tick[t0 + 2].outcome)
    assert.is_truthy(output(p):find("action slow %(tick " .. (t0 + 1) .. "%) skipped: its previous run is still running"))
    -- overlap: a run started at every tick while the earlier ones still ran
    local o = rows("SELECT count(DISTINCT tick) AS n FROM started WHERE action = 'overlap' AND tick BETWEEN ? AND ?",
      { t0, t0 + 3 })[1]
    assert.equal(4, o.n)
  end)

  it("allow_overlap = false holds across schedulers: two processes never run the action at once", function()
    local p1 = until_started(start("overlap-a", { "--actions", "slow" }))
    local p2 = until_started(start("overlap-b", { "--actions", "slow" }))
    local t0 = first_tick("slow")
    until_tick("slow", t0 + 6, "slow ran three times", "started")
    assert.equal(0, stop(p1), output(p1))
    assert.equal(0, stop(p2), output(p2))
    local starts = rows("SELECT tick, pid FROM started WHERE action = 'slow' AND tick >= ? ORDER BY tick", { t0 })
    for i, r in ipairs(starts) do
      if i > 1 then
        assert.is_true(r.tick - starts[i - 1].tick >= 3, "slow overlapped across processes: " .. json.encode(starts))
      end
    end
    -- the ticks in between were skipped (one outcome each, whichever process claimed them)
    local by_tick = outcomes("slow")
    for t = starts[1].tick + 1, starts[2].tick - 1 do assert.equal("skipped", by_tick[t].outcome) end
  end)

  it("runs are transactions: timeout cancels and rolls back, a failure rolls back and calls the exception "
    .. "handler, publishes go out on commit only, interceptors see kind 'schedule'", function()
    local broker = assert(embedded.open(dir .. "/sched.bus.db"))
    assert(broker:bind("probe", "sched.#"))
    local p = until_started(start("tx", { "--actions", "sleepy,fails,publish" }))
    local t0 = first_tick("publish")
    until_tick("publish", t0 + 2)
    until_tick("sleepy", t0 + 2, "sleepy started thrice", "started")
    wait.until_true(function()
      return rows("SELECT count(*) AS n FROM errors WHERE tick >= ?", { t0 + 2 })[1].n > 0
    end, "fails's exception handler ran 3 times", 30)
    assert.equal(0, stop(p), output(p))
    local out = output(p)

    -- timeout: cancelled, its write rolled back, recorded as "timeout"
    assert.equal(0, rows("SELECT count(*) AS n FROM runs WHERE action = 'sleepy'")[1].n)
    assert.is_truthy(out:find("action sleepy %(tick %d+%) timed out after 0.3 s"))
    local sl = outcomes("sleepy")
    assert.equal("timeout", sl[t0].outcome)

    -- failure: rolled back, logged with a traceback, handler called with the error and the run
    assert.equal(0, rows("SELECT count(*) AS n FROM runs WHERE action = 'fails'")[1].n)
    local e = rows("SELECT tick, err FROM errors WHERE action = 'fails' AND tick = ?", { t0 })[1]
    assert.is_truthy(e and e.err:find("fails on purpose at tick " .. t0, 1, true))
    assert.is_truthy(out:find("action fails %(tick " .. t0 .. "%) failed: [^\n]*fails on purpose[^\n]*\nstack traceback:"))
    assert.is_truthy(out:find("%[fails@" .. t0 .. "%]")) -- the run's request id on its log lines
    assert.equal("failed", outcomes("fails")[t0].outcome)

    -- publishes: those of committed runs arrived, those of failed runs never did
    local got = {}
    for _ = 1, 10 do
      local ds = assert(broker:fetch("probe", 100, 30))
      if #ds == 0 then break end
      for _, d in ipairs(ds) do
        got[#got + 1] = d.topic .. ":" .. json.decode(d.body).tick
        assert(broker:ack(d))
      end
    end
    table.sort(got)
    local want = {}
    for _, r in ipairs(rows("SELECT tick FROM runs WHERE action = 'publish'")) do want[#want + 1] = "sched.out:" .. r.tick end
    table.sort(want)
    assert.is_true(#want >= 3)
    assert.same(want, got)
    broker:close()

    -- the interceptors ran around every run
    local k = rows("SELECT DISTINCT kind FROM intercepted")
    assert.same({ { kind = "schedule" } }, k)
    assert.is_true(rows("SELECT count(*) AS n FROM intercepted WHERE action = 'publish'")[1].n >= 3)
  end)

  it("misfire: 'skip' drops the ticks missed while no scheduler ran, 'run_once' runs one of them at start",
    function()
    local p = until_started(start("m1", { "--actions", "every,catchup" }))
    local t0 = first_tick("catchup")
    until_tick("every", t0 + 1)
    until_tick("catchup", t0 + 1)
    assert.equal(0, stop(p), output(p))
    local last = rows("SELECT max(tick) AS t FROM runs WHERE action = 'catchup'")[1].t
    -- down for at least two ticks (waiting for the clock is the point here)
    wait.until_true(function() return sys.time() >= last + 3 end, "two ticks passed", 10, 0.05)
    local q = until_started(start("m2", { "--actions", "every,catchup" }))
    local restart = wait.until_true(function()
      local r = rows("SELECT min(tick) AS t FROM runs WHERE action = 'every' AND tick > ?", { last })[1]
      return r.t ~= dbmod.null and r.t or nil
    end, "every ran after the restart", 30)
    until_tick("catchup", restart)
    assert.equal(0, stop(q), output(q))
    assert.is_true(restart >= last + 3)
    -- the gap (last, restart): nothing for "skip", exactly one run for "run_once"
    assert.equal(0, rows("SELECT count(*) AS n FROM runs WHERE action = 'every' AND tick > ? AND tick < ?",
      { last, restart })[1].n)
    assert.equal(1, rows("SELECT count(*) AS n FROM runs WHERE action = 'catchup' AND tick > ? AND tick < ?",
      { last, restart })[1].n)
    assert.is_truthy(output(q):find("action catchup missed tick %d+ while no scheduler ran: running it once now"))
  end)

  it("dispatch = 'bus': two schedulers publish each tick, `jararaca worker` runs it once", function()
    local s1 = until_started(start("b1", { "--actions", "viabus" }))
    local s2 = until_started(start("b2", { "--actions", "viabus" }))
    local w = start("w", { "--handlers", "schedule.viabus" }, "worker")
    w.worker = true
    until_started(w)
    local t0 = first_tick("viabus") + 1
    until_tick("viabus", t0 + 4)
    for tick = t0, t0 + 3 do
      assert.equal(1, rows("SELECT count(*) AS n FROM runs WHERE action = 'viabus' AND tick = ?", { tick })[1].n)
    end
    local by_tick = outcomes("viabus")
    assert.equal("ok", by_tick[t0].outcome)
    assert.is_truthy(by_tick[t0].holder:find(":" .. w.pid .. ":", 1, true))
    for _, p in ipairs { s1, s2, w } do assert.equal(0, stop(p), output(p)) end
    assert.is_truthy(output(s1):find("%d+ published"))
    assert.is_falsy(output(s1):find(" 0 published"))
  end)

  it("dispatch = 'bus': a run whose commit fails is recorded as failed (its message dead-lettered), and the "
    .. "next ticks run", function()
    local s = until_started(start("nc", { "--actions", "nocommit" }))
    local w = start("ncw", { "--handlers", "schedule.nocommit" }, "worker")
    w.worker = true
    until_started(w)
    local t0 = wait.until_true(function()
      local r = rows("SELECT min(tick) AS t FROM started WHERE action = 'nocommit'")[1]
      return r.t ~= dbmod.null and r.t or nil
    end, "nocommit started", 30)
    -- three ticks after t0 with an outcome in the store: ran (and failed) or, had t0's claim stayed
    -- unfinished, skipped (allow_overlap = false) behind it
    wait.until_true(function()
      local n, _, list = 0, outcomes("nocommit")
      for _, r in ipairs(list) do
        if r.tick > t0 and r.outcome then n = n + 1 end
      end
      return n >= 3
    end, "three ticks of nocommit after the first have an outcome", 30)
    for _, p in ipairs { s, w } do assert.equal(0, stop(p), output(p)) end
    local by_tick = outcomes("nocommit")
    for t = t0, t0 + 3 do
      assert.equal("failed", by_tick[t] and by_tick[t].outcome, "tick " .. t)
      assert.equal(1, rows("SELECT count(*) AS n FROM started WHERE action = 'nocommit' AND tick = ?", { t })[1].n)
    end
    assert.equal(0, rows("SELECT count(*) AS n FROM orphans")[1].n)
    local out = output(w)
    assert.is_truthy(out:find("action nocommit %(tick " .. t0 .. "%) failed: its transaction did not commit"), out)
    assert.is_truthy(out:find("dead%-lettered: failed after 1 attempt%(s%): [^\n]*FOREIGN KEY constraint failed"), out)
    assert.is_falsy(out:find("recording the outcome", 1, true), out)
  end)

  -- A scheduler running "hold" with that grace period, once a run started:
  -- the process, the run's tick.
  local function hold(grace)
    local p = until_started(start("hold", { "--actions", "hold", "--grace-period", grace }))
    local t = wait.until_true(function()
      local r = rows("SELECT min(tick) AS t FROM started WHERE action = 'hold'")[1]
      return r.t ~= dbmod.null and r.t or nil
    end, "hold started", 30)
    return p, t
  end

  it("SIGTERM stops firing and lets a running action finish within the grace period: exit 0", function()
    local p, t = hold("10")
    assert.equal(0, stop(p), output(p))
    -- the run that was going when SIGTERM came committed; no run started after it
    assert.equal(1, rows("SELECT count(*) AS n FROM runs WHERE action = 'hold' AND tick = ?", { t })[1].n)
    local last = rows("SELECT max(tick) AS t FROM started WHERE action = 'hold'")[1].t
    assert.equal(1, rows("SELECT count(*) AS n FROM runs WHERE action = 'hold' AND tick = ?", { last })[1].n)
    assert.is_truthy(output(p):find("SIGTERM: stopping %(grace period 10s%)"))
    assert.is_truthy(output(p):find("stopped: %d+ ok"))
  end)

  it("a running action past the grace period is cancelled and recorded as failed; exit 0", function()
    local p, t = hold("0.2")
    assert.equal(0, stop(p), output(p))
    assert.equal(0, rows("SELECT count(*) AS n FROM runs WHERE action = 'hold' AND tick = ?", { t })[1].n)
    assert.is_truthy(output(p):find("still running at the end of the grace period"))
    assert.equal("failed", outcomes("hold")[t].outcome)
  end)
end)

describe("jararaca scheduler startup errors", function()
  local function app(body)
    local path = dir .. "/bad.lua"
    local f = assert(io.open(path, "w"))
    f:write("local j = require 'jararaca'\nlocal C = j.MessageBusController { name = 'C' }\n", body,
      "\nreturn j.Microservice { name = 'bad', controllers = { C } }\n")
    f:close()
    return path
  end

  local function fails(path, args)
    local argv = { server.bin, "scheduler", path }
    for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
    local status, out, err = run.run(argv, 30)
    return status, out .. err
  end

  it("a bad cron expression names the file, the line, the action and the position", function()
    local path = app("C.tick = j.ScheduledAction('* * * * * 99x', function() end)")
    local status, out = fails(path)
    assert.equal(1, status)
    assert.is_truthy(out:find("bad.lua:3: scheduled action C.tick (* * * * * 99x): cron: ", 1, true), out)
    assert.is_truthy(out:find("position %d+"), out)
  end)

  it("a bad option names the file, the line and the action", function()
    for _, case in ipairs {
      { "{ timeout = -1 }", "timeout: expected a number of seconds > 0, got -1" },
      { "{ allow_overlap = 'yes' }", "allow_overlap: expected true or false" },
      { "{ misfire = 'later' }", "misfire: expected one of skip, run_once" },
      { "{ dispatch = 'queue' }", "dispatch: expected one of inline, bus" },
      { "{ zone = 'Nowhere/Land' }", "zone: " },
      { "{ retries = 3 }", "unknown option \"retries\"" },
      { "{ exception_handler = 1 }", "exception_handler: expected a function" },
    } do
      local path = app("C.tick = j.ScheduledAction('* * * * * *', " .. case[1] .. ", function() end)")
      local status, out = fails(path)
      assert.equal(1, status, out)
      assert.is_truthy(out:find("bad.lua:3: scheduled action C.tick (* * * * * *): " .. case[2], 1, true), out)
    end
  end)

  it("two actions with one name, and --actions naming none of the app's", function()
    local path = app("C.a = j.ScheduledAction('* * * * * *', function() end)\n"
      .. "C.b = j.ScheduledAction('* * * * * *', { name = 'a' }, function() end)")
    local status, out = fails(path)
    assert.equal(1, status)
    assert.is_truthy(out:find("bad.lua:4: scheduled action C.b (* * * * * *): name: \"a\" is the name of " .. path
      .. ":3: scheduled action C.a", 1, true), out)
    status, out = fails(app("C.a = j.ScheduledAction('* * * * * *', function() end)"), { "--actions", "nope" })
    assert.equal(2, status)
    assert.is_truthy(out:find("--actions: no scheduled action named \"nope\" (the app's actions: a)", 1, true), out)
  end)

  it("an app without scheduled actions", function()
    local status, out = fails(app(""))
    assert.equal(2, status)
    assert.is_truthy(out:find("the app has no scheduled action to run", 1, true), out)
  end)
end)
