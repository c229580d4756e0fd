-- A RabbitMQ delivery whose retry or dead-letter copy cannot be published
-- gets exactly one settlement: the worker (in this process, on the run's
-- RabbitMQ node) gives the original back (basic.nack with requeue) and
-- counts it, instead of leaving it unacked until the connection closes.
-- The copy raises here: a message that arrives with 63 headers of its own
-- (fine for RabbitMQ and our client) makes a copy with the bus's headers
-- added (x-retry-count, x-topic, x-dead-*) past the client's 64, which
-- ac:publish refuses by raising.
local j = require "jararaca"
local amqp = require "jararaca.bus.amqp"
local worker = require "jararaca.bus.worker"
local runtime = require "jararaca.runtime"
local context = require "jararaca.context"
local sched = require "jararaca.sched"
local wait = require "spec.support.wait"
local rabbitmq = require "spec.support.rabbitmq"

local T = 30 -- seconds a state may take to come (a loaded machine)
local APP = "copyfail"

-- The handler's runs: { attempt, deliveries } per run.
local runs = {}

local W = j.MessageBusController { name = "CopyFail" }
-- its first run fails (the worker's retry copy cannot be sent), the next one succeeds
W.retried = j.IncomingHandler("copy.retry", { backoff = { initial = 1, factor = 1, max = 1, jitter = 0 } },
  function(_, msg)
    runs[#runs + 1] = { msg.attempt, msg.headers["h01"] }
    if #runs == 1 then error("the first run fails", 0) end
  end)
-- no retry: its first failure makes a dead letter, whose copy cannot be sent
W.dead = j.IncomingHandler("copy.dead", { max_retries = 0 }, function(_, msg)
  runs[#runs + 1] = { msg.attempt, msg.headers["h01"] }
  if #runs == 1 then error("the first run fails", 0) end
end)

local rt, outer, broker

setup(function()
  local url = rabbitmq.url()
  local app = j.Microservice { name = APP, controllers = { W }, bus = { url = url, declare = true } }
  local ok, r = sched.spawn(runtime.start, app, "worker"):wait()
  assert(ok, tostring(r))
  rt = r
  outer = context.current()
  context.bind(context.new("startup", rt.container))
  broker = assert(amqp.open { url = url, app = APP })
end)

teardown(function()
  context.bind(outer)
  if rt then assert(sched.spawn(rt.stop, rt):wait()) end
  -- (after the worker's connection closed: what it held is back in its queue)
  if broker then
    for _, q in ipairs { "copyfail.retried", "copyfail.dead", "copyfail.dlq" } do broker.ac:purge(q) end
    broker:close()
  end
end)

-- Publish to topic a message with 63 headers (h01..h63) of its own.
local function publish_crowded(topic, id)
  local headers = {}
  for i = 1, 63 do headers[("h%02d"):format(i)] = "v" .. i end
  assert.is_true(broker.ac:publish(APP, topic, "body", { message_id = id, headers = headers }))
end

local function ready(queue)
  return assert(broker.ac:queue_info(queue)).messages
end

for _, case in ipairs {
  { handler = "retried", topic = "copy.retry", copy = "retry" },
  { handler = "dead", topic = "copy.dead", copy = "dead letter" },
} do
  it(("a %s copy that raises: the original is given back (not left unacked) and handled again"):format(case.copy),
    function()
      runs = {}
      local w = assert(worker.start(rt, { handlers = { case.handler } }))
      local ok, err = pcall(function()
        publish_crowded(case.topic, "crowded-" .. case.handler)
        -- the first run fails, its copy raises: the original comes back at
        -- once (a redelivery, not a retry: the attempt is unchanged) and
        -- its second run succeeds
        wait.until_true(function() return #runs == 2 end, "the message runs a second time", T)
        assert.same({ { 1, "v1" }, { 1, "v1" } }, runs)
        wait.until_true(function() return w.counts.acked == 1 end, "the second run is acked", T)
        -- one outcome each: the failed copy counted (lost: the broker
        -- delivers it again), then the ack; no copy anywhere
        assert.same({ acked = 1, retried = 0, dead = 0, released = 0, lost = 1 }, w.counts)
        assert.equal(0, ready(APP .. "." .. case.handler))
        assert.equal(0, ready(APP .. ".dlq"))
      end)
      local counts = w:stop(5)
      assert(ok, err)
      assert.same({ acked = 1, retried = 0, dead = 0, released = 0, lost = 1 }, counts)
    end)
end
