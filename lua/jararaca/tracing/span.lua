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

local now, random_bytes, format, byte, type, tostring, floor =
  sys.time, sys.random_bytes, string.format, string.byte, type, tostring, math.floor

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
local function tohex(x)
  return HEX[band(rshift(x, 24), 255)] .. HEX[band(rshift(x, 16), 255)] .. HEX[band(rshift(x, 8), 255)]
    .. HEX[band(x, 255)]
end

--- 16 random bytes as 32 hex digits (never all zero).
function M.trace_id()
  local a, b, c, d = next32(), next32(), next32(), next32()
  if a == 0 and b == 0 and c == 0 and d == 0 then return M.trace_id() end
  return tohex(a) .. tohex(b) .. tohex(c) .. tohex(d)
end

--- 8 random bytes as 16 hex digits (never all zero).
function M.span_id()
  local a, b = next32(), next32()
  if a == 0 and b == 0 then return M.span_id() end
  return tohex(a) .. tohex(b)
end

local function now_us() return floor(now() * 1e6) end
M.now_us = now_us

local Span = {}
Span.__index = Span
M.Span = Span

--- New span; parent: a span or a remote context { trace_id, parent_id,
--- sampled, tracestate } or nil (a new trace, sampled as `sampled` says).
function M.new(name, kind, parent, sampled)
  local s = setmetatable({
    name = name, kind = kind or "internal", span_id = M.span_id(), start_us = now_us(),
    status = { code = "unset" },
  }, Span)
  if parent then
    s.trace_id = parent.trace_id
    s.parent_id = parent.span_id or parent.parent_id
    s.sampled = parent.sampled
    s.tracestate, s.baggage = parent.tracestate, parent.baggage
  else
    s.trace_id = M.trace_id()
    s.sampled = sampled
  end
  if s.sampled then s.attributes, s.events, s.links = {}, {}, {} end
  return s
end

local function value(v)
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then return v end
  return tostring(v)
end

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
    self.events[#self.events + 1] = { name = tostring(name), time_us = now_us(), attributes = a }
  end
  return self
end

function Span:add_link(ctx, attributes)
  if self.links then
    self.links[#self.links + 1] = { trace_id = ctx.trace_id, span_id = ctx.span_id or ctx.parent_id,
      attributes = attributes }
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

function Span:traceparent()
  return format("00-%s-%s-%s", self.trace_id, self.span_id, self.sampled and "01" or "00")
end

function Span:__tostring() return "Span(" .. tostring(self.name) .. " " .. self:traceparent() .. ")" end

-- The span of a disabled tracer: every method a no-op (no allocation).
local function noop(s) return s end
local NOOP = setmetatable({ is_recording = function() return false end, traceparent = function() return nil end },
  { __index = function() return noop end })
M.NOOP = NOOP

return M
