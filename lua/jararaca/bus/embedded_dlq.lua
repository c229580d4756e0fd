--- jararaca.bus.embedded_dlq: the dead letters of the embedded broker
-- (jr_bus_dead), as methods of its broker:
--
--   broker:dlq_stats(queue)           { count, oldest_at, newest_at } (ms; nil when empty)
--   broker:dlq_list(queue, limit)     the oldest `limit` (default 100) dead letters
--   broker:dlq_requeue(queue, ids)    ids: a list of message ids, or "all" -> how many went back
--   broker:dlq_purge(queue [, ids])   ids: a list of message ids, or "all" (the default) -> how many were deleted
--
-- A requeued message goes back to its original queue with its original
-- id, topic, body and headers, ready at once, its attempt count at 0 (a
-- fresh set of retries: it is requeued because its cause was fixed).
-- @module jararaca.bus.embedded_dlq
local json = require "jararaca.json"

local type, error, format, ipairs = type, error, string.format, ipairs
local encode, decode = json.encode, json.decode

local M = {}

local COLUMNS = "seq, id, queue, topic, body, headers, attempt, deliveries, reason, created_at, died_at"

-- The dead letters of queue chosen by ids ("all", or a JSON array of ids:
-- one statement text whatever their number).
local function selection(ids)
  if ids == "all" then return "queue = ?", nil end
  return "queue = ? AND id IN (SELECT value FROM json_each(?))", encode(json.array(ids))
end

-- ids: "all" or a list of strings (raises at the caller's caller).
local function check_ids(ids, what)
  if ids == "all" then return end
  if type(ids) ~= "table" then error(what .. "(queue, ids): ids must be a list of ids or \"all\"", 3) end
  for i, id in ipairs(ids) do
    if type(id) ~= "string" then error(format("%s(): ids[%d] must be a string, got %s", what, i, type(id)), 3) end
  end
end

function M.install(Broker, h)
  local in_read, in_write, now_ms, check_name, notify = h.in_read, h.in_write, h.now_ms, h.check_name, h.notify

  --- { count =, oldest_at =, newest_at = } of queue's dead letters | nil, err, code.
  function Broker:dlq_stats(queue)
    check_name(queue, "queue", "broker:dlq_stats()")
    return in_read(self, function(tx)
      local r, err, code = tx:first("SELECT count(*) AS count, min(died_at) AS oldest_at, max(died_at) AS newest_at "
        .. "FROM jr_bus_dead WHERE queue = ?", { queue })
      if not r then return nil, err, code end
      if r.count == 0 then r.oldest_at, r.newest_at = nil, nil end
      return { count = r.count, oldest_at = r.oldest_at, newest_at = r.newest_at }
    end)
  end

  --- The oldest `limit` dead letters of queue: a list of { id, queue,
  --- topic, body, headers (a table), attempt, deliveries, reason,
  --- created_at, died_at, seq } | nil, err, code.
  function Broker:dlq_list(queue, limit)
    check_name(queue, "queue", "broker:dlq_list()")
    if limit == nil then limit = 100 end
    if type(limit) ~= "number" or limit < 1 or limit ~= math.floor(limit) then
      error("broker:dlq_list(queue, limit): limit must be a positive integer, got " .. tostring(limit), 2)
    end
    return in_read(self, function(tx)
      local rows, err, code = tx:query("SELECT " .. COLUMNS .. " FROM jr_bus_dead WHERE queue = ? ORDER BY seq LIMIT ?",
        { queue, limit })
      if not rows then return nil, err, code end
      for _, r in ipairs(rows) do
        local hd = decode(r.headers)
        r.headers = type(hd) == "table" and hd or {}
      end
      return rows
    end)
  end

  --- Send dead letters of queue back to it (ids: a list of message ids,
  --- or "all"), in one write transaction. How many went back | nil, err, code.
  function Broker:dlq_requeue(queue, ids)
    check_name(queue, "queue", "broker:dlq_requeue()")
    check_ids(ids, "broker:dlq_requeue")
    local where, list = selection(ids)
    local n, err, code = in_write(self, function(tx)
      local r, e, c = tx:execute("INSERT INTO jr_bus_messages (id, queue, topic, body, headers, available_at, created_at) "
        .. "SELECT id, queue, topic, body, headers, ?, created_at FROM jr_bus_dead WHERE " .. where .. " ORDER BY seq",
        { now_ms(), queue, list })
      if not r then return nil, e, c end
      local d
      d, e, c = tx:execute("DELETE FROM jr_bus_dead WHERE " .. where, { queue, list })
      if not d then return nil, e, c end
      return r.changes
    end)
    if n and n > 0 then notify(self.path, queue) end
    return n, err, code
  end

  --- Delete queue's dead letters: ids (a list of message ids), or all of
  --- them (ids nil or "all"). How many | nil, err, code.
  function Broker:dlq_purge(queue, ids)
    check_name(queue, "queue", "broker:dlq_purge()")
    if ids == nil then ids = "all" end
    check_ids(ids, "broker:dlq_purge")
    local where, list = selection(ids)
    return in_write(self, function(tx)
      local r, err, code = tx:execute("DELETE FROM jr_bus_dead WHERE " .. where, { queue, list })
      if not r then return nil, err, code end
      return r.changes
    end)
  end
end

return M
