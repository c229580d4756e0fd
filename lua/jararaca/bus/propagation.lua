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
--
-- An HTTP request (and a WebSocket connection, from its handshake) passes
-- on only the trace context of its headers (M.http): `traceparent` when it
-- is a valid version-00 one (M.valid_traceparent), `tracestate` only with
-- it (W3C: no tracestate without a traceparent to belong to), `baggage`
-- (its own W3C spec) either way. Copied as received when tracing is off;
-- with tracing on, jararaca.tracing.inject sets the trace context of the
-- publishing span first (a new parent id per hop) and only the app's
-- allow-list is copied from a consumed message (bus/publisher.lua).
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

--- Whether s is a W3C traceparent this version understands:
--- "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", lower-case hex,
--- neither id all zeros.
function M.valid_traceparent(s)
  if type(s) ~= "string" or #s ~= 55 then return false end
  local trace, parent = s:match("^00%-(%x+)%-(%x+)%-%x%x$")
  if not trace or #trace ~= 32 or #parent ~= 16 then return false end
  if s:find("[A-F]") then return false end
  return trace ~= ("0"):rep(32) and parent ~= ("0"):rep(16)
end

--- The trace context of an HTTP request's headers: a table (empty when
--- there is none) of the lower-case names of M.ALWAYS. header(name) -> the
--- request's value or nil.
function M.http(header)
  local out = {}
  local tp = header("traceparent")
  if M.valid_traceparent(tp) then
    out.traceparent = tp
    local ts = header("tracestate")
    if type(ts) == "string" and ts ~= "" then out.tracestate = ts end
  end
  local bg = header("baggage")
  if type(bg) == "string" and bg ~= "" then out.baggage = bg end
  return out
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
