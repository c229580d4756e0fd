--- jararaca.tracing.span: the span model.
-- Fields: trace_id (32 hex), span_id (16 hex), parent_id (16 hex | nil),
-- name, kind ("internal" | "server" | "client" | "producer" | "consumer"),
-- start_us, end_us (wall clock, microseconds since the epoch), attributes
-- (name -> string | number | boolean), events ({ name, time_us,
-- attributes }), status ({ code = "unset" | "ok" | "error", message }),
-- links ({ trace_id, span_id, attributes }), sampled (recorded and
-- exported), tracestate, baggage (the W3C headers it propagates).
-- An unsampled span keeps its ids (they propagate, flag 00) and records
-- nothing.
local sys = require "jararaca.core.sys"

local M = {}

local now, random_bytes, format, byte, type, tostring, floor, setmetatable, rawget, rawset, pairs, error =
  sys.time, sys.random_bytes, string.format, string.byte, type, tostring, math.floor, setmetatable, rawget,
  rawset, pairs, error

-- Ids come from xoshiro128** seeded from the kernel's CSPRNG (M.seed, at
-- every runtime start: after a fork, so pre-forked workers differ): ids need
-- to be unique and unpredictable enough to not collide, not secret, and a
-- getrandom-backed id per span cost more than the rest of a request's
-- tracing. 32-bit words with LuaJIT's bit ops (products stay exact in
-- doubles: < 2^36).
local bit = require "bit"
local tobit, rol, bxor, lshift, rshift, band = bit.tobit, bit.rol, bit.bxor, bit.lshift, bit.rshift, bit.band
local s0, s1, s2, s3 = 1, 2, 3, 4

local function next32()
  local r = tobit(rol(tobit(s1 * 5), 7) * 9)
  local t = lshift(s1, 9)
  s2 = bxor(s2, s0); s3 = bxor(s3, s1); s1 = bxor(s1, s2); s0 = bxor(s0, s3)
  s2 = bxor(s2, t); s3 = rol(s3, 11)
  return r
end

--- Seed the id generator from the kernel (called by tracing.configure).
function M.seed()
  repeat
    local b = { byte(random_bytes(16), 1, 16) }
    s0 = tobit(b[1] * 16777216 + b[2] * 65536 + b[3] * 256 + b[4])
    s1 = tobit(b[5] * 16777216 + b[6] * 65536 + b[7] * 256 + b[8])
    s2 = tobit(b[9] * 16777216 + b[10] * 65536 + b[11] * 256 + b[12])
    s3 = tobit(b[13] * 16777216 + b[14] * 65536 + b[15] * 256 + b[16])
  until s0 ~= 0 or s1 ~= 0 or s2 ~= 0 or s3 ~= 0
end
M.seed()

-- byte -> two hex digits: bit.tohex and string.format("%x") are not
-- compiled by the JIT (a trace abort per id); lookups and concatenation are.
local HEX = {}
for i = 0, 255 do HEX[i] = format("%02x", i) end

-- Ids are kept as 32-bit words (_t1.._t4: trace, _s1 _s2: span) and turned
-- into hex strings only when read (span.trace_id, span.span_id: the log
-- line, an exporter) or sent (traceparent): a new random string costs a
-- string interning (~0.2 µs each, measured), numbers cost nothing. A span
-- continuing a remote trace has trace_id as a string from the start.
-- One concatenation per id (no intermediate 8-digit strings).
local function hex64(a, b)
  return HEX[rshift(a, 24)] .. HEX[band(rshift(a, 16), 255)] .. HEX[band(rshift(a, 8), 255)] .. HEX[band(a, 255)]
    .. HEX[rshift(b, 24)] .. HEX[band(rshift(b, 16), 255)] .. HEX[band(rshift(b, 8), 255)] .. HEX[band(b, 255)]
end
local function hex128(a, b, c, d)
  return HEX[rshift(a, 24)] .. HEX[band(rshift(a, 16), 255)] .. HEX[band(rshift(a, 8), 255)] .. HEX[band(a, 255)]
    .. HEX[rshift(b, 24)] .. HEX[band(rshift(b, 16), 255)] .. HEX[band(rshift(b, 8), 255)] .. HEX[band(b, 255)]
    .. HEX[rshift(c, 24)] .. HEX[band(rshift(c, 16), 255)] .. HEX[band(rshift(c, 8), 255)] .. HEX[band(c, 255)]
    .. HEX[rshift(d, 24)] .. HEX[band(rshift(d, 16), 255)] .. HEX[band(rshift(d, 8), 255)] .. HEX[band(d, 255)]
end

--- 16 random bytes as 32 hex digits (never all zero).
function M.trace_id()
  local a, b, c, d = next32(), next32(), next32(), next32()
  if a == 0 and b == 0 and c == 0 and d == 0 then return M.trace_id() end
  return hex128(a, b, c, d)
end

--- 8 random bytes as 16 hex digits (never all zero).
function M.span_id()
  local a, b = next32(), next32()
  if a == 0 and b == 0 then return M.span_id() end
  return hex64(a, b)
end

local function now_us() return floor(now() * 1e6) end
M.now_us = now_us

local Span = {}
M.Span = Span

-- Shared values of a span that recorded nothing yet (replaced, never
-- changed, on the first set_status / add_event / add_link): a span has no
-- status, event or link table of its own until it has one.
local function readonly(what)
  return { __newindex = function() error(what .. " is shared: use the span's methods", 2) end }
end
local UNSET = setmetatable({ code = "unset" }, readonly("span.status"))
local EMPTY = setmetatable({}, readonly("span.events / span.links of a span without any"))
M.UNSET, M.EMPTY = UNSET, EMPTY

-- An HTTP server span keeps, until something reads its attributes, the
-- request they come from instead of a table of them (jararaca.tracing's
-- start_http: `_http`); reading span.attributes makes the table then (the
-- hook tracing sets here). An exporter that encodes the span in C writes
-- them straight from the request: no table at all.
local lazy_attributes = function() return nil end
function M.set_lazy_attributes(fn) lazy_attributes = fn end

-- The span metatable: the methods, then the fields a span gets on first
-- read: the hex ids (made then stored: read again, they are plain fields),
-- status (UNSET), attributes (the lazy ones above) and, when sampled,
-- events and links (EMPTY). Every table and string a traced request
-- allocates is garbage the collector pays for (the GC was the largest part
-- of tracing's cost per request, measured).
local MT = {
  __index = function(s, k)
    local m = Span[k]
    if m ~= nil then return m end
    if k == "trace_id" then
      local v = hex128(s._t1, s._t2, s._t3, s._t4)
      rawset(s, k, v)
      return v
    elseif k == "span_id" then
      local v = hex64(s._s1, s._s2)
      rawset(s, k, v)
      return v
    elseif k == "status" then
      return UNSET
    elseif k == "attributes" then
      if rawget(s, "_http") then return lazy_attributes(s) end
    elseif (k == "events" or k == "links") and (rawget(s, "attributes") or rawget(s, "_http")) then
      return EMPTY
    end
    return nil
  end,
}
M.MT = MT

--- New span; parent: a span or a remote context { trace_id, parent_id,
--- sampled, tracestate } or nil (a new trace, sampled as `sampled` says).
--- attributes: the table to record into (a sampled span; default a new one;
--- false: none yet, the span's `_http` has them, see set_lazy_attributes).
function M.new(name, kind, parent, sampled, attributes)
  local w1, w2 = next32(), next32()
  if w1 == 0 and w2 == 0 then w2 = 1 end
  -- the constructor names 16 fields: the table is made with room for them
  -- (those set later, or read lazily, included) and never grows
  local s = setmetatable({
    name = name, kind = kind or "internal", start_us = now_us(), end_us = nil, sampled = false,
    attributes = nil, _http = nil, _s1 = w1, _s2 = w2, _t1 = 0, _t2 = 0, _t3 = 0, _t4 = 0,
    trace_id = nil, span_id = nil, parent_id = nil,
  }, MT)
  if parent then
    local t = rawget(parent, "trace_id")
    if t then
      s.trace_id = t
    else
      s._t1, s._t2, s._t3, s._t4 = parent._t1, parent._t2, parent._t3, parent._t4
    end
    s.parent_id = parent.span_id or parent.parent_id
    s.sampled = parent.sampled
    if parent.tracestate then s.tracestate = parent.tracestate end
    if parent.baggage then s.baggage = parent.baggage end
  else
    local a, b, c, d = next32(), next32(), next32(), next32()
    if a == 0 and b == 0 and c == 0 and d == 0 then d = 1 end
    s._t1, s._t2, s._t3, s._t4 = a, b, c, d
    s.sampled = sampled
  end
  if s.sampled and attributes ~= false then s.attributes = attributes or {} end
  return s
end

--- A span from ids made elsewhere (an HTTP root span the C server kept
--- until Lua asked for it, jararaca.tracing's materialize): the words as
--- M.new keeps them, parent_id hex or nil, started at start_us. A sampled
--- span gets no attribute table (false: see set_lazy_attributes).
function M.from_words(name, kind, t1, t2, t3, t4, w1, w2, parent_id, sampled, start_us)
  return setmetatable({
    name = name, kind = kind, start_us = start_us, end_us = nil, sampled = sampled,
    attributes = nil, _http = nil, _s1 = w1, _s2 = w2, _t1 = t1, _t2 = t2, _t3 = t3, _t4 = t4,
    trace_id = nil, span_id = nil, parent_id = parent_id,
  }, MT)
end

-- An attribute value: a string, number or boolean as is, else its tostring.
local function value(v)
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then return v end
  return tostring(v)
end
M.value = value

function Span:set_attribute(k, v)
  if self.attributes and self.end_us == nil then self.attributes[tostring(k)] = value(v) end
  return self
end

function Span:set_attributes(t)
  for k, v in pairs(t) do self:set_attribute(k, v) end
  return self
end

function Span:add_event(name, attributes)
  if self.events and self.end_us == nil then
    local a
    if attributes then
      a = {}
      for k, v in pairs(attributes) do a[tostring(k)] = value(v) end
    end
    local ev = self.events
    if ev == EMPTY then ev = {}; self.events = ev end
    ev[#ev + 1] = { name = tostring(name), time_us = now_us(), attributes = a }
  end
  return self
end

function Span:add_link(ctx, attributes)
  local l = self.links
  if l then
    if l == EMPTY then l = {}; self.links = l end
    l[#l + 1] = { trace_id = ctx.trace_id, span_id = ctx.span_id or ctx.parent_id, attributes = attributes }
  end
  return self
end

local CODES = { unset = true, ok = true, error = true, UNSET = "unset", OK = "ok", ERROR = "error" }

--- set_status("ok" | "error" | "unset" [, message]); "ok" is final (the
--- OpenTelemetry rule).
function Span:set_status(code, message)
  local c = CODES[code]
  if c == nil then error("span:set_status: code must be \"ok\", \"error\" or \"unset\", got " .. tostring(code), 2) end
  if c ~= true then code = c end
  if self.status.code ~= "ok" then self.status = { code = code, message = message and tostring(message) } end
  return self
end

--- record_exception(err [, attributes]): an "exception" event; the
--- status becomes error.
function Span:record_exception(err, attributes)
  local a = { ["exception.message"] = tostring(err), ["exception.type"] = type(err) }
  if attributes then for k, v in pairs(attributes) do a[k] = v end end
  self:add_event("exception", a)
  if self.status.code ~= "ok" then self.status = { code = "error", message = tostring(err) } end
  return self
end

function Span:is_recording() return self.sampled == true and self.end_us == nil end

--- The `traceparent` header of span s, made each time (one string from its
--- words): for a header sent once (the echo of an HTTP answer), where
--- keeping it would only add a field to the span.
local function make_traceparent(s)
  local flags = s.sampled and "-01" or "-00"
  local t = rawget(s, "trace_id")
  if t then return "00-" .. t .. "-" .. s.span_id .. flags end
  -- one format call: fewer steps than 24 byte lookups and concatenations
  -- (the words are signed 32-bit: % 2^32 makes them the unsigned value)
  return format("00-%08x%08x%08x%08x-%08x%08x%s", s._t1 % 4294967296, s._t2 % 4294967296,
    s._t3 % 4294967296, s._t4 % 4294967296, s._s1 % 4294967296, s._s2 % 4294967296, flags)
end
M.make_traceparent = make_traceparent

--- The span's `traceparent` header (made once, then kept).
function Span:traceparent()
  local tp = rawget(self, "_tp")
  if tp then return tp end
  tp = make_traceparent(self)
  rawset(self, "_tp", tp)
  return tp
end

MT.__tostring = function(self) return "Span(" .. tostring(self.name) .. " " .. self:traceparent() .. ")" end

-- The span of a disabled tracer: every method a no-op (no allocation).
local function noop(s) return s end
local NOOP = setmetatable({ is_recording = function() return false end, traceparent = function() return nil end },
  { __index = function() return noop end })
M.NOOP = NOOP

return M
