-- luacheck: std +busted
-- bench/bus/amqp_publish.lua - publishing through the bus's RabbitMQ broker
-- (jararaca.bus.amqp's broker:publish: every message waits for its
-- confirm), by hand:
--
--   AMQP_URL=amqp://... build/jararaca test bench/bus/amqp_publish.lua
--       (no AMQP_URL: the run's private node, spec/support/rabbitmq.lua)
--   env: AMQP_COUNT (default 100000) messages per case; PUBLISH_ONLY=lua-pattern
--        runs the matching cases only
--
-- The app "jrbench" with one handler queue bound to "bench.#" (declared
-- first, and purged before each case): every message is routed by the
-- app's topic exchange into that durable queue, persistent, with a fresh
-- message id, ~95-byte JSON bodies like the anchors'. Cases:
--   batches of 200 (the outbox relay's batch, jararaca.bus.outbox), one
--     broker:publish(list) after the other
--   batches of 1000 (the window of the anchors' C publisher)
--   one message per call from 1000 concurrent tasks (<= 1000 unconfirmed,
--     as the C publisher's window)
-- Prints `RESULT amqp jararaca-bus-publish-<case> msgs=N secs=S rate=R
-- cpu_s=C` (cpu_s: this process's utime+stime over the case) and checks
-- the queue holds N messages.
local amqp = require "jararaca.bus.amqp"
local topology = require "jararaca.bus.amqp_topology"
local sched = require "jararaca.sched"

local URL = os.getenv("AMQP_URL")
local COUNT = tonumber(os.getenv("AMQP_COUNT")) or 100000
local ONLY = os.getenv("PUBLISH_ONLY")
local QUEUE = "jrbench.sink"

local function cpu_seconds()
  local f = assert(io.open("/proc/self/stat"))
  local fields = {}
  for v in f:read("*a"):match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = v end
  f:close()
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- USER_HZ
end

local function message(i)
  return { topic = "bench.created", body = ('{"id":%d,"type":"user.created","data":{"name":"user-%d","email":'
    .. '"user-%d@example.com"}}'):format(i, i, i), headers = { ["content-type"] = "application/json" } }
end

local function batches(b, size)
  for first = 1, COUNT, size do
    local msgs = {}
    for i = first, math.min(COUNT, first + size - 1) do msgs[#msgs + 1] = message(i) end
    assert(b:publish(msgs))
  end
end

local function tasks(b, k)
  local per = math.ceil(COUNT / k)
  local fns = {}
  for t = 1, k do
    fns[t] = function()
      for i = (t - 1) * per + 1, math.min(COUNT, t * per) do assert(b:publish(message(i))) end
    end
  end
  sched.gather(unpack(fns))
end

local CASES = {
  { "batches200", function(b) batches(b, 200) end },
  { "batches1000", function(b) batches(b, 1000) end },
  { "tasks1000", function(b) tasks(b, 1000) end },
}

describe("publishing through the bus's RabbitMQ broker", function()
  it("publishes with confirms", function()
    local url = URL or require("spec.support.rabbitmq").url()
    local b = assert(amqp.open({ url = url, where = "bench", app = "jrbench" }))
    assert(topology.declare(b.ac, b.names, { { queue = QUEUE, topic = "bench.#" } }))
    for _, c in ipairs(CASES) do
      if not ONLY or c[1]:find(ONLY) then
        assert(b.ac:purge(QUEUE))
        collectgarbage()
        local cpu0, t0 = cpu_seconds(), sched.clock()
        c[2](b)
        local secs, cpu = sched.clock() - t0, cpu_seconds() - cpu0
        print(("RESULT amqp jararaca-bus-publish-%s msgs=%d secs=%.3f rate=%.0f cpu_s=%.2f"):format(c[1], COUNT, secs,
          COUNT / secs, cpu))
        local info = assert(b.ac:queue_info(QUEUE))
        assert.equal(COUNT, info.messages)
      end
    end
    assert(b.ac:purge(QUEUE))
    b:close()
  end)
end)
