--- jararaca.bus.publisher: `j.use_publisher()`.
--
--   local pub = j.use_publisher()
--   pub:publish({ id = 7 }, "task.created" [, { headers = { ["x-tenant"] = "a" } }])
--   pub:delay({ id = 7 }, "task.reminder", 3600 [, opts])
--   pub:schedule({ id = 7 }, "task.reminder", os.time() + 3600 [, opts])
--   pub:publish(TaskCreated { id = 7 } [, opts])   -- a j.Message type: its topic, validated
--
-- A payload is a table (sent as JSON, content-type application/json) or a
-- string (sent as it is, text/plain). Inside a transaction (an HTTP request,
-- a WebSocket connection, a message handler) the messages are STAGED
-- (jararaca.staged): published together, in one write, once the
-- transaction succeeded (after its commit), dropped when it failed. When
-- the transaction wrote to a database, they are written into that
-- transaction instead (the broker's tables on the same file, else the
-- outbox: jararaca.bus.outbox), before its commit. Outside one they are
-- published at once. Returns true | nil, message, code:
-- "invalid" (a payload JSON cannot hold, a typed message that does not fit
-- its type), "closed" (no bus), the broker's.
-- A topic that is not one (empty, a wildcard word) or bad headers raise.
-- In a message handler, the consumed message's trace context and
-- allow-listed headers propagate; in an HTTP request or a WebSocket
-- connection, its handshake's trace context (jararaca.bus.propagation).
-- @module jararaca.bus.publisher
local context = require "jararaca.context"
local staged = require "jararaca.staged"
local json = require "jararaca.json"
local log = require "jararaca.log"
local topic_mod = require "jararaca.bus.topic"
local message_type = require "jararaca.bus.message_type"
local tracing_state = require "jararaca.tracing.state"
local propagation = require "jararaca.bus.propagation"
local mbus = require "jararaca.metrics.bus" -- built-in metrics: hooks run only when mbus.on
local schema = require "jararaca.schema"
local session = require "jararaca.persistence.session"

local M = {}

local type, pairs, pcall, error, format, tostring, rawget, rawset, setmetatable, unpack =
  type, pairs, pcall, error, string.format, tostring, rawget, rawset, setmetatable, unpack
local huge = math.huge
local encode = json.encode

M.JSON = "application/json"
M.TEXT = "text/plain"
--- The most headers a message may be published with: RabbitMQ's client
--- sends at most 64, and the bus adds its own (content-type, the trace
--- context, a retry's count and topic, a dead letter's five).
M.MAX_HEADERS = 32

local Publisher = {}
Publisher.__index = Publisher
Publisher.__name = "Publisher"

local function bus() return require "jararaca.bus" end
local function tracer() return require "jararaca.tracing" end

-- One message for the broker, or nil, message, "invalid". Misuse raises.
-- when: { delay = s } or { at = epoch s } or nil.
local function build(method, payload, topic, when, opts)
  local typed = message_type.is_typed(payload)
  if typed then topic = message_type.topic(payload.type) end
  local terr = topic_mod.topic_error(topic)
  if terr then error(format("publisher:%s(payload, topic): %s", method, terr), 3) end
  if opts ~= nil and type(opts) ~= "table" then
    error(format("publisher:%s(): opts must be a table { headers = {...} }, got %s", method, type(opts)), 3)
  end
  local headers = {}
  local given = opts and opts.headers
  if given ~= nil then
    local n = 0
    if type(given) ~= "table" then error(format("publisher:%s(): opts.headers must be a table, got %s", method,
      type(given)), 3) end
    for k, v in pairs(given) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean") then
        error(format("publisher:%s(): headers must map names to strings, numbers or booleans, got [%s] = %s", method,
          tostring(k), type(v)), 3)
      end
      -- (RabbitMQ refuses other names: raised here, before the outbox holds
      -- a message its relay could never send)
      if k == "" or #k > 255 then
        error(format("publisher:%s(): header names must be 1..255 bytes, got one of %d", method, #k), 3)
      end
      headers[k] = v
      n = n + 1
    end
    if n > M.MAX_HEADERS then
      error(format("publisher:%s(): at most %d headers, got %d", method, M.MAX_HEADERS, n), 3)
    end
  end
  local body
  if typed then
    local text, err = schema.encode(payload.type, payload.value)
    if not text then return nil, format("the %s message is invalid: %s", tostring(payload.type.name), err), "invalid" end
    body = text
    headers["content-type"] = M.JSON
  elseif type(payload) == "string" then
    body = payload
    headers["content-type"] = M.TEXT
  elseif type(payload) == "table" then
    local text, err = encode(payload)
    if not text then return nil, "the payload cannot be sent as JSON: " .. tostring(err), "invalid" end
    body = text
    headers["content-type"] = M.JSON
  else
    error(format("publisher:%s(payload, topic): payload must be a table (JSON) or a string, got %s", method,
      type(payload)), 3)
  end
  return { topic = topic, body = body, headers = headers, delay = when and when.delay, at = when and when.at }
end

-- Publish a list now: true | nil, message, code.
local function send(container, msgs)
  local b, err, code = bus().broker(container)
  if not b then return nil, err, code end
  local n
  n, err, code = b:publish(msgs)
  if not n then return nil, "message bus: publish failed: " .. tostring(err), code end
  if mbus.on then mbus.sent(msgs) end
  return true
end

-- The staged action of a transaction: its messages not written into its
-- database (below), in one publish. (done: a publish that comes later, from
-- a task the transaction left running, stages a list of its own.)
local function flush(container, list)
  list.done = true
  local from = (list.written or 0) + 1
  if from > #list then return end
  local msgs = { unpack(list, from, #list) }
  local ok, err = send(container, msgs)
  if not ok then
    list.err = err -- (the publishes' producer spans end with it)
    log.error("message bus: ", #msgs, " message(s) staged by a transaction were lost: ", err)
  end
end

-- The transaction's hook before the commit of a session that wrote
-- (persistence.session.before_commit): the messages staged so far go into
-- that database transaction, so they commit with its writes or not at all:
-- into the broker's own tables when the broker is that database, else into
-- its outbox (jararaca.bus.outbox), relayed once the commit is done.
local function into_transaction(ctx, container)
  return function(s, db)
    local list = rawget(ctx, "_bus_staged")
    local st = bus().state(container)
    if list == nil or list.done or st == nil or (list.written or 0) >= #list then return nil end
    local msgs = { unpack(list, (list.written or 0) + 1, #list) }
    list.written = #list
    local b, database = st.broker, db.database
    if b and b.db == database then
      local n, err = b:publish_in(s, msgs)
      if not n then error("message bus: publishing in the transaction failed: " .. tostring(err), 0) end
      return function()
        b:notify()
        if mbus.on then mbus.sent(msgs) end
      end
    end
    local outbox = require "jararaca.bus.outbox"
    local seqs, err = outbox.write(s, msgs, require("jararaca.bus.embedded").new_id)
    if not seqs then error("message bus: writing the outbox failed: " .. tostring(err), 0) end
    return function()
      outbox.created(database)
      outbox.relay(st, database, seqs, msgs, true)
    end
  end
end

-- Contexts whose actions run at once (jararaca.staged's rule).
local IMMEDIATE = { startup = true, shutdown = true }

-- Which headers of an HTTP request pass on (only the trace context).
local TRACE = propagation.allow_list()

-- The trace context of the request of an HTTP or WebSocket context, read
-- once per transaction (a WebSocket connection publishes many times); an
-- empty table when the request can no longer be read (a task that outlived
-- its request).
local function request_trace(ctx)
  local t = rawget(ctx, "_bus_trace")
  if t then return t end
  local req = ctx.request
  t = {}
  if req then
    local ok, got = pcall(propagation.http, function(name) return req:header(name) end)
    if ok then t = got end
  end
  rawset(ctx, "_bus_trace", t)
  return t
end

-- In a message handler, the consumed message's allowed headers; in an HTTP
-- request or a WebSocket connection, its trace context
-- (jararaca.bus.propagation).
local function inherit(ctx, container, headers, span)
  local kind = ctx.kind
  -- tracing on: the trace context is the publish's producer span's (a new
  -- parent id per hop), never the inbound one copied
  local traced = tracing_state.on and require("jararaca.tracing").inject(ctx, headers, span)
  if kind == "http" or kind == "websocket" then
    if traced then return end
    propagation.apply(headers, request_trace(ctx), TRACE)
    return
  end
  local msg = kind == "message" and ctx.message
  if not msg then return end
  local st = bus().state(container)
  local allow = st and st.propagate
  if allow then propagation.apply(headers, msg.headers, allow) end
end

-- The broker's name for a producer span's messaging.system.
local function system(container)
  local st = bus().state(container)
  return st and st.settings and st.settings.kind == "amqp" and "rabbitmq" or "jararaca.embedded"
end

-- Publish now; a producer span ends with the outcome.
local function send_now(container, m, span)
  if span then return tracer().end_producer(span, send(container, { m })) end
  return send(container, { m })
end

local function publish(self, method, payload, topic, when, opts)
  local m, err, code = build(method, payload, topic, when, opts)
  if not m then return nil, err, code end
  local ctx = context.current()
  local container = self.container
  -- tracing on, inside a span: a PRODUCER span per publish, whose id the
  -- message's traceparent carries (docs/tracing.md)
  local span = tracing_state.on and tracer().start_producer(ctx, m, when, system(container)) or nil
  if ctx then
    inherit(ctx, container, m.headers, span)
  elseif span then
    tracer().inject(nil, m.headers, span)
  end
  if ctx == nil or IMMEDIATE[ctx.kind] then return send_now(container, m, span) end
  local list = rawget(ctx, "_bus_staged")
  if list == nil or list.done then
    list = {}
    local how = staged.add(ctx, flush, container, list)
    if how == "dropped" then
      local why = "the transaction already failed: the message is dropped"
      if span then tracer().end_producer(span, nil, why) end
      return nil, why, "closed"
    end
    if how == "ran" then return send_now(container, m, span) end -- the transaction already succeeded
    rawset(ctx, "_bus_staged", list)
    if not rawget(ctx, "_bus_hooked") then
      rawset(ctx, "_bus_hooked", true)
      session.before_commit(ctx, into_transaction(ctx, container))
    end
  end
  list[#list + 1] = m
  if span then tracer().stage_producer(ctx, span, list) end
  return true
end

-- A typed message (`TaskCreated { ... }`) carries its topic: the
-- arguments after it shift left by one.
local function shift(payload, a, b, c)
  if message_type.is_typed(payload) then
    if type(a) == "string" then
      error(format("publisher: a %s message is sent to its type's topic (%s); leave the topic out",
        tostring(payload.type.name), tostring(message_type.topic(payload.type))), 3)
    end
    return nil, a, b
  end
  return a, b, c
end

--- publisher:publish(payload, topic [, opts]) or publisher:publish(TypedMessage [, opts]).
function Publisher:publish(payload, ...)
  local topic, opts = shift(payload, ...)
  return publish(self, "publish", payload, topic, nil, opts)
end

--- publisher:delay(payload, topic, seconds [, opts]): deliverable after seconds.
function Publisher:delay(payload, ...)
  local topic, seconds, opts = shift(payload, ...)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 or seconds == huge then
    error("publisher:delay(payload, topic, seconds): seconds must be a number >= 0, got " .. tostring(seconds), 2)
  end
  return publish(self, "delay", payload, topic, { delay = seconds }, opts)
end

--- publisher:schedule(payload, topic, at [, opts]): deliverable at `at`,
--- seconds since the epoch (os.time(), j.now(); a past time: at once).
function Publisher:schedule(payload, ...)
  local topic, at, opts = shift(payload, ...)
  if type(at) ~= "number" or at ~= at or at < 0 or at == huge then
    error("publisher:schedule(payload, topic, at): at must be a time in seconds since the epoch, got "
      .. tostring(at), 2)
  end
  return publish(self, "schedule", payload, topic, { at = at }, opts)
end

--- j.use_publisher(): the publisher of the running app (any context of it).
function M.use_publisher()
  local ctx = context.require("use_publisher")
  return setmetatable({ container = ctx.container }, Publisher)
end

return M
