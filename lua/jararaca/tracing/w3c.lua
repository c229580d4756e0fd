--- jararaca.tracing.w3c: W3C Trace Context (`traceparent`, `tracestate`)
-- and Baggage headers, parsed and validated on the way in and formatted on
-- the way out. https://www.w3.org/TR/trace-context/ ,
-- https://www.w3.org/TR/baggage/
local M = {}

local type, find, sub, format, lower = type, string.find, string.sub, string.format, string.lower

local ZERO_TRACE, ZERO_SPAN = ("0"):rep(32), ("0"):rep(16)

--- Parse a traceparent: trace_id, parent_id, flags (a number) | nil,
--- message, "invalid". Version 00 exactly as specified; a higher version
--- is read by its first four fields (the spec's forward compatibility);
--- version ff, upper-case hex and all-zero ids are refused.
function M.parse_traceparent(s)
  if type(s) ~= "string" then return nil, "traceparent: expected a string", "invalid" end
  local v, trace, parent, flags = s:match("^(%x%x)%-(%x+)%-(%x+)%-(%x%x)")
  if not v or find(s, "[A-F]") then return nil, "traceparent: malformed", "invalid" end
  if #trace ~= 32 or #parent ~= 16 then return nil, "traceparent: wrong id length", "invalid" end
  if v == "ff" then return nil, "traceparent: version ff is invalid", "invalid" end
  local rest = sub(s, 56)
  if v == "00" then
    if rest ~= "" then return nil, "traceparent: trailing data after a version-00 header", "invalid" end
  elseif rest ~= "" and sub(rest, 1, 1) ~= "-" then
    return nil, "traceparent: malformed", "invalid"
  end
  if trace == ZERO_TRACE then return nil, "traceparent: all-zero trace id", "invalid" end
  if parent == ZERO_SPAN then return nil, "traceparent: all-zero parent id", "invalid" end
  return trace, parent, tonumber(flags, 16)
end

--- Format a version-00 traceparent.
function M.format_traceparent(trace_id, span_id, sampled)
  return format("00-%s-%s-%s", trace_id, span_id, sampled and "01" or "00")
end

-- tracestate list member: key=value; key is lower-case [a-z0-9_\-*/] with
-- an optional tenant@system form; value printable ASCII without ',' '='.
local function valid_member(m)
  local k, v = m:match("^([^=]+)=(.*)$")
  if not k or #k > 256 or #v == 0 or #v > 256 then return false end
  if not (k:find("^[a-z][a-z0-9_%-%*/]*$") or k:find("^[a-z0-9][a-z0-9_%-%*/]*@[a-z][a-z0-9_%-%*/]*$")) then
    return false
  end
  return not v:find("[^\32-\43\45-\60\62-\126]") and not v:find(" $")
end

-- Whether the comma-separated list s has 1..max members (blanks around
-- members and empty members ignored), each passing ok(member).
local function valid_list(s, max_bytes, max_members, ok)
  if type(s) ~= "string" or s == "" or #s > max_bytes then return false end
  local n = 0
  for m in (s .. ","):gmatch("([^,]*),") do
    m = m:match("^[ \t]*(.-)[ \t]*$")
    if m ~= "" then
      n = n + 1
      if n > max_members or not ok(m) then return false end
    end
  end
  return n > 0
end

--- Validate a tracestate: the header | nil (invalid or empty: the spec
--- says drop it). At most 32 members, 512 bytes.
function M.parse_tracestate(s)
  if valid_list(s, 512, 32, valid_member) then return s end
  return nil
end

local function baggage_member(m) return m:find("^[!#$%%&'*+%-.^_`|~%w]+[ \t]*=") ~= nil end

--- Validate a baggage header (list of key=value[;props]): the header | nil.
--- Bounded as the spec allows (8192 bytes, 180 members).
function M.parse_baggage(s)
  if valid_list(s, 8192, 180, baggage_member) then return s end
  return nil
end

--- The trace context of a carrier: get(obj, name) -> a header value | nil
--- (names asked in lower case; a function and its object rather than a
--- closure: no closure is made per request). Returns a table { trace_id, parent_id, sampled,
--- tracestate, baggage } or nil when there is no valid traceparent (then
--- also the baggage alone, as a second value).
function M.extract(get, obj)
  local bg = M.parse_baggage(get(obj, "baggage"))
  local trace, parent, flags = M.parse_traceparent(get(obj, "traceparent"))
  if not trace then return nil, bg end
  return {
    trace_id = trace, parent_id = parent, sampled = flags % 2 == 1,
    tracestate = M.parse_tracestate(get(obj, "tracestate")), baggage = bg,
  }, bg
end

M.lower = lower
return M
