-- `jararaca worker --workers N` and `--broker-url`, real processes on real
-- SQLite files (spec/integration/apps/bus_workers.lua): a master pre-forks
-- the workers (as `jararaca server` does), they share the handlers' queues
-- on the embedded broker named by --broker-url (winning over
-- JARARACA_BUS_URL), every message is handled exactly once, a worker killed
-- with SIGKILL is replaced, and SIGTERM to the master stops them all after
-- their in-flight handlers finished.
local sys = require "jararaca.core.sys"
local dbmod = require "jararaca.db"
local embedded = require "jararaca.bus.embedded"
local json = require "jararaca.json"
local server = require "spec.support.server"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local bus = require "spec.support.bus"

local APP = server.root .. "/spec/integration/apps/bus_workers.lua"

local dir, env, broker, appdb

local function start_worker(name, args)
  return bus.start_worker(APP, ("%s/%s.log"):format(dir, name), args, env)
end

local function output(w) return run.read(w.log) or "" end

-- The pids of the "worker started" lines so far, in order, and the broker
-- URL each named.
local function started(w)
  local pids, urls = {}, {}
  for pid, url in output(w):gmatch("worker started %(pid (%d+), broker ([^)]+)%)") do
    pids[#pids + 1] = tonumber(pid)
    urls[#urls + 1] = url
  end
  return pids, urls
end

local function until_started(w, n)
  wait.until_true(function() return #started(w) >= n end, n .. " worker(s) started:\n" .. output(w), 30)
  return started(w)
end

local function rows(sql, params)
  return bus.query({ db = appdb }, sql, params)
end

local function publish(topic, from, to)
  local msgs = {}
  for n = from, to do msgs[#msgs + 1] = { topic = topic, body = assert(json.encode { n = n }),
      headers = { ["content-type"] = "application/json" } } end
  assert(broker:publish(msgs))
end

local function handled_count()
  return rows("SELECT count(*) AS n FROM handled")[1].n
end

local function stop(w, sig)
  w.proc:kill(sig or "SIGTERM")
  local status = w.proc:wait(30)
  if status == nil then w.proc:kill("SIGKILL"); w.proc:wait(5) end
  return status
end

before_each(function()
  dir = files.temp_dir("busworkers")
  -- a decoy: the environment names another broker file, --broker-url wins
  env = { BUS_W_DB = dir .. "/app.db", JARARACA_LOG_LEVEL = "info",
    JARARACA_BUS_URL = "sqlite:///" .. dir .. "/decoy.bus.db" }
  broker = assert(embedded.open(dir .. "/bus.db"))
  -- the queues exist before the workers start: the spec publishes at once
  assert(broker:bind("busworkers.work", "work.#"))
  assert(broker:bind("busworkers.hold", "hold.#"))
end)

after_each(function()
  if appdb then appdb:close(); appdb = nil end
  if broker then broker:close(); broker = nil end
  files.remove_dir(dir)
end)

local function open_appdb()
  -- the workers' migrations made it; open it once they started
  appdb = assert(dbmod.open { path = dir .. "/app.db" })
end

describe("jararaca worker --workers N --broker-url URL", function()
  it("two workers share the queue: 200 messages, each handled exactly once, by both; a SIGKILLed worker is "
    .. "replaced; SIGTERM -> exit 0", function()
    local w = start_worker("two", { "--workers", "2", "--broker-url", "sqlite:///" .. dir .. "/bus.db",
      "--prefetch", "5", "--grace-period", "5" })
    local pids, urls = until_started(w, 2)
    assert.are_not.equal(pids[1], pids[2])
    for _, url in ipairs(urls) do assert.equal("sqlite:///" .. dir .. "/bus.db", url) end
    open_appdb()

    publish("work.item", 1, 200)
    wait.until_true(function() return handled_count() >= 200 end, "200 messages handled:\n" .. output(w), 60)
    local t = rows("SELECT count(*) AS total, count(DISTINCT id) AS ids, count(DISTINCT n) AS ns, min(n) AS lo, "
      .. "max(n) AS hi FROM handled")[1]
    assert.same({ total = 200, ids = 200, ns = 200, lo = 1, hi = 200 }, t) -- no duplicate, none missing
    local by_pid = {}
    for _, r in ipairs(rows("SELECT pid, count(*) AS n FROM handled GROUP BY pid")) do by_pid[r.pid] = r.n end
    assert.is_true((by_pid[pids[1]] or 0) > 0, "worker 1 handled none: " .. json.encode(by_pid))
    assert.is_true((by_pid[pids[2]] or 0) > 0, "worker 2 handled none: " .. json.encode(by_pid))
    assert.equal(200, (by_pid[pids[1]] or 0) + (by_pid[pids[2]] or 0))
    -- (a handler's row commits before its message's ack, a second write on the broker's file)
    wait.until_true(function() return bus.count(broker, "SELECT count(*) AS n FROM jr_bus_messages") == 0 end,
      "every message acked", 15)

    -- The master restarts a worker that dies (as the server's does).
    assert(sys.kill(pids[1], "SIGKILL"))
    local now = until_started(w, 3)
    assert.is_truthy(output(w):find("master: worker %d %(pid " .. pids[1] .. "%) died %(signal 9%), restarting"))
    publish("work.item", 201, 220)
    wait.until_true(function() return handled_count() >= 220 end, "220 messages handled:\n" .. output(w), 60)
    t = rows("SELECT count(*) AS total, count(DISTINCT id) AS ids, count(DISTINCT n) AS ns FROM handled")[1]
    assert.same({ total = 220, ids = 220, ns = 220 }, t)
    assert.equal(0, rows("SELECT count(*) AS n FROM handled WHERE pid = ? AND n > 200", { pids[1] })[1].n)

    -- SIGTERM to the master reaches both workers: each stops and says so; the master exits 0.
    assert.equal(0, stop(w), output(w))
    local out = output(w)
    local stops = 0
    for _ in out:gmatch("stopped: %d+ acked") do stops = stops + 1 end
    assert.equal(2, stops, out)
    assert.is_truthy(out:find("master: all workers stopped", 1, true))
    assert.is_truthy(now[3] ~= pids[1] and now[3] ~= pids[2])
    -- --broker-url won over JARARACA_BUS_URL: the decoy file was never opened
    assert.is_nil(io.open(dir .. "/decoy.bus.db"))
  end)

  it("SIGTERM to the master reaches every worker; each lets its in-flight handlers finish (--grace-period)",
    function()
    local w = start_worker("hold", { "--workers", "2", "--broker-url", "sqlite:///" .. dir .. "/bus.db",
      "--grace-period", "10" })
    local pids = until_started(w, 2)
    open_appdb()
    publish("hold.item", 1, 4)
    -- every delivery running, on either worker, held at the gate
    wait.until_true(function() return rows("SELECT count(*) AS n FROM started")[1].n >= 4 end,
      "4 hold handlers started:\n" .. output(w), 30)
    w.proc:kill("SIGTERM")
    -- both workers got it (relayed by the master) while their handlers were held
    wait.until_true(function()
      local _, n = output(w):gsub("SIGTERM: stopping %(grace period 10s%)", "")
      return n >= 2
    end, "both workers stopping:\n" .. output(w), 30)
    assert.equal(0, handled_count())
    local tx = appdb:begin("write")
    assert(tx:execute("INSERT INTO gates (name) VALUES ('open')"))
    assert(tx:commit())
    assert.equal(0, stop(w), output(w))
    local t = rows("SELECT count(*) AS total, count(DISTINCT n) AS ns FROM handled")[1]
    assert.same({ total = 4, ns = 4 }, t) -- all finished, none released
    assert.equal(0, bus.count(broker, "SELECT count(*) AS n FROM jr_bus_messages"))
    local seen = {}
    for _, r in ipairs(rows("SELECT DISTINCT pid FROM started")) do seen[#seen + 1] = r.pid end
    for _, pid in ipairs(seen) do assert.is_truthy(pid == pids[1] or pid == pids[2]) end
  end)

  it("a worker that fails to start stops the master with exit 1 (no restart loop)", function()
    local w = start_worker("bad", { "--workers", "2", "--broker-url", "sqlite:///" .. dir .. "/bus.db",
      "--handlers", "nope" })
    local status = w.proc:wait(30)
    if status == nil then w.proc:kill("SIGKILL"); w.proc:wait(5) end
    local out = output(w)
    assert.equal(1, status, out)
    assert.is_truthy(out:find("failed during startup", 1, true), out)
    assert.is_truthy(out:find("nope", 1, true), out)
  end)

  it("a bad --broker-url is refused before the app starts (exit 2, naming the option)", function()
    local status, out, err = run.run({ server.bin, "worker", APP, "--broker-url", "redis://x", env = env }, 30)
    assert.equal(2, status, out .. err)
    assert.is_truthy(err:find("--broker-url", 1, true), err)
    status, out, err = run.run({ server.bin, "worker", APP, "--workers", "0", env = env }, 30)
    assert.equal(2, status, out .. err)
    assert.is_truthy(err:find("--workers", 1, true), err)
  end)

  it("one worker with --broker-url consumes from that file, not from JARARACA_BUS_URL's or the app's", function()
    env.BUS_W_URL = "sqlite:///" .. dir .. "/app-decoy.bus.db"
    local w = start_worker("one", { "--broker-url", "sqlite:///" .. dir .. "/bus.db" })
    local _, urls = until_started(w, 1)
    assert.equal("sqlite:///" .. dir .. "/bus.db", urls[1])
    open_appdb()
    publish("work.item", 1, 10)
    wait.until_true(function() return handled_count() >= 10 end, "10 messages handled:\n" .. output(w), 30)
    assert.equal(0, stop(w), output(w))
    assert.equal(10, rows("SELECT count(DISTINCT n) AS n FROM handled")[1].n)
    assert.is_nil(io.open(dir .. "/decoy.bus.db"))
    assert.is_nil(io.open(dir .. "/app-decoy.bus.db"))
  end)
end)
