-- luacheck: std +busted
-- bench/bus/amqp_consume.lua - jararaca.core.amqp's consumer, by hand:
--
--   build/jararaca test bench/bus/amqp_consume.lua
--       the run's private RabbitMQ node (spec/support/rabbitmq.lua, started
--       if need be): a durable queue pre-loaded with AMQP_COUNT (default
--       100000) persistent ~95-byte JSON messages by our own publisher (50
--       tasks, each publish waits for its confirm: that rate is printed too),
--       then drained
--   bench/bus/amqp_consume.sh URL QUEUE COUNT PREFETCH
--       drain a queue someone else filled: the anchors' CUSTOM_CONSUME hook
--       (../shared/bench/anchors/run_amqp.sh)
--
-- The drain: basic.consume with prefetch AMQP_PREFETCH (default 200), every
-- delivery in a task of its own that acks it (AMQP_DECODE=1: decodes the
-- JSON body first); the clock runs from consume to the COUNT-th ack, like
-- the anchors' clients. Prints `RESULT amqp jararaca-consume msgs=N secs=S rate=R`.
--
-- Figures (2026-12-03, this 2-core box, a private node from
-- spec/services/rabbitmq.sh, Release build, 100 000 messages, prefetch 200,
-- two rounds; the anchors' C client `c/amqp_bench consume` on the same
-- node just before each):
--   C librabbitmq (raw)        25 341 / 23 513 msgs/s   client CPU 0.54 s
--   jararaca.core.amqp         24 176 / 24 229 msgs/s   client CPU 0.83 s
--   jararaca, AMQP_DECODE=1    15 040 msgs/s (one run) client CPU 1.08 s
-- The broker is the ceiling (cf. RESULTS.md); the client's cost is its CPU:
-- ~8 us per message with a task, a delivery object and an ack each.
-- Publishing 50 000, 50 tasks each awaiting its confirm (50 in flight):
-- 10 956 msgs/s; the C tool with a window of 50: 9 926, of 1000: 14 631.
local amqp = require "jararaca.core.amqp"
local sched = require "jararaca.sched"
local json = require "jararaca.json"

local URL = os.getenv("AMQP_URL")
local QUEUE = os.getenv("AMQP_QUEUE") or "jrbench.amqp.consume"
local COUNT = tonumber(os.getenv("AMQP_COUNT")) or 100000
local PREFETCH = tonumber(os.getenv("AMQP_PREFETCH")) or 200
local DECODE = os.getenv("AMQP_DECODE") == "1"

local function body(i)
  return ('{"id":%d,"type":"user.created","data":{"name":"user-%d","email":"user-%d@example.com"}}'):format(i, i, i)
end

local function preload(ac)
  assert(ac:declare_queue(QUEUE))
  local t0, per, tasks = sched.clock(), math.ceil(COUNT / 50), {}
  for t = 1, 50 do
    tasks[t] = sched.spawn(function()
      for i = (t - 1) * per + 1, math.min(COUNT, t * per) do assert(ac:publish("", QUEUE, body(i))) end
    end)
  end
  for t = 1, 50 do assert(tasks[t]:wait()) end
  local secs = sched.clock() - t0
  print(("RESULT amqp jararaca-publish-confirmed(50 tasks) msgs=%d secs=%.3f rate=%.0f"):format(COUNT, secs, COUNT / secs))
end

local function drain(ac)
  local acked, done = 0, false
  local t0 = sched.clock()
  ac:consume(QUEUE, PREFETCH, function(d)
    if DECODE then assert(json.decode(d.body)) end
    assert(d:ack())
    acked = acked + 1
    if acked == COUNT then done = sched.clock() end
  end)
  while not done do sched.sleep(0.01) end
  local secs = done - t0
  print(("RESULT amqp jararaca-consume msgs=%d secs=%.3f rate=%.0f"):format(COUNT, secs, COUNT / secs))
end

describe("jararaca.core.amqp consumer", function()
  it("drains the queue", function()
    local own = not URL
    local url = URL or require("spec.support.rabbitmq").url()
    local ac = assert(amqp.connect(url))
    if own then preload(ac) end
    drain(ac)
    ac:close()
  end)
end)
