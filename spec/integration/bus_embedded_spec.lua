-- The embedded broker shared by processes: this spec publishes into a
-- SQLite file, two real consumer processes (the jararaca binary running
-- spec/integration/apps/bus_consumer.lua) drain it; what they handled is
-- counted in the file. One process: spec/unit/bus_embedded_spec.lua.
local embedded = require "jararaca.bus.embedded"
local process = require "jararaca.core.process"
local server = require "spec.support.server"
local wait = require "spec.support.wait"

local CONSUMER = server.root .. "/spec/integration/apps/bus_consumer.lua"
local N = 2000

local dir

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'") == 0)
end)

teardown(function()
  os.execute("rm -rf '" .. dir .. "'")
end)

local n_files = 0

-- A broker on a fresh file with the queue bound and the consumers' tables.
local function fresh()
  n_files = n_files + 1
  local path = ("%s/bus%d.db"):format(dir, n_files)
  local b = assert(embedded.open(path))
  assert(b:bind("jobs", "job.#"))
  local tx = b.db:begin("write")
  assert(tx:exec_script([[
    CREATE TABLE handled (id TEXT NOT NULL, consumer TEXT NOT NULL, deliveries INTEGER NOT NULL);
    CREATE TABLE consumers (name TEXT NOT NULL, pid INTEGER NOT NULL);
    CREATE TABLE control (key TEXT PRIMARY KEY);
  ]]))
  assert(tx:commit())
  return b, path
end

local function query(b, sql, params)
  local tx = b.db:begin("read")
  local rows = assert(tx:query(sql, params))
  tx:commit()
  return rows
end

local function scalar(b, sql, params)
  return query(b, sql, params)[1].n
end

local function start_consumer(path, name, env)
  local log = ("%s/%s.log"):format(dir, name)
  local e = { BUS_DB = path, BUS_QUEUE = "jobs", BUS_NAME = name, JARARACA_LOG_LEVEL = "warn" }
  for k, v in pairs(env or {}) do e[k] = v end
  local p = assert(process.spawn { server.bin, "test", CONSUMER, env = e, stdout = log, stderr = log })
  return { proc = p, log = log, name = name }
end

local function output(c)
  local f = io.open(c.log)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- Start two consumers, wait until both are ready, publish N messages (in
-- batches of 100, as a server's requests would), then say it is done.
local function run_two(env, env_a)
  local b, path = fresh()
  local a, c = start_consumer(path, "a", env_a or env), start_consumer(path, "b", env)
  wait.until_true(function() return scalar(b, "SELECT count(*) AS n FROM consumers") == 2 end,
    "both consumers are ready", 30)
  for first = 1, N, 100 do
    local msgs = {}
    for i = first, first + 99 do msgs[#msgs + 1] = { topic = "job.run", body = tostring(i), id = "m" .. i } end
    assert.equal(100, assert(b:publish(msgs)))
  end
  local tx = b.db:begin("write")
  assert(tx:execute("INSERT INTO control (key) VALUES ('published')"))
  assert(tx:commit())
  return b, a, c
end

local function finished(c)
  local status = c.proc:wait(60)
  assert.equal(0, status, c.name .. ": " .. output(c))
end

describe("embedded broker, two consumer processes", function()
  it("handle each of 2,000 messages exactly once when nobody crashes", function()
    local b, a, c = run_two()
    finished(a)
    finished(c)
    assert.equal(N, scalar(b, "SELECT count(*) AS n FROM handled"))
    assert.equal(N, scalar(b, "SELECT count(DISTINCT id) AS n FROM handled"))
    -- both took part
    local per = query(b, "SELECT consumer, count(*) AS n FROM handled GROUP BY consumer ORDER BY consumer")
    assert.equal(2, #per)
    assert.equal(0, assert(b:stats()).queues.jobs.total)
    b:close()
  end)

  it("handle each at least once when one is SIGKILLed mid-handler: its leases expire and the other takes them", function()
    -- a hangs in its handlers after 200 messages, between recording and
    -- acking (the rest of its batch of 20 is leased, recorded, not acked)
    local b, a, c = run_two({ BUS_LEASE = "1", BUS_BATCH = "20" },
      { BUS_LEASE = "1", BUS_BATCH = "20", BUS_STALL_AFTER = "200" })
    wait.until_true(function()
      return scalar(b, "SELECT count(*) AS n FROM control WHERE key = 'stalled a'") == 1
    end, "consumer a hangs mid-handler", 30)
    assert(a.proc:kill("SIGKILL"))
    local _, signal = a.proc:wait(10)
    assert.equal(9, signal)
    finished(c)
    local by_a = scalar(b, "SELECT count(*) AS n FROM handled WHERE consumer = 'a'")
    assert.truthy(by_a > 200 and by_a < N, "a was killed mid-way: " .. by_a)
    -- none lost
    assert.equal(N, scalar(b, "SELECT count(DISTINCT id) AS n FROM handled"))
    -- what a handled but did not ack came back (a second delivery, to b):
    -- handled twice, and only those (at most its batch of 20)
    local again = query(b, [[SELECT id FROM handled GROUP BY id HAVING count(*) > 1]])
    assert.truthy(#again >= 1 and #again <= 20, "handled twice: " .. #again)
    for _, r in ipairs(again) do
      assert.equal(1, scalar(b, "SELECT count(*) AS n FROM handled WHERE id = ? AND consumer = 'b' AND deliveries = 2",
        { r.id }))
    end
    assert.equal(N + #again, scalar(b, "SELECT count(*) AS n FROM handled"))
    assert.equal(0, assert(b:stats()).queues.jobs.total)
    b:close()
  end)
end)
