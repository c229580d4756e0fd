--- jararaca.bus.amqp: the message bus's RabbitMQ broker (docs/bus-rabbitmq.md),
-- with the embedded broker's interface (jararaca.bus.embedded), so the
-- publisher, the outbox relay and the worker run on either.
--
--   local b = assert(amqp.open({ url = "amqp://...", app = "tasks" }))
--   b:declare(handlers) / b:check(handlers)       -- the topology (jararaca.bus.amqp_topology)
--   b:publish{ { topic, body, headers, id, delay | at }, ... }   -- waits for the broker's confirms
--   b:subscribe(queue, prefetch)                  -- basic.consume: deliveries buffered for fetch
--   local ds = b:fetch(queue, n)                  -- what arrived (at most n), never waits
--   b:wait(queue, timeout)                        -- until something arrived, notify, or timeout
--   b:ack(d) / :retry(d, s) / :nack(d) / :dead_letter(d, why) / :extend(d, s)
--   b:unsubscribe(queue)                          -- basic.cancel; the buffered ones go back
--   b:close()
--
-- Differences from the embedded broker, all from RabbitMQ's model: a
-- delivery stays with its consumer until settled or until the connection
-- drops (no lease: extend is a no-op and the handler's timeout bounds it);
-- a retry is a copy published to a delay queue and the original acked, in
-- that order (a crash in between: both exist, the same message id twice;
-- a copy that fails or raises: the original nacked with requeue instead);
-- delays round to a tier (amqp_topology.tier); header values come back as
-- strings.
-- @module jararaca.bus.amqp
local amqp = require "jararaca.core.amqp"
local topology = require "jararaca.bus.amqp_topology"
local topic_mod = require "jararaca.bus.topic"
local wake = require "jararaca.bus.embedded_wake"
local sched = require "jararaca.sched"
local sys = require "jararaca.core.sys"
local csched = require "jararaca.core.sched"
local context = require "jararaca.context"

local M = {}

local type, error, format, pairs, pcall, setmetatable, tostring, tonumber, next =
  type, error, string.format, pairs, pcall, setmetatable, tostring, tonumber, next
local floor, huge, sub, byte = math.floor, math.huge, string.sub, string.byte
local topic_error, time, random_bytes = topic_mod.topic_error, sys.time, sys.random_bytes
local c_spawn, c_current, c_wait, c_wake = csched.spawn, csched.current, csched.wait, csched.wake

--- Publishes answered "disconnected" (sent, then the connection dropped
--- before the broker's confirm) are sent again this many times, with the
--- same message id: at least once.
M.PUBLISH_ATTEMPTS = 4
--- How long a publish waits unsent while the broker is unreachable (ms).
M.MAX_PENDING_MS = 30000

local Broker = {}
Broker.__index = Broker
M.Broker = Broker

local serial = 0

--- Connect: broker | nil, message, code. s: { url (with the password),
--- where (without), app (the app's name on the bus) }.
function M.open(s, opts)
  opts = opts or {}
  local ac, err, code = amqp.connect(s.url, {
    connect_timeout_ms = opts.connect_timeout_ms or 5000, max_pending_ms = opts.max_pending_ms or M.MAX_PENDING_MS,
  })
  if not ac then return nil, format("message bus: cannot connect to %s: %s", s.where or "RabbitMQ", tostring(err)), code end
  serial = serial + 1
  return setmetatable({
    ac = ac, names = topology.names(s.app), where = s.where, tiers = {},
    consumers = {}, buffers = {}, closed = false,
    key = "amqp#" .. serial, -- the waiters' key (embedded_wake)
  }, Broker)
end

function Broker:declare(handlers)
  return topology.declare(self.ac, self.names, handlers)
end

function Broker:check(handlers, app_file)
  return topology.check(self.ac, self.names, handlers, app_file)
end

function Broker:close()
  if self.closed then return end
  self.closed = true
  wake.notify(self.key)
  self.ac:close() -- the broker requeues every delivery not settled
end

function Broker:stats()
  return self.ac:stats()
end

---------------------------------------------------------------------------
-- Publishing
---------------------------------------------------------------------------

-- Publish once, sending again after "disconnected": true | nil, msg, code.
local function send(ac, exchange, key, body, props)
  local ok, err, code
  for _ = 1, M.PUBLISH_ATTEMPTS do
    ok, err, code = ac:publish(exchange, key, body, props)
    if ok or code ~= "disconnected" then break end
  end
  if ok then return true end
  return nil, err, code
end

-- Topics found valid (a publisher sends a few topics many times): checked
-- once each; the set starts again past 1000.
local valid_topics, nvalid = {}, 0

local function check_topic(t)
  if valid_topics[t] then return nil end
  local err = topic_error(t)
  if err == nil then
    if nvalid >= 1000 then valid_topics, nvalid = {}, 0 end
    valid_topics[t], nvalid = true, nvalid + 1
  end
  return err
end

local function check_message(m, i, where)
  if type(m) ~= "table" then error(format("%s: message %d must be a table, got %s", where, i, type(m)), 4) end
  local terr = check_topic(m.topic)
  if terr then error(format("%s: message %d: %s", where, i, terr), 4) end
  if type(m.body) ~= "string" then
    error(format("%s: message %d: body must be a string (bytes), got %s", where, i, type(m.body)), 4)
  end
  if m.headers ~= nil and type(m.headers) ~= "table" then
    error(format("%s: message %d: headers must be a table, got %s", where, i, type(m.headers)), 4)
  end
  if m.id ~= nil and (type(m.id) ~= "string" or m.id == "") then
    error(format("%s: message %d: id must be a non-empty string, got %s", where, i, type(m.id)), 4)
  end
  local d = m.delay
  if d ~= nil and (type(d) ~= "number" or d ~= d or d < 0 or d == huge) then
    error(format("%s: message %d: delay must be a number of seconds >= 0, got %s", where, i, tostring(d)), 4)
  end
  if m.at ~= nil and (type(m.at) ~= "number" or m.at ~= m.at or m.at == huge) then
    error(format("%s: message %d: at must be a time in seconds since the epoch, got %s", where, i, tostring(m.at)), 4)
  end
end

-- The delay of m in ms (0: none).
local function delay_ms(m)
  if m.delay then return floor(m.delay * 1000) end
  if m.at then
    local d = floor((m.at - time()) * 1000)
    return d > 0 and d or 0
  end
  return 0
end

local function publish_one(self, m)
  local exchange, key = self.names.exchange, m.topic
  local ms = delay_ms(m)
  if ms > 0 then
    local tier, terr = topology.tier(ms)
    if terr then return nil, terr, "invalid" end
    if tier then
      local x, err, code = topology.delay_exchange(self, "delay", tier)
      if not x then return nil, err, code end
      exchange = x
    end
  end
  local headers = m.headers or {}
  return send(self.ac, exchange, key, m.body, {
    message_id = m.id or M.new_id(), content_type = headers["content-type"], headers = headers,
  })
end

-- One message of a list, in a task of its own (csched.spawn: no
-- sched.Task per message). st: the list's state: failed (index -> { msg,
-- code }), raised/raised_i (the error of the first message whose publish
-- raised, raised again by publish), left (tasks not done), parked/h/g (the
-- publishing task, woken by the last one), ctx (its context, as
-- sched.spawn would bind it).
local function publish_task(self, m, st, i)
  context.bind(st.ctx)
  local pok, ok, err, code = pcall(publish_one, self, m)
  if not pok then
    if st.raised_i == nil or i < st.raised_i then st.raised, st.raised_i = ok, i end
  elseif not ok then
    st.failed[i] = { err, code }
  end
  st.left = st.left - 1
  if st.left == 0 and st.parked then c_wake(st.h, st.g) end
end

--- Publish msgs (a message or a list) and wait for the broker's confirms:
--- the count | nil, message, code (the first failure; the others may be
--- stored). A message: { topic, body (string), headers, id, delay (s) | at
--- (epoch s) }; a bad one raises. opts.fail_fast: while the connection is
--- down, fail at once ("disconnected") instead of waiting for it (up to
--- MAX_PENDING_MS): for the outbox's relay after a commit, whose messages
--- are safe in the outbox and must not hold the request meanwhile.
function Broker:publish(msgs, opts)
  if type(msgs) ~= "table" then error("broker:publish(msgs): msgs must be a list of messages, got " .. type(msgs), 2) end
  if msgs.topic ~= nil then msgs = { msgs } end
  for i = 1, #msgs do check_message(msgs[i], i, "broker:publish()") end
  if self.closed then return nil, "the broker is closed", "closed" end
  if opts and opts.fail_fast and not self.ac:is_up() then
    return nil, format("RabbitMQ (%s) is unreachable: reconnecting", tostring(self.where)), "disconnected"
  end
  local n = #msgs
  if n == 1 then
    local ok, err, code = publish_one(self, msgs[1])
    if not ok then return nil, err, code end
    return 1
  end
  -- in parallel: one round trip of confirms for the whole list
  local h, g = c_current()
  if not h then error("broker:publish() must be called inside a task", 2) end
  local st = { failed = {}, left = n, parked = false, h = h, g = g, ctx = context.current() }
  for i = 1, n do c_spawn(publish_task, self, msgs[i], st, i) end -- (they start once we wait)
  while st.left > 0 do
    st.parked = true
    local _, _, code = c_wait()
    st.parked = false
    if code == "cancelled" then error(sched.CANCELLED, 0) end -- (as a task:wait() would; they go on)
  end
  if st.raised_i then error(st.raised, 0) end
  local _, f = next(st.failed)
  if f then return nil, f[1], f[2] end
  return n
end

---------------------------------------------------------------------------
-- Consuming
---------------------------------------------------------------------------

-- Headers RabbitMQ adds when it dead-letters (a delay queue's expiry) and
-- ours that travel with a retried copy: not the handler's business.
local INTERNAL = { ["x-topic"] = true }
local function internal(k)
  return INTERNAL[k] or sub(k, 1, 13) == "x-first-death" or sub(k, 1, 12) == "x-last-death"
end

-- A delivery in the shape of the embedded broker's (worker, message).
local function delivery(queue, ad)
  local h = ad.headers or {}
  local topic = h["x-topic"] or ad.routing_key
  for k in pairs(h) do
    if internal(k) then h[k] = nil end
  end
  local attempt = tonumber(h["x-retry-count"]) or 0
  if h["content-type"] == nil and ad.content_type then h["content-type"] = ad.content_type end
  return { id = ad.message_id or "", queue = queue, topic = topic, body = ad.body, headers = h,
    attempt = attempt, deliveries = ad.redelivered and 2 or 1, _ad = ad }
end

-- The consumer function only buffers (it never waits): called from the
-- loop, not in a task per delivery.
local DIRECT = { direct = true }

--- Consume queue with at most prefetch deliveries unsettled: true | nil,
--- msg, code. What arrives waits in a buffer for fetch.
function Broker:subscribe(queue, prefetch)
  if self.consumers[queue] then return true end
  local buf = {}
  self.buffers[queue] = buf
  local key = self.key
  local ok, id, cerr, ccode = pcall(self.ac.consume, self.ac, queue, prefetch, function(ad)
    if self.closed or not self.consumers[queue] then
      ad:nack(true)
      return
    end
    local n = #buf + 1
    buf[n] = ad
    -- (a waiter waits for an empty buffer to fill: the first one wakes it)
    if n == 1 then wake.notify(key, queue) end
  end, DIRECT)
  if not ok then return nil, format("RabbitMQ: consuming %s failed: %s", queue, tostring(id)), "error" end
  -- (consume answers nil, msg, code when the client is closed or out of memory)
  if id == nil then return nil, format("RabbitMQ: consuming %s failed: %s", queue, tostring(cerr)), ccode end
  self.consumers[queue] = id
  return true
end

--- Stop consuming queue; what was delivered and not fetched goes back.
function Broker:unsubscribe(queue)
  local id = self.consumers[queue]
  if not id then return true end
  self.consumers[queue] = false
  local ok, err, code = true, nil, nil
  if self.ac.cancel and not self.closed then ok, err, code = self.ac:cancel(id) end
  local buf = self.buffers[queue] or {}
  for i = 1, #buf do buf[i]:nack(true) end
  self.buffers[queue] = {}
  wake.notify(self.key, queue)
  if not ok then return nil, err, code end
  return true
end

--- Up to n deliveries that arrived (never waits): a list (maybe empty) |
--- nil, msg, "closed". A queue not subscribed yet is, with prefetch n.
function Broker:fetch(queue, n)
  if self.closed then return nil, "the broker is closed", "closed" end
  if self.consumers[queue] == nil then
    local ok, err, code = self:subscribe(queue, n or 1)
    if not ok then return nil, err, code end
  end
  local buf = self.buffers[queue]
  local out = {}
  local k, want, used = #buf, n or 1, 0
  while used < k and #out < want do
    used = used + 1
    local ad = buf[used]
    -- one from a connection that dropped: the broker has requeued it and
    -- delivers it again (running it now would be a second run)
    if ad:live() then out[#out + 1] = delivery(queue, ad) end
  end
  -- the rest moves to the front, in one pass (the buffer is the consumer
  -- callback's: the same table)
  for i = used + 1, k do buf[i - used] = buf[i] end
  for i = k - used + 1, k do buf[i] = nil end
  return out
end

--- Wait until queue has deliveries, notify, or timeout: true | nil, msg,
--- "timeout" | "closed".
function Broker:wait(queue, timeout)
  if self.closed then return nil, "the broker is closed", "closed" end
  local buf = self.buffers[queue]
  if buf and #buf > 0 then return true end
  if wake.park(self.key, queue, timeout or 1) then
    if self.closed then return nil, "the broker is closed", "closed" end
    -- Woken by the first delivery of a read, from inside that read (the
    -- consumer function runs in the loop's callback): let the read end
    -- first, so that the next fetch takes all its deliveries instead of
    -- one per wake.
    sched.sleep(0)
    return true
  end
  return nil, "nothing arrived", "timeout"
end

function Broker:notify(queue)
  wake.notify(self.key, queue)
end

---------------------------------------------------------------------------
-- Settling
---------------------------------------------------------------------------

local function check_delivery(d, where)
  if type(d) ~= "table" or d._ad == nil then error(where .. ": expected a delivery from broker:fetch()", 3) end
end

function Broker.ack(_, d)
  check_delivery(d, "broker:ack()")
  return d._ad:ack()
end

--- Give it back now (attempt unchanged).
function Broker.nack(_, d)
  check_delivery(d, "broker:nack()")
  return d._ad:nack(true)
end

--- RabbitMQ has no lease to extend: the delivery is ours until settled.
function Broker.extend(_, d)
  check_delivery(d, "broker:extend()")
  return true
end

-- A copy of d's headers for a republish (plus what is given).
local function headers_of(d, extra)
  local h = {}
  for k, v in pairs(d.headers) do h[k] = v end
  for k, v in pairs(extra) do h[k] = v end
  return h
end

-- Publish a copy, then ack the original; if the copy fails the original
-- goes back to its queue (a delivery is never left unsettled; if it
-- raises, see released_on_raise).
local function move(self, d, exchange, key, headers)
  -- its connection dropped: RabbitMQ has requeued it and delivers it
  -- again; a copy would be a second one (after waiting for the reconnect)
  if not d._ad:live() then
    return nil, "its connection to RabbitMQ dropped: the broker delivers it again", "disconnected"
  end
  local ok, err, code = send(self.ac, exchange, key, d.body, {
    message_id = d.id ~= "" and d.id or nil, content_type = headers["content-type"], headers = headers,
  })
  if not ok then
    d._ad:nack(true)
    return nil, err, code
  end
  return d._ad:ack()
end

-- The answer of a copy's publish run by pcall (ok, ...): if it raised
-- (ac:publish refusing the copy's headers, out of memory) the original
-- goes back to its queue first, then the error is raised again: one
-- settlement, never none (it would stay unacked until the connection
-- closes). Not when it is settled already (a raise after the ack), or its
-- connection dropped (RabbitMQ requeued it).
local function released_on_raise(d, ok, ...)
  if ok then return ... end
  local ad = d._ad
  if ad:live() then ad:nack(true) end
  error((...), 0)
end

local function retry_copy(self, d, delay_seconds)
  local exchange = self.names.retry
  local tier, terr = topology.tier(floor((delay_seconds or 0) * 1000))
  if terr then tier = topology.TIERS[#topology.TIERS] end
  if tier then
    local x, err, code = topology.delay_exchange(self, "wait", tier)
    if not x then
      d._ad:nack(true)
      return nil, err, code
    end
    exchange = x
  end
  return move(self, d, exchange, d.queue, headers_of(d, { ["x-retry-count"] = d.attempt + 1, ["x-topic"] = d.topic }))
end

--- Retry after delay_seconds (attempt + 1): a copy through the delay tier
--- to the handler's queue, then the original acked.
function Broker:retry(d, delay_seconds)
  check_delivery(d, "broker:retry()")
  return released_on_raise(d, pcall(retry_copy, self, d, delay_seconds))
end

local function dead_letter_copy(self, d, reason)
  return move(self, d, self.names.dlx, d.queue, headers_of(d, {
    ["x-retry-count"] = d.attempt, ["x-original-queue"] = d.queue, ["x-original-topic"] = d.topic,
    ["x-dead-reason"] = tostring(reason or ""), ["x-dead-at"] = floor(time() * 1000),
  }))
end

--- Dead-letter d with reason: a copy to the app's DLQ (with its original
--- queue, topic, the reason and the time), then the original acked.
function Broker:dead_letter(d, reason)
  check_delivery(d, "broker:dead_letter()")
  return released_on_raise(d, pcall(dead_letter_copy, self, d, reason))
end

--- A new message id (32 hex digits), as the embedded broker's.
local HEX16 = ("%02x"):rep(16)
function M.new_id()
  return format(HEX16, byte(random_bytes(16), 1, 16))
end

require("jararaca.bus.amqp_dlq").install(Broker, { send = send, delivery = delivery, internal = internal })

return M
