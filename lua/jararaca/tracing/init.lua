--- jararaca.tracing: spans inside a service and a root span per
-- transaction, W3C trace context in and out. docs/tracing.md.
--
--   Microservice{ tracing = { sample = 1.0, trust_inbound = true, exporter = fn } }
--   j.start_span("load", function(span) span:set_attribute("n", 3) ... end)
--   local load = j.TracedFunc("load", function(id) ... end)
--   j.traced(Repo)                       -- every method: span "Repo.<name>"
--
-- Off unless the app declares `tracing` (zero cost when off: start_span
-- and TracedFunc call straight through with the no-op span). Sampling is
-- parent-based: a transaction with a sampled (trusted) inbound parent is
-- sampled, one with an unsampled parent is not, a new trace is sampled with
-- probability `sample`. Finished sampled spans go to `exporter(batch)` in
-- batches of `batch_size` (and on flush()).
local state = require "jararaca.tracing.state"
local spanmod = require "jararaca.tracing.span"
local w3c = require "jararaca.tracing.w3c"
local context = require "jararaca.context"

local M = {}

local type, pairs, error, format, tostring, xpcall, pcall, rawget, rawset, running, byte =
  type, pairs, error, string.format, tostring, xpcall, pcall, rawget, rawset, coroutine.running, string.byte
local random_bytes = require("jararaca.core.sys").random_bytes
local new_span, now_us, NOOP = spanmod.new, spanmod.now_us, spanmod.NOOP
local active, current_span = state.active, state.current
local current_ctx = context.current

M.state = state
M.w3c = w3c
M.NOOP = NOOP

local cfg = { sample = 1.0, trust_inbound = true, batch_size = 64 }
local buffer = {}
local sink -- fn(span): every finished sampled span, at its end (jararaca.otlp)

local FIELDS = { enabled = true, sample = true, trust_inbound = true, exporter = true, batch_size = true }

--- Check Microservice.tracing: true | nil, message.
function M.check(t)
  if type(t) ~= "table" then return nil, "expected a table { sample =, trust_inbound =, exporter = }, got " .. type(t) end
  for k in pairs(t) do
    if not FIELDS[k] then return nil, format("unknown field %q", tostring(k)) end
  end
  if t.enabled ~= nil and type(t.enabled) ~= "boolean" then return nil, "enabled: expected a boolean" end
  if t.sample ~= nil and (type(t.sample) ~= "number" or t.sample < 0 or t.sample > 1) then
    return nil, "sample: expected a number in 0..1"
  end
  if t.trust_inbound ~= nil and type(t.trust_inbound) ~= "boolean" then
    return nil, "trust_inbound: expected a boolean"
  end
  if t.exporter ~= nil and type(t.exporter) ~= "function" and t.exporter ~= "otlp" then
    return nil, "exporter: expected a function(batch) or \"otlp\""
  end
  if t.batch_size ~= nil and (type(t.batch_size) ~= "number" or t.batch_size < 1 or t.batch_size % 1 ~= 0) then
    return nil, "batch_size: expected a positive integer"
  end
  return true
end

--- Configure from Microservice.tracing (nil: off). Called by runtime.start.
function M.configure(t)
  if t == nil or t.enabled == false then
    state.on = false
    return
  end
  local ok, err = M.check(t)
  if not ok then error("Microservice.tracing: " .. err, 2) end
  cfg = {
    sample = t.sample or 1.0, trust_inbound = t.trust_inbound ~= false,
    exporter = type(t.exporter) == "function" and t.exporter or nil, -- ("otlp": jararaca.otlp sets the sink)
    batch_size = t.batch_size or 64,
  }
  buffer = {}
  sink = nil
  spanmod.seed() -- (per process: runtime.start runs after the fork)
  state.on = true
end

function M.enabled() return state.on end

--- Hand every finished sampled span to fn(span) at its end, besides the
--- exporter (nil: none). jararaca.otlp's hook; fn must not raise.
function M.set_sink(fn) sink = fn end

--- Hand the buffered finished spans to the exporter.
function M.flush()
  if #buffer == 0 then return true end
  local batch = buffer
  buffer = {}
  local exp = cfg.exporter
  if exp then
    local ok, err = pcall(exp, batch)
    if not ok then return nil, "tracing exporter failed: " .. tostring(err), "error" end
  end
  return true
end

local function finish(sp)
  if sp.end_us then return end
  sp.end_us = now_us()
  if sink and sp.sampled then sink(sp) end
  if sp.sampled and cfg.exporter then
    buffer[#buffer + 1] = sp
    if #buffer >= cfg.batch_size then M.flush() end
  end
end
M.finish = finish

-- The kernel's random bytes, not math.random: pre-forked workers would
-- otherwise all draw the same sequence.
local function sampled_new()
  local p = cfg.sample
  if p >= 1 then return true end
  if p <= 0 then return false end
  local b1, b2, b3 = byte(random_bytes(3), 1, 3)
  return (b1 * 65536 + b2 * 256 + b3) / 16777216 < p
end

--- The current span (nested start_span's, else the transaction's root), or
--- the no-op span when tracing is off or outside a transaction.
function M.current_span()
  if not state.on then return NOOP end
  return current_span(current_ctx()) or NOOP
end

-- Run fn(...) with sp active in this coroutine; record an error, end sp.
local function run_in(sp, fn, ...)
  local co = running() or active -- (the main chunk has no coroutine)
  local prev = active[co]
  active[co] = sp
  local function handler(e)
    sp:record_exception(e)
    return e
  end
  local function done(ok, ...)
    active[co] = prev
    finish(sp)
    if not ok then error((...), 0) end
    return ...
  end
  return done(xpcall(fn, handler, ...))
end

local function child(name, opts)
  local parent = current_span(current_ctx())
  local sp = new_span(name, opts and opts.kind, parent, parent == nil and sampled_new())
  if opts and opts.attributes and sp.attributes then sp:set_attributes(opts.attributes) end
  return sp
end

--- j.start_span(name, [opts], fn, ...): run fn(span, ...) in a span that is
--- a child of the current one; returns fn's results (an error is recorded
--- on the span and raised again, same value). opts: { kind =, attributes = }.
function M.start_span(name, opts, fn, ...)
  if type(opts) == "function" then return M.start_span(name, nil, opts, fn, ...) end
  if type(fn) ~= "function" then error("start_span(name, [opts], fn): fn must be a function", 2) end
  if not state.on then return fn(NOOP, ...) end
  if type(name) ~= "string" then error("start_span: name must be a string", 2) end
  local sp = child(name, opts)
  return run_in(sp, fn, sp, ...)
end

--- j.TracedFunc(name, fn): fn wrapped so each call runs in a span `name`
--- (a child of the current span); same arguments and results.
function M.TracedFunc(name, fn)
  if type(name) ~= "string" then error("TracedFunc(name, fn): name must be a string", 2) end
  if type(fn) ~= "function" then error("TracedFunc(name, fn): fn must be a function", 2) end
  return function(...)
    if not state.on then return fn(...) end
    return run_in(child(name, nil), fn, ...)
  end
end

--- j.traced(Class, [prefix]): wrap every public method (a function field
--- whose name does not start with "_", "new" excepted) in a TracedFunc
--- named "<prefix>.<method>"; prefix defaults to Class.__name or
--- Class.name. Returns Class.
function M.traced(cls, prefix)
  if type(cls) ~= "table" then error("traced(Class, [prefix]): Class must be a table", 2) end
  prefix = prefix or rawget(cls, "__name") or (type(rawget(cls, "name")) == "string" and cls.name) or "Class"
  local names = {}
  for k, v in pairs(cls) do
    if type(k) == "string" and type(v) == "function" and k:sub(1, 1) ~= "_" and k ~= "new" then
      names[#names + 1] = k
    end
  end
  for _, k in ipairs(names) do cls[k] = M.TracedFunc(prefix .. "." .. k, cls[k]) end
  return cls
end

-- Root spans --------------------------------------------------------------

local REDACTED = {
  authorization = true, cookie = true, ["set-cookie"] = true, ["proxy-authorization"] = true,
  ["x-api-key"] = true,
}
M.REDACTED = REDACTED

--- Start the root span of ctx's transaction: name, kind, the inbound
--- carrier get(obj, name) (or nil), trusted (false: a new trace linked to
--- the remote one). The span becomes ctx._span.
function M.start_root(ctx, name, kind, get, obj, trusted)
  local remote, bg
  if get then remote, bg = w3c.extract(get, obj) end
  local sp
  if remote and trusted then
    sp = new_span(name, kind, remote)
  else
    sp = new_span(name, kind, nil, sampled_new())
    if remote then
      sp:add_link({ trace_id = remote.trace_id, span_id = remote.parent_id }, { ["boundary.kind"] = "untrusted" })
    end
    if trusted then sp.baggage = bg end
  end
  rawset(ctx, "_span", sp)
  -- a new transaction: no span of a task that ran before on this (reused)
  -- coroutine stays active
  active[running() or active] = nil
  return sp
end

-- HTTP / WebSocket ----------------------------------------------------------

-- header name as received -> its attribute name (or false: redacted);
-- memoized, so a request does not build one string per header. Bounded:
-- names beyond 1000 distinct ones are built each time.
local header_attr, header_attrs = {}, 0
local function header_key(k)
  local a = header_attr[k]
  if a ~= nil then return a end
  local name = w3c.lower(tostring(k))
  a = "http.request.header." .. name
  if REDACTED[name] then a = false end
  if header_attrs < 1000 then
    header_attrs = header_attrs + 1
    header_attr[k] = a
  end
  return a, name
end

local function http_attributes(sp, req, route)
  local h = req._h
  sp:set_attribute("app.context_type", route.websocket and "websocket" or "http")
  sp:set_attribute("http.method", h:method())
  sp:set_attribute("http.path", h:path())
  sp:set_attribute("http.url", h:target())
  sp:set_attribute("http.route.path", route.path)
  local q = h:query_string()
  if q and q ~= "" then sp:set_attribute("http.query", q) end
  if route.member then sp:set_attribute("http.route.endpoint.name", route.member) end
  local params = rawget(req, "params")
  if type(params) == "table" then
    for k, v in pairs(params) do sp:set_attribute("http.request.path_param." .. tostring(k), v) end
  end
  local ok, headers = pcall(h.headers, h)
  if ok and type(headers) == "table" then
    local attrs = sp.attributes
    for k, v in pairs(headers) do
      local a = header_key(k)
      if a then
        attrs[a] = type(v) == "string" and v or tostring(v)
      else
        attrs["http.request.header." .. w3c.lower(tostring(k))] = "[redacted]"
      end
    end
  end
  local okr, host = pcall(h.remote, h)
  if okr and host then sp:set_attribute("http.request.client.host", host) end
  if route.websocket then sp:set_attribute("ws.url", h:target()) end
end

local function handle_header(h, n) return h:header(n) end

--- The root span of an HTTP request or WebSocket connection.
function M.start_http(ctx, req, route)
  local h = req._h
  local name = route.websocket and ("WebSocket " .. tostring(route.path))
    or (tostring(h:method()) .. " " .. tostring(route.path))
  local sp = M.start_root(ctx, name, "server", handle_header, h, cfg.trust_inbound)
  if sp.attributes then pcall(http_attributes, sp, req, route) end
  return sp
end

--- Headers for an answer: hd plus `traceparent` of sp (a copy; hd is the
--- app's and may be shared). Keeps an app's own traceparent.
function M.echo(sp, hd)
  local out = { traceparent = sp:traceparent() }
  if hd then
    for k, v in pairs(hd) do
      if w3c.lower(tostring(k)) == "traceparent" then out.traceparent = nil end
      out[k] = v
    end
  end
  return out
end

--- End the root span of an HTTP answer with status st.
function M.end_http(sp, st)
  if sp.attributes then
    sp:set_attribute("http.response.status_code", st)
    if type(st) == "number" and st >= 500 then sp:set_status("error") end
  end
  finish(sp)
end

-- Message bus / scheduler ---------------------------------------------------

-- A message header by its lower-case name, in any case.
local function message_header(headers, n)
  local v = headers[n]
  if v == nil then
    for k, hv in pairs(headers) do if w3c.lower(tostring(k)) == n then return hv end end
  end
  return v
end

--- The root span of a message delivery (consumer): "TASK <topic>" (the
--- original's name; "EVENT" for a handler of kind "event", none today),
--- a child of the publisher's span (message headers are our own publishers').
function M.start_message(ctx, msg, h)
  local kind = (h and h.kind == "event") and "EVENT" or "TASK"
  local sp = M.start_root(ctx, kind .. " " .. tostring(msg.topic), "consumer", message_header, msg.headers or {}, true)
  if sp.attributes then
    sp:set_attribute("app.context_type", "message_bus")
    sp:set_attribute("bus.message.id", msg.id)
    sp:set_attribute("bus.message.topic", msg.topic)
    sp:set_attribute("bus.message.processing_attempt", msg.attempt)
    if h then sp:set_attribute("bus.handler.name", h.name) end
  end
  return sp
end

--- The root span of a scheduled run: "Scheduler Task <name>", a new trace.
function M.start_schedule(ctx, a, r)
  local sp = M.start_root(ctx, "Scheduler Task " .. tostring(a.name), "internal", nil, nil, false)
  if sp.attributes then
    sp:set_attribute("app.context_type", "scheduler")
    sp:set_attribute("sched.task_name", a.name)
    if a.cron then sp:set_attribute("sched.cron_expression", a.cron) end
    if r and r.tick then sp:set_attribute("sched.scheduled_to", r.tick) end
  end
  return sp
end

--- End a root span: ok, or the error err.
function M.end_root(sp, ok, err)
  if not ok and err ~= nil then sp:record_exception(err) end
  finish(sp)
end

--- Outbound: set `traceparent` (the current span's: a new parent id per
--- hop), `tracestate` and `baggage` on headers, unless headers sets them
--- (in any case). Returns true when tracing added the trace context.
function M.inject(ctx, headers)
  local sp = current_span(ctx)
  if sp == nil then return false end
  local have = {}
  for k in pairs(headers) do have[w3c.lower(tostring(k))] = true end
  if not have.traceparent then
    headers.traceparent = sp:traceparent()
    if sp.tracestate and not have.tracestate then headers.tracestate = sp.tracestate end
  end
  if sp.baggage and not have.baggage then headers.baggage = sp.baggage end
  return true
end

return M
