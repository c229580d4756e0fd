-- jararaca.core.amqp (bindings/l_amqp.c) against the run's private RabbitMQ
-- node (spec/support/rabbitmq.lua): every call parks its task until the
-- broker answered, failures are nil, msg, code, and a cancelled wait
-- leaves the late answer harmless.
local amqp = require "jararaca.core.amqp"
local csched = require "jararaca.core.sched"
local sched = require "jararaca.sched"
local process = require "jararaca.core.process"
local rabbitmq = require "spec.support.rabbitmq"
local client = require "spec.support.client"
local wait = require "spec.support.wait"

local seq = 0
-- Names of our own on the shared node.
local function name(what)
  seq = seq + 1
  return ("jrspec.amqp.%s.%d.%d"):format(what, os.time(), seq)
end

local function connect(url, opts)
  return amqp.connect(url or rabbitmq.url(), opts)
end

-- A durable queue bound to a fresh topic exchange under key: queue, exchange.
local function topology(ac, key, qopts)
  local ex, q = name("ex"), name("q")
  assert(ac:declare_exchange(ex, "topic"))
  assert(ac:declare_queue(q, qopts))
  assert(ac:bind(q, ex, key))
  return q, ex
end

local function queue_len(q)
  local out = assert(rabbitmq.ctl("list_queues", "name", "messages"))
  for n, count in out:gmatch("(%S+)%s+(%d+)") do
    if n == q then return tonumber(count) end
  end
end

describe("jararaca.core.amqp", function()
  it("connects, declares and round-trips a message with its headers", function()
    local ac = assert(connect())
    local q, ex = topology(ac, "task.*")
    assert.is_true(ac:publish(ex, "task.created", '{"id":1}', {
      message_id = "m-1", content_type = "application/json",
      headers = { traceparent = "00-abc-def-01", attempt = 2, urgent = true },
    }))
    local got
    ac:consume(q, 10, function(d)
      got = { body = d.body, headers = d.headers, id = d.message_id, ctype = d.content_type,
        redelivered = d.redelivered, key = d.routing_key, ex = d.exchange, q = d.queue, ack = { d:ack() } }
    end)
    wait.until_true(function() return got end, "the message is delivered")
    assert.same({
      body = '{"id":1}', id = "m-1", ctype = "application/json", redelivered = false,
      key = "task.created", ex = ex, q = q, ack = { true },
      headers = { traceparent = "00-abc-def-01", attempt = "2", urgent = "true" },
    }, got)
    local st = ac:stats()
    assert.is_true(st.up)
    assert.equal(1, st.published)
    assert.equal(1, st.deliveries)
    assert.is_true(ac:close())
    wait.until_true(function() return queue_len(q) == 0 end, "the acked message is gone from " .. q)
  end)

  it("answers publish once the broker confirmed: the message is in the queue", function()
    local ac = assert(connect())
    local q, ex = topology(ac, "k")
    for i = 1, 3 do assert.is_true(ac:publish(ex, "k", "m" .. i)) end
    assert.equal(3, ac:stats().published)
    assert.equal(3, queue_len(q))
    ac:close()
  end)

  it("answers a refused declaration with the broker's reason, and goes on", function()
    local ac = assert(connect())
    local q = name("q")
    assert(ac:declare_queue(q, { message_ttl = 1000 }))
    local ok, msg, code = ac:declare_queue(q, { message_ttl = 2000 })
    assert.is_nil(ok)
    assert.equal("refused", code)
    assert.matches("PRECONDITION_FAILED", msg)
    assert.is_true(ac:declare_queue(q, { message_ttl = 1000 }))
    ac:close()
  end)

  it("keeps at most prefetch deliveries unsettled", function()
    local ac = assert(connect())
    local q, ex = topology(ac, "p")
    for i = 1, 10 do assert(ac:publish(ex, "p", tostring(i))) end
    local held = {}
    ac:consume(q, 3, function(d) held[#held + 1] = d end)
    wait.until_true(function() return #held == 3 end, "3 deliveries")
    -- exactly 3 left the queue: the broker holds the other 7 back (with the
    -- bound broken it would have sent them all at once)
    assert.same({ messages = 7, consumers = 1 }, ac:queue_info(q))
    assert.equal(3, #held)
    assert.is_true(held[1]:ack())
    wait.until_true(function() return #held == 4 end, "a 4th delivery after one ack")
    ac:close()
  end)

  it("cancels a consumer: no delivery after, the earlier ones stay settleable, its fn is released", function()
    local ac = assert(connect())
    local q, ex = topology(ac, "c")
    for i = 1, 2 do assert(ac:publish(ex, "c", "m" .. i)) end
    local held = {}
    local fn = function(d) held[#held + 1] = d end
    -- the client keeps fn in the registry while the consumer may get deliveries
    local function anchored()
      for _, v in pairs(debug.getregistry()) do
        if v == fn then return true end
      end
      return false
    end
    local id = ac:consume(q, 1, fn)
    assert.is_true(anchored())
    wait.until_true(function() return #held == 1 end, "the first delivery")
    assert.is_true(ac:cancel(id))
    assert.is_true(held[1]:ack())
    -- m2 stays in the queue with nobody consuming it
    assert.same({ messages = 1, consumers = 0 }, ac:queue_info(q))
    assert.equal(1, #held)
    assert.equal("m1", held[1].body)
    assert.is_false(anchored(), "the consumer's function was released")
    local ok, msg, code = ac:cancel(id)
    assert.is_nil(ok)
    assert.equal("not_found", code)
    assert.is_string(msg)
    assert.has_error(function() ac:cancel("x") end)
    ac:close()
  end)

  it("answers queue_info, exchange_exists and purge; a missing one is not_found and the client goes on", function()
    local ac = assert(connect())
    local q, ex = topology(ac, "i")
    for i = 1, 3 do assert(ac:publish(ex, "i", "m" .. i)) end
    assert.same({ messages = 3, consumers = 0 }, ac:queue_info(q))
    assert.is_true(ac:exchange_exists(ex))

    local ok, msg, code = ac:queue_info(name("nosuch"))
    assert.same({ nil, "not_found" }, { ok, code })
    assert.matches("404 NOT_FOUND", msg)
    ok, msg, code = ac:exchange_exists(name("nosuch"))
    assert.same({ nil, "not_found" }, { ok, code })
    assert.matches("NOT_FOUND", msg)
    ok, msg, code = ac:purge(name("nosuch"))
    assert.same({ nil, "not_found" }, { ok, code })
    assert.matches("NOT_FOUND", msg)

    -- still connected, publishes and declarations still work
    assert.equal(0, ac:stats().reconnects)
    assert.is_true(ac:publish(ex, "i", "m4"))
    assert.equal(4, ac:purge(q))
    assert.same({ messages = 0, consumers = 0 }, ac:queue_info(q))
    assert.equal(0, queue_len(q))
    assert.has_error(function() ac:queue_info("") end)
    assert.has_error(function() ac:purge() end)
    ac:close()
    ok, msg, code = ac:queue_info(q)
    assert.same({ nil, "closed" }, { ok, code })
    assert.is_string(msg)
  end)

  it("gets one message as a delivery, false when the queue is empty", function()
    local ac = assert(connect())
    local q = name("q")
    assert(ac:declare_queue(q))
    assert.is_false(ac:get(q))
    -- the default exchange (""): the key is the queue's name; header values
    -- that are numbers or booleans travel as text
    assert.is_true(ac:publish("", q, "first", {
      message_id = "g-1", content_type = "text/plain",
      headers = { attempt = 2, ratio = 0.5, urgent = true, off = false, s = "x" },
    }))
    assert.is_true(ac:publish("", q, "second"))
    local d = assert(ac:get(q))
    assert.same({
      body = "first", message_id = "g-1", content_type = "text/plain", redelivered = false,
      routing_key = q, exchange = "", queue = q,
      headers = { attempt = "2", ratio = "0.5", urgent = "true", off = "false", s = "x" },
    }, { body = d.body, message_id = d.message_id, content_type = d.content_type, redelivered = d.redelivered,
      routing_key = d.routing_key, exchange = d.exchange, queue = d.queue, headers = d.headers })
    assert.is_true(d:nack(true))
    assert.has_error(function() d:ack() end)
    d = assert(ac:get(q))
    assert.equal("first", d.body)
    assert.is_true(d.redelivered)
    assert.is_true(d:ack())
    d = assert(ac:get(q))
    assert.equal("second", d.body)
    assert.same({}, d.headers)
    assert.is_true(d:reject())
    assert.is_false(ac:get(q))
    assert.same({ messages = 0, consumers = 0 }, ac:queue_info(q))

    local ok, msg, code = ac:get(name("nosuch"))
    assert.same({ nil, "not_found" }, { ok, code })
    assert.matches("NOT_FOUND", msg)
    -- the consumers' channel was not touched: a consumer still gets messages
    local got
    ac:consume(q, 1, function(m) got = m.body; m:ack() end)
    assert.is_true(ac:publish("", q, "third"))
    wait.until_true(function() return got end, "the consumer's delivery")
    assert.equal("third", got)
    assert.equal(0, ac:stats().reconnects)
    ac:close()
  end)

  it("redelivers a message nacked with requeue, marked redelivered", function()
    local ac = assert(connect())
    local q, ex = topology(ac, "n")
    assert(ac:publish(ex, "n", "again", { message_id = "n-1" }))
    local seen, again = {}, {}
    ac:consume(q, 1, function(d)
      seen[#seen + 1] = { d.message_id, d.redelivered, #seen == 0 and d:nack(true) or d:ack() }
      again[#again + 1] = { pcall(function() d:ack() end) }
    end)
    wait.until_true(function() return #seen == 2 end, "the redelivery")
    assert.same({ { "n-1", false, true }, { "n-1", true, true } }, seen)
    for _, r in ipairs(again) do -- a second settle raises (the broker would close the channel)
      assert.is_false(r[1])
      assert.matches("amqp_spec.lua:%d+: delivery:ack%(%): the delivery is settled already", r[2])
    end
    ac:close()
  end)

  it("calls a direct consumer's fn from the loop (no task); its acks reach the broker even when it closes at once", function()
    local ac = assert(connect())
    local q, ex = topology(ac, "d")
    for i = 1, 300 do assert(ac:publish(ex, "d", "m" .. i)) end
    local n, in_task, acked = 0, false, 0
    ac:consume(q, 50, function(d)
      n = n + 1
      in_task = in_task or csched.current() ~= nil
      if d:ack() then acked = acked + 1 end
      -- the acks of this read wait to be written with the others: the close writes them first
      if n == 300 then ac:close() end
    end, { direct = true })
    wait.until_true(function() return n == 300 end, "the 300 deliveries")
    assert.is_false(in_task)
    assert.equal(300, acked)
    local other = assert(connect())
    local info
    wait.until_true(function()
      info = assert(other:queue_info(q))
      return info.consumers == 0
    end, "the broker has seen the close")
    assert.equal(0, info.messages) -- none unacknowledged (requeued by the close)
    other:close()
  end)

  it("dead-letters a rejected message through the queue's arguments", function()
    local ac = assert(connect())
    local dlx, dlq = name("dlx"), name("dlq")
    assert(ac:declare_exchange(dlx, "direct"))
    assert(ac:declare_queue(dlq))
    assert(ac:bind(dlq, dlx, "dead"))
    local q, ex = topology(ac, "r", { dead_letter_exchange = dlx, dead_letter_routing_key = "dead" })
    assert(ac:publish(ex, "r", "poison"))
    local rejected
    ac:consume(q, 1, function(d) rejected = d:reject() end)
    wait.until_true(function() return queue_len(dlq) == 1 end, "the message in the dead-letter queue")
    assert.is_true(rejected)
    ac:close()
  end)

  it("confirms 1000 publishes from 50 tasks", function()
    local ac = assert(connect())
    local q, ex = topology(ac, "many")
    local tasks = {}
    for t = 1, 50 do
      tasks[t] = sched.spawn(function()
        for i = 1, 20 do assert(ac:publish(ex, "many", ("%d.%d"):format(t, i))) end
      end)
    end
    for t = 1, 50 do assert.is_true((tasks[t]:wait(30))) end
    local st = ac:stats()
    assert.equal(1000, st.published)
    assert.equal(0, st.inflight)
    assert.equal(1000, queue_len(q))
    ac:close()
  end)

  it("fails to connect with nil, msg, code and never shows the password", function()
    local ok, msg, code = amqp.connect("http://localhost")
    assert.is_nil(ok)
    assert.equal("invalid", code)
    assert.is_string(msg)

    local port = rabbitmq.url():match(":(%d+)$")
    ok, msg, code = amqp.connect("amqp://guest:s3cr3t-pw@127.0.0.1:" .. port)
    assert.is_nil(ok)
    assert.equal("refused", code)
    assert.matches("ACCESS_REFUSED", msg)
    assert.is_nil(msg:find("s3cr3t-pw", 1, true))

    -- a vhost that does not exist: connection.open answered 530 NOT_ALLOWED
    ok, msg, code = amqp.connect(rabbitmq.url() .. "/no-such-vhost")
    assert.is_nil(ok)
    assert.equal("refused", code)
    assert.matches("NOT_ALLOWED", msg)

    ok, msg, code = amqp.connect("amqp://guest:s3cr3t-pw@127.0.0.1:" .. client.free_port())
    assert.is_nil(ok)
    assert.equal("unreachable", code)
    assert.matches("amqp://guest@127%.0%.0%.1:%d+/", msg)
    assert.is_nil(msg:find("s3cr3t-pw", 1, true))

    local raised, err = pcall(amqp.connect, rabbitmq.url(), { nope = 1 })
    assert.is_false(raised)
    assert.matches("amqp.connect: unknown option nope", err, 1, true)
    assert.has_error(function() amqp.connect(42) end)
  end)

  it("answers closed after close(), and a parked declaration learns it", function()
    local ac = assert(connect())
    ac:close()
    local ok, _, code = ac:publish("", "x", "y")
    assert.is_nil(ok)
    assert.equal("closed", code)
    assert.is_true(ac:close())
    assert.has_error(function() ac:publish("", 42) end)
  end)

  describe("through a proxy that stops (a broker that does not answer)", function()
    local proxy, url
    before_each(function()
      local port = client.free_port()
      local target = rabbitmq.url():match(":(%d+)$")
      proxy = assert(process.spawn { "/usr/bin/socat", ("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr"):format(port),
        "TCP:127.0.0.1:" .. target })
      url = "amqp://guest:guest@127.0.0.1:" .. port
    end)
    after_each(function()
      proxy:kill("SIGCONT")
      proxy:kill("SIGKILL")
      proxy:wait(5)
    end)

    -- socat serves one connection (no fork): the first that gets through is ours.
    local function connect_via_proxy()
      return wait.until_true(function() return (amqp.connect(url, { heartbeat_s = 0 })) end,
        "connected through socat", 10, 0.05)
    end

    it("lets j.timeout cancel a publish; the confirm that comes later wakes nobody", function()
      local ac = connect_via_proxy()
      local q, ex = topology(ac, "t")
      assert(proxy:kill("SIGSTOP"))
      local seen = {}
      local ok, msg, code = sched.timeout(0.3, function()
        seen.publish = { ac:publish(ex, "t", "late") }
        -- parked again, elsewhere: the late confirm must not resume this wait
        seen.wait = { csched.wait(1.5) }
      end)
      assert.same({ nil, "timed out after 0.3 s", "timeout" }, { ok, msg, code })
      wait.until_true(function() return seen.publish end, "the cancelled publish returned")
      assert.same({ nil, "the task was cancelled", "cancelled" }, seen.publish)
      -- a parked publish is not resumed by a wake meant for something else: its true would lie
      local other = sched.spawn(function() return ac:publish(ex, "t", "second") end)
      wait.until_true(function() return ac:stats().inflight == 2 end, "the second publish is sent")
      assert.is_false(csched.wake(other.handle, other.gen))
      assert(proxy:kill("SIGCONT"))
      assert.same({ true, true }, { other:wait(10) })
      wait.until_true(function() return ac:stats().published == 2 end, "the broker confirmed both publishes")
      wait.until_true(function() return seen.wait end, "the cancelled task's wait ended")
      assert.same({ nil, "the wait timed out", "timeout" }, seen.wait)
      assert.equal(2, queue_len(q))
      ac:close()
    end)

    it("puts back the message of a get whose wait was cancelled", function()
      local ac = connect_via_proxy()
      local q = name("q")
      assert(ac:declare_queue(q))
      assert(ac:publish("", q, "kept"))
      assert(proxy:kill("SIGSTOP"))
      local ok, _, code = sched.timeout(0.3, function() return ac:get(q) end)
      assert.same({ nil, "timeout" }, { ok, code })
      assert(proxy:kill("SIGCONT"))
      -- the get's answer comes to nobody: nacked back, it is in the queue again
      wait.until_true(function()
        local info = ac:queue_info(q)
        return info and info.messages == 1
      end, "the message is back in the queue")
      local d = assert(ac:get(q))
      assert.equal("kept", d.body)
      assert.is_true(d.redelivered)
      assert.is_true(d:ack())
      ac:close()
    end)

    it("marks a delivery not live once its connection dropped (the broker delivers it again)", function()
      local ac = connect_via_proxy()
      local q = name("q")
      assert(ac:declare_queue(q))
      assert(ac:publish("", q, "held"))
      local got
      ac:consume(q, 1, function(d) got = d end)
      wait.until_true(function() return got end, "the delivery")
      assert.is_true(got:live())
      assert.is_true(ac:is_up())
      assert(proxy:kill("SIGKILL")) -- the connection drops (socat serves no other)
      wait.until_true(function() return not ac:is_up() end, "the client is down")
      assert.is_false(ac:stats().up)
      assert.is_false(got:live())
      local ok, _, code = got:ack()
      assert.same({ nil, "disconnected" }, { ok, code })
      assert.is_false(got:live()) -- settled
      ac:close()
    end)
  end)

  it("answers connect with timeout when the broker does not answer in time", function()
    -- a listener that accepts and never speaks
    local port = client.free_port()
    local mute = assert(process.spawn { "/usr/bin/socat", ("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr"):format(port),
      "SYSTEM:sleep 60" })
    local url = "amqp://guest:guest@127.0.0.1:" .. port
    -- refused ("unreachable") until socat listens: then it times out
    local r = wait.until_true(function()
      local ok, msg, code = amqp.connect(url, { connect_timeout_ms = 300 })
      return code ~= "unreachable" and { ok, msg, code }
    end, "socat listens", 10, 0.05)
    mute:kill("SIGKILL")
    mute:wait(5)
    assert.is_nil(r[1])
    assert.equal("timeout", r[3], r[2])
    assert.matches("cannot connect to RabbitMQ at amqp://guest@127%.0%.0%.1:%d+/", r[2])
  end)
end)
