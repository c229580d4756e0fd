--- jararaca.bus.propagation: the headers a message handler's publishes
-- inherit from the message it consumes.
--
--   Microservice{ bus = { propagate_headers = { "x-tenant", "x-request-id" } } }
--
-- Always: the W3C trace context, `traceparent`, `tracestate` and `baggage`
-- (so a trace follows a message through every handler it causes); plus the
-- app's allow-list. Never every header: the broker's own (`x-retry-count`,
-- `content-type`) describe one delivery, not the work it starts, and may
-- not be allow-listed. Names are compared in lower case (AMQP and HTTP
-- header names are case-insensitive); a header the publisher sets itself
-- wins over the inherited one.
-- @module jararaca.bus.propagation
local M = {}

local type, pairs, ipairs, format, lower, tostring = type, pairs, ipairs, string.format, string.lower, tostring

--- Propagated whatever the app says (W3C Trace Context and Baggage).
M.ALWAYS = { "traceparent", "tracestate", "baggage" }

-- Headers of one delivery that never propagate.
local RESERVED = { ["x-retry-count"] = true, ["content-type"] = true }

--- Check Microservice.bus.propagate_headers: true | nil, message.
function M.check(v)
  if type(v) ~= "table" then return nil, "expected a list of header names, got " .. type(v) end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return nil, "expected a list of header names (not a map)" end
  for i, name in ipairs(v) do
    if type(name) ~= "string" or not name:find("^[%w!#$%%&'*+.^_`|~-]+$") then
      return nil, format("[%d]: expected a header name (letters, digits, '-', ...), got %s", i,
        type(name) == "string" and format("%q", name) or type(name))
    end
    if RESERVED[lower(name)] then
      return nil, format("[%d]: %q describes one delivery and is never propagated", i, name)
    end
  end
  return true
end

--- The set of lower-case names to propagate: ALWAYS + the app's list.
function M.allow_list(list)
  local set = {}
  for _, name in ipairs(M.ALWAYS) do set[name] = true end
  for _, name in ipairs(list or {}) do set[lower(name)] = true end
  return set
end

--- Copy into `headers` the allowed headers of the consumed message `from`
--- that `headers` does not set already (in any case).
function M.apply(headers, from, allow)
  local have
  for k, v in pairs(from) do
    local name = lower(tostring(k))
    if allow[name] and not RESERVED[name] then
      if have == nil then
        have = {}
        for hk in pairs(headers) do have[lower(hk)] = true end
      end
      if not have[name] then
        headers[k] = v
        have[name] = true
      end
    end
  end
  return headers
end

return M
