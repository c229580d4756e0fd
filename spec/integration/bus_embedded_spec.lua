-- The embedded broker shared by processes: this spec publishes into a
-- SQLite file, two real consumer processes (the jararaca binary running
-- spec/integration/apps/bus_consumer.lua) drain it; what they handled is
-- counted in the file. One process: spec/unit/bus_embedded_spec.lua.
local bus = require "spec.support.bus"
local files = require "spec.support.files"
local wait = require "spec.support.wait"
local read = require("spec.support.run").read

local N = 2000
local query, scalar = bus.query, bus.count

local dir, fresh_path

setup(function() dir, fresh_path = files.temp_dir("bus", ".db") end)
teardown(function() files.remove_dir(dir) end)

local function start_consumer(path, name, env)
  local log = ("%s/%s.log"):format(dir, name)
  return { proc = bus.start_consumer(path, name, env, log), log = log, name = name }
end

local function output(c) return read(c.log) or "" end

-- Start two consumers, wait until both are ready, publish N messages (in
-- batches of 100, as a server's requests would), then say it is done.
local function run_two(env, env_a)
  local path = fresh_path()
  local b = bus.prepare(path)
  local a, c = start_consumer(path, "a", env_a or env), start_consumer(path, "b", env)
  wait.until_true(function() return scalar(b, "SELECT count(*) AS n FROM consumers") == 2 end,
    "both consumers are ready", 30)
  for first = 1, N, 100 do
    local msgs = {}
    for i = first, first + 99 do msgs[#msgs + 1] = { topic = "job.run", body = tostring(i), id = "m" .. i } end
    assert.equal(100, assert(b:publish(msgs)))
  end
  bus.published(b)
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
