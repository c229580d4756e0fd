--- jararaca.bus.amqp_topology: an app's exchanges and queues on RabbitMQ
-- (docs/bus-rabbitmq.md#topology), their names, and the delay queues that
-- stand in for the delayed-message plugin.
--
--   local names = topology.names("tasks")
--   topology.declare(ac, names, handlers)   -- everything, idempotent: true | nil, msg, code
--   topology.check(ac, names, handlers)     -- passive: true | nil, msg naming what is missing, "not_found"
--   topology.tier(ms)                       -- the delay queue's TTL a delay of ms rounds to (nil: none needed)
--   topology.delay_exchange(broker, kind, ms) -- the exchange of that tier (declared on first use)
--
-- For an app `A`:
--   A              topic exchange: publishes, routing key = topic
--   A.<handler>    a durable queue per handler, bound to A with its topic and to A.retry with its
--                  own name; x-dead-letter-exchange = A.dlx
--   A.retry        direct exchange: a retried or requeued message goes to one handler's queue
--   A.dlx, A.dlq   fanout exchange and queue of the app's dead letters
--   A.wait.<ms>    fanout exchange + queue with x-message-ttl = ms that dead-letters to A.retry:
--                  a retry after a delay (routing key = the handler's queue, kept on expiry)
--   A.delay.<ms>   the same, dead-lettering to A: a delayed publish (routing key = its topic)
-- The queues of one tier share one TTL, so they expire in FIFO order (RabbitMQ
-- expires messages at a queue's head only: mixed TTLs would wait behind each
-- other). Handler names are letters, digits, '_' and '-', so no handler's
-- queue can be A.wait.<ms> or A.delay.<ms>; `dlq`, `dlx` and `retry` are
-- reserved handler names (jararaca.bus.controller).
-- @module jararaca.bus.amqp_topology
local M = {}

local format, tostring, ipairs, floor, log, abs, huge = string.format, tostring, ipairs, math.floor, math.log, math.abs, math.huge

--- Delays shorter than this (ms) are not delayed at all.
M.MIN_DELAY_MS = 50
--- The longest delay (ms): about 11.6 days.
M.MAX_DELAY_MS = 1e9

-- The tiers: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times each power of ten
-- from 100 ms to 1e9 ms. A delay rounds to the nearest one (in ratio), so
-- it is off by at most about 12 %: a fixed ladder bounds the number of
-- queues an app can create (jittered backoffs would make one per delay).
local STEPS = { 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 }
local TIERS = {}
for e = 2, 8 do
  for _, s in ipairs(STEPS) do TIERS[#TIERS + 1] = floor(s * 10 ^ e + 0.5) end
end
TIERS[#TIERS + 1] = 1e9
M.TIERS = TIERS

--- The tier (ms) a delay of ms goes through: nil below MIN_DELAY_MS; nil,
--- message past MAX_DELAY_MS.
function M.tier(ms)
  if ms < M.MIN_DELAY_MS then return nil end
  if ms > M.MAX_DELAY_MS * 1.05 then
    return nil, format("a delay of %.0f s is longer than the RabbitMQ backend's longest (%.0f s, about 11 days)",
      ms / 1000, M.MAX_DELAY_MS / 1000)
  end
  local best, dist = TIERS[1], huge
  local l = log(ms)
  for _, t in ipairs(TIERS) do
    local d = abs(log(t) - l)
    if d < dist then best, dist = t, d end
  end
  return best
end

--- The names of app `app`'s objects.
function M.names(app)
  return {
    app = app, exchange = app, retry = app .. ".retry", dlx = app .. ".dlx", dlq = app .. ".dlq",
    wait = app .. ".wait.", delay = app .. ".delay.",
  }
end

--- Declare the app's objects and every handler's queue and bindings
--- (idempotent; a queue that exists with other arguments is refused by the
--- broker: nil, its reason, "refused").
function M.declare(ac, names, handlers)
  local steps = {
    { "exchange " .. names.exchange, function() return ac:declare_exchange(names.exchange, "topic") end },
    { "exchange " .. names.retry, function() return ac:declare_exchange(names.retry, "direct") end },
    { "exchange " .. names.dlx, function() return ac:declare_exchange(names.dlx, "fanout") end },
    { "queue " .. names.dlq, function() return ac:declare_queue(names.dlq) end },
    { "binding " .. names.dlq, function() return ac:bind(names.dlq, names.dlx, "") end },
  }
  for _, h in ipairs(handlers) do
    local q = h.queue
    steps[#steps + 1] = { "queue " .. q, function()
      return ac:declare_queue(q, { dead_letter_exchange = names.dlx })
    end }
    steps[#steps + 1] = { format("binding %s -> %s (%s)", names.exchange, q, h.topic), function()
      return ac:bind(q, names.exchange, h.topic)
    end }
    steps[#steps + 1] = { format("binding %s -> %s", names.retry, q), function()
      return ac:bind(q, names.retry, q)
    end }
  end
  for _, s in ipairs(steps) do
    local r, e, c = s[2]()
    if not r then return nil, format("RabbitMQ: declaring %s failed: %s", s[1], tostring(e)), c end
  end
  return true
end

--- Check (passively) that the app's exchanges and queues exist: true | nil,
--- a message naming the missing ones, "not_found" | nil, msg, code (the
--- broker could not be asked). Bindings cannot be checked passively.
function M.check(ac, names, handlers, app_file)
  local missing = {}
  for _, x in ipairs { names.exchange, names.retry, names.dlx } do
    local ok, err, code = ac:exchange_exists(x)
    if not ok then
      if code ~= "not_found" then return nil, format("RabbitMQ: checking exchange %s failed: %s", x, tostring(err)), code end
      missing[#missing + 1] = "exchange " .. x
    end
  end
  local queues = { names.dlq }
  for _, h in ipairs(handlers) do queues[#queues + 1] = h.queue end
  for _, q in ipairs(queues) do
    local info, err, code = ac:queue_info(q)
    if not info then
      if code ~= "not_found" then return nil, format("RabbitMQ: checking queue %s failed: %s", q, tostring(err)), code end
      missing[#missing + 1] = "queue " .. q
    end
  end
  if #missing > 0 then
    return nil, format("RabbitMQ: the app's topology is not declared (missing: %s): run `jararaca declare %s` once, "
      .. "or set Microservice{ bus = { declare = true } } to declare it at every start", table.concat(missing, ", "),
      app_file or "app.lua"), "not_found"
  end
  return true
end

--- The exchange of the delay tier of ms for `kind` ("wait": a retry, to
--- A.retry; "delay": a delayed publish, to A), declared on first use by
--- this broker: name | nil, msg, code.
function M.delay_exchange(broker, kind, ms)
  local names = broker.names
  local name = names[kind] .. tostring(ms)
  local done = broker.tiers[name]
  if done == true then return name end
  if done then -- another task is declaring it: wait for that one
    local ok, r, e, c = done:wait()
    if not ok then return nil, tostring(r), "error" end
    if r then return name end
    return nil, e, c
  end
  local ac = broker.ac
  local task
  task = require("jararaca.sched").spawn(function()
    local target = kind == "wait" and names.retry or names.exchange
    local ok, err, code = ac:declare_exchange(name, "fanout")
    if ok then ok, err, code = ac:declare_queue(name, { message_ttl = ms, dead_letter_exchange = target }) end
    if ok then ok, err, code = ac:bind(name, name, "") end
    -- the entry is settled here, not only by the caller below: that one
    -- may be cancelled while it waits, and a failure left in place would
    -- answer every later use of the tier without declaring it again
    if broker.tiers[name] == task then broker.tiers[name] = ok and true or nil end
    return ok, err, code
  end)
  task.observed = true
  broker.tiers[name] = task
  local tok, ok, err, code = task:wait()
  if tok and ok then
    broker.tiers[name] = true
    return name
  end
  broker.tiers[name] = nil
  if not tok then return nil, format("RabbitMQ: declaring the delay queue %s failed: %s", name, tostring(ok)), "error" end
  return nil, format("RabbitMQ: declaring the delay queue %s failed: %s", name, tostring(err)), code
end

return M
