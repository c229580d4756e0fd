--- jararaca.bus.amqp_dlq: the dead letters of the RabbitMQ broker (the app's
-- queue A.dlq), as methods of its broker, with the embedded broker's shapes
-- (jararaca.bus.embedded_dlq):
--
--   broker:dlq_stats(queue)           { count, oldest_at, newest_at } (ms; nil when empty)
--   broker:dlq_list(queue, limit)     the oldest `limit` (default 100) dead letters of queue
--   broker:dlq_requeue(queue, ids)    ids: a list of message ids, or "all" -> how many went back
--   broker:dlq_purge(queue [, ids])   ids: a list of message ids, or "all" (the default) -> how many were deleted
--
-- One queue holds the dead letters of all the app's handlers (each says
-- its handler's queue in x-original-queue), so each call reads the whole
-- DLQ with basic.get, holding every message unsettled, settles the ones it
-- acts on and gives the others back (basic.nack requeue: RabbitMQ puts them
-- back in their places). At most MAX_SCAN are read per call; a DLQ longer
-- than that is refused (purge it, or requeue in parts after fixing).
-- A requeued message goes to its handler's queue (through A.retry) with its
-- id, topic, body and headers, its retry count at 0.
-- @module jararaca.bus.amqp_dlq
local M = {}

local type, error, format, ipairs, tonumber, tostring, pairs =
  type, error, string.format, ipairs, tonumber, tostring, pairs

M.MAX_SCAN = 100000

local DEAD_HEADERS = { ["x-original-queue"] = true, ["x-original-topic"] = true, ["x-dead-reason"] = true,
  ["x-dead-at"] = true, ["x-retry-count"] = true }

local function check_ids(ids, what)
  if ids == "all" then return nil end
  if type(ids) ~= "table" then error(what .. "(queue, ids): ids must be a list of ids or \"all\"", 3) end
  local set = {}
  for i, id in ipairs(ids) do
    if type(id) ~= "string" then error(format("%s(): ids[%d] must be a string, got %s", what, i, type(id)), 3) end
    set[id] = true
  end
  return set
end

function M.install(Broker, h)
  local send, internal = h.send, h.internal

  -- The dead letter of a basic.get delivery: { id, queue, topic, body,
  -- headers, attempt, deliveries, reason, created_at, died_at, _ad }.
  local function dead(ad)
    local hd = ad.headers or {}
    local d = {
      id = ad.message_id or "", queue = hd["x-original-queue"] or "", topic = hd["x-original-topic"] or ad.routing_key,
      body = ad.body, attempt = tonumber(hd["x-retry-count"]) or 0, deliveries = 1, reason = hd["x-dead-reason"] or "",
      died_at = tonumber(hd["x-dead-at"]), created_at = tonumber(hd["x-dead-at"]), _ad = ad,
    }
    local headers = {}
    for k, v in pairs(hd) do
      if not DEAD_HEADERS[k] and not internal(k) then headers[k] = v end
    end
    if headers["content-type"] == nil and ad.content_type then headers["content-type"] = ad.content_type end
    d.headers = headers
    return d
  end

  -- Read the whole DLQ, call fn(d) for the dead letters of queue (fn
  -- settles the ones it takes and returns true, or false to leave it), give
  -- the rest back. true | nil, msg, code.
  local function scan(self, queue, fn)
    local ac, held, failure = self.ac, {}, nil
    while true do
      local ad, err, code = ac:get(self.names.dlq)
      if ad == nil then failure = { err, code }; break end
      if ad == false then break end
      if #held >= M.MAX_SCAN then
        ad:nack(true)
        failure = { format("the dead-letter queue %s holds more than %d messages: purge it, or drain it with a "
          .. "consumer of your own", self.names.dlq, M.MAX_SCAN), "busy" }
        break
      end
      local d = dead(ad)
      if d.queue ~= queue or not fn(d) then held[#held + 1] = ad end
    end
    for _, ad in ipairs(held) do ad:nack(true) end
    if failure then return nil, failure[1], failure[2] end
    return true
  end

  function Broker:dlq_stats(queue)
    local st = { count = 0 }
    local ok, err, code = scan(self, queue, function(d)
      st.count = st.count + 1
      local t = d.died_at
      if t and (st.oldest_at == nil or t < st.oldest_at) then st.oldest_at = t end
      if t and (st.newest_at == nil or t > st.newest_at) then st.newest_at = t end
      return false
    end)
    if not ok then return nil, err, code end
    return st
  end

  function Broker:dlq_list(queue, limit)
    if limit == nil then limit = 100 end
    if type(limit) ~= "number" or limit < 1 or limit ~= math.floor(limit) then
      error("broker:dlq_list(queue, limit): limit must be a positive integer, got " .. tostring(limit), 2)
    end
    local out = {}
    local ok, err, code = scan(self, queue, function(d)
      if #out < limit then
        d._ad = nil
        out[#out + 1] = d
      end
      return false
    end)
    if not ok then return nil, err, code end
    return out
  end

  function Broker:dlq_requeue(queue, ids)
    local set = check_ids(ids, "broker:dlq_requeue")
    local n, failure = 0, nil
    local ok, err, code = scan(self, queue, function(d)
      if failure or (set and not set[d.id]) then return false end
      local headers = d.headers
      headers["x-topic"] = d.topic
      local sok, serr, scode = send(self.ac, self.names.retry, queue, d.body, {
        message_id = d.id ~= "" and d.id or nil, content_type = headers["content-type"], headers = headers,
      })
      if not sok then failure = { serr, scode }; return false end
      d._ad:ack()
      n = n + 1
      return true
    end)
    if not ok then return nil, err, code end
    if failure then return nil, failure[1], failure[2] end
    return n
  end

  function Broker:dlq_purge(queue, ids)
    local set = check_ids(ids == nil and "all" or ids, "broker:dlq_purge")
    local n = 0
    local ok, err, code = scan(self, queue, function(d)
      if set and not set[d.id] then return false end
      d._ad:ack()
      n = n + 1
      return true
    end)
    if not ok then return nil, err, code end
    return n
  end
end

return M
