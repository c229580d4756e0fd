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

local type, pairs, ipairs, error, format, tostring, xpcall, pcall, rawget, rawset, running, byte, setmetatable,
  find, sub =
  type, pairs, ipairs, error, string.format, tostring, xpcall, pcall, rawget, rawset, coroutine.running, string.byte,
  setmetatable, string.find, string.sub
local random_bytes = require("jararaca.core.sys").random_bytes
local new_span, now_us, value, NOOP, make_traceparent =
  spanmod.new, spanmod.now_us, spanmod.value, spanmod.NOOP, spanmod.make_traceparent
local active, current_span = state.active, state.current
local current_ctx = context.current

-- LuaJIT 2.1's table.new / table.clone (OpenResty's branch has clone);
-- plain Lua otherwise
local clone = pcall(require, "table.clone") and require "table.clone" or nil
local new_tab = pcall(require, "table.new") and require "table.new" or function() return {} end
local function copy(t)
  if clone then return clone(t) end
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

M.state = state
M.w3c = w3c
M.NOOP = NOOP

local cfg = { sample = 1.0, trust_inbound = true }
local sink -- fn(span): every finished sampled span, at its end (jararaca.otlp)
-- the OTLP exporter behind sink (jararaca.core.otlp): with it and no Lua
-- exporter, an HTTP request's root span stays in C until Lua asks for it
local otlp_e

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

-- The sink: called with each finished sampled span, in the order they end
-- (the exporter seam: an exporter that takes one span at a time is a sink
-- itself). An `exporter` function gets the spans in batches of batch_size
-- through a batching sink; flush() hands it what is buffered.
local function batch_sink(exporter, size)
  local buf, n = new_tab(size, 0), 0
  local function flush()
    if n == 0 then return true end
    local batch = buf
    buf, n = new_tab(size, 0), 0
    local ok, err = pcall(exporter, batch)
    if not ok then return nil, "tracing exporter failed: " .. tostring(err), "error" end
    return true
  end
  local function push(sp)
    n = n + 1
    buf[n] = sp
    if n >= size then return flush() end
  end
  return push, flush
end

local function sink_for(t)
  if type(t.exporter) == "function" then return batch_sink(t.exporter, t.batch_size or 64) end
  return nil, nil
end

--- Configure from Microservice.tracing (nil: off). Called by runtime.start.
function M.configure(t)
  if t == nil or t.enabled == false then
    state.on = false
    return
  end
  local ok, err = M.check(t)
  if not ok then error("Microservice.tracing: " .. err, 2) end
  local bsink, bflush = sink_for(t)
  cfg = { sample = t.sample or 1.0, trust_inbound = t.trust_inbound ~= false, sink = bsink, flush = bflush }
  sink, otlp_e = nil, nil -- (exporter = "otlp": jararaca.otlp sets them, after this)
  spanmod.seed() -- (per process: runtime.start runs after the fork)
  require("jararaca.core.http").trace_seed() -- (the ids of root spans kept in C)
  state.on = true
end

function M.enabled() return state.on end

--- Hand every finished sampled span to fn(span) at its end, besides the
--- exporter (nil: none). jararaca.otlp's hook; fn must not raise. e: the
--- OTLP exporter fn pushes to (it takes the root spans kept in C).
function M.set_sink(fn, e) sink, otlp_e = fn, fn and e end

--- Hand the buffered finished spans to the exporter: true | nil, message, "error".
function M.flush()
  local f = cfg.flush
  if f then return f() end
  return true
end

local lazy_attributes -- (below: the attributes of an HTTP span, made when read)

local function finish(sp)
  if sp.end_us then return end
  sp.end_us = now_us()
  if sp.sampled then
    local s = cfg.sink
    if s then
      if rawget(sp, "_http") then lazy_attributes(sp) end -- (a Lua exporter reads the table)
      s(sp)
    end
    if sink then sink(sp) end
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
--- the remote one), template (attributes a sampled span starts with, copied;
--- false: a span whose attributes come later, jararaca.tracing.span's lazy ones).
--- The span becomes ctx._span.
function M.start_root(ctx, name, kind, get, obj, trusted, template)
  local remote, bg
  if get then remote, bg = w3c.extract(get, obj) end
  local sp
  if remote and trusted then
    sp = new_span(name, kind, remote, nil, template and remote.sampled and copy(template) or template)
  else
    local sampled = sampled_new()
    sp = new_span(name, kind, nil, sampled, template and sampled and copy(template) or template)
    if remote then
      sp:add_link({ trace_id = remote.trace_id, span_id = remote.parent_id }, { ["boundary.kind"] = "untrusted" })
    end
    if trusted then sp.baggage = bg end
  end
  -- (no entry of `active` to clear for this coroutine: start_span restores
  -- the previous one when it ends, errors included, and a j.spawn task
  -- clears its own before its coroutine is reused; coroutine.running is
  -- not compiled by the JIT, a call per request costs)
  rawset(ctx, "_span", sp)
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

-- The attributes every request of a route has (the per-request ones as
-- keys with no value, so that a copy has their slots): made once per route
-- and method, copied per request (table.clone: one allocation, no rehash
-- as the per-request values are set).
local PER_REQUEST = { "http.path", "http.url", "http.query", "http.request.client.host", "http.response.status_code" }

local function route_template(route, method)
  local names = {}
  for _, k in ipairs(PER_REQUEST) do names[#names + 1] = k end
  if route.websocket then names[#names + 1] = "ws.url" end
  -- room for the per-request names and a few request headers (a request
  -- with more grows its copy)
  local t = new_tab(0, #names + 4 + 6)
  for _, k in ipairs(names) do t[k] = true end
  for _, k in ipairs(names) do t[k] = nil end
  t["app.context_type"] = route.websocket and "websocket" or "http"
  t["http.method"] = method
  t["http.route.path"] = route.path
  if route.member then t["http.route.endpoint.name"] = route.member end
  return t
end

-- route -> { method, name, attributes template } (weak: a routing table
-- that is dropped takes its entries along)
local per_route = setmetatable({}, { __mode = "k" })

local function route_info(route, method)
  local r = per_route[route]
  if r and r.method == method then return r end
  r = {
    _virtual = true, -- (r is ctx._span of a request whose root span C keeps: jararaca.tracing.state)
    attrs = false, -- (the template encoded for OTLP, made on first use)
    method = method, template = route_template(route, method), websocket = route.websocket and true or false,
    name = route.websocket and ("WebSocket " .. tostring(route.path)) or (tostring(method) .. " " .. tostring(route.path)),
  }
  per_route[route] = r -- (a route answering two methods, HEAD and GET: the last one kept)
  return r
end

-- path parameter name -> its attribute name (memoized like header_key)
local param_attr = {}
local function param_key(k)
  local a = param_attr[k]
  if a then return a end
  a = "http.request.path_param." .. tostring(k)
  if header_attrs < 1000 then
    header_attrs = header_attrs + 1
    param_attr[k] = a
  end
  return a
end

-- A C function called from JIT-compiled code ends the trace there (a
-- "stitch", ~0.1-0.2 µs each, measured): a request asks the handle as few
-- times as it can: its headers once (the trace context is read from that
-- table), its target once (path and query cut from it; the handle's
-- decoded path only when the target has escapes or is not origin-form).
local function http_attributes(attrs, req, h, headers, websocket)
  local url = h:target()
  attrs["http.url"] = url
  local q, pct = find(url, "?", 1, true), find(url, "%", 1, true)
  if byte(url, 1) == 47 and not find(url, "#", 1, true) and (pct == nil or (q and pct > q)) then
    -- origin-form, no escape in the path, no fragment: as the C server cuts it
    if q then
      attrs["http.path"] = sub(url, 1, q - 1)
      if q < #url then attrs["http.query"] = sub(url, q + 1) end
    else
      attrs["http.path"] = url
    end
  else
    attrs["http.path"] = h:path()
    local qs = h:query_string()
    if qs ~= "" then attrs["http.query"] = qs end
  end
  if websocket then attrs["ws.url"] = url end
  local params = rawget(req, "params")
  if type(params) == "table" then
    for k, v in pairs(params) do attrs[param_key(k)] = value(v) end
  end
  for k, v in pairs(headers) do
    local a = header_key(k)
    if a then
      attrs[a] = type(v) == "string" and v or tostring(v)
    else
      attrs["http.request.header." .. w3c.lower(tostring(k))] = "[redacted]"
    end
  end
  local host = h:remote()
  if host then attrs["http.request.client.host"] = host end
end

local function table_header(t, n) return t[n] end
local NO_HEADERS = {}

-- The attributes of a span with `_http` = { handle, params, route info,
-- status }, made when something first reads span.attributes (a Lua
-- exporter at the span's end, the app's own set_attribute): the route's
-- template, the request's own attributes from the C request
-- (core/http_attrs.h, the same code the OTLP encoder writes them with), the
-- path parameters, the status once answered.
lazy_attributes = function(sp)
  local hp = rawget(sp, "_http")
  local attrs = copy(hp[3].template)
  local h = hp[1]
  pcall(h.span_attributes, h, attrs, hp[3].websocket) -- (a request whose task ended: none)
  local params = hp[2]
  if type(params) == "table" then
    for k, v in pairs(params) do attrs[param_key(k)] = value(v) end
  end
  if hp[4] then attrs["http.response.status_code"] = hp[4] end
  sp._http = nil
  sp.attributes = attrs
  return attrs
end
spanmod.set_lazy_attributes(lazy_attributes)

-- The root span of a request C kept (h:trace_begin) as a Lua span, when
-- Lua first asks for it (state.current): ids, parent and start from C, the
-- attributes lazy as start_http's below. Nil when the request is over.
local function materialize(ctx, r)
  local req = rawget(ctx, "request")
  local h = req and rawget(req, "_h")
  if not h then return nil end
  local ok, t1, t2, t3, t4, s1, s2, parent, sampled, start_us = pcall(h.trace_take, h)
  if not ok or t1 == nil then return nil end
  local sp = spanmod.from_words(r.name, "server", t1, t2, t3, t4, s1, s2, parent, sampled, start_us)
  -- (5th: the C server echoes its traceparent, the same ids, see answer)
  if sampled then sp._http = { h, rawget(req, "params"), r, false, true } end
  rawset(ctx, "_span", sp)
  return sp
end
state.materialize = materialize

local encode_attributes
local function otlp_attributes(r)
  if not encode_attributes then encode_attributes = require("jararaca.core.otlp_encode").span_attributes end
  r.attrs = encode_attributes(r.template)
  return r.attrs
end

--- The root span of an HTTP request or WebSocket connection. A request of
--- the C server (a userdata handle) gets a span whose attributes are read
--- from the request only when asked for (lazy_attributes; an OTLP export
--- writes them from the request in C); its trace context is read with
--- h:header, not a table of all headers. With OTLP export and no Lua
--- exporter, the C server keeps the span itself (h:trace_begin: no Lua
--- table or string per request) until Lua asks for it: ctx._span is then
--- the route's info (`_virtual`) and this returns it.
function M.start_http(ctx, req, route)
  local h = req._h
  -- (the route's info as last made: C checks the request has its method,
  -- which saves making the method's string per request)
  local r = per_route[route]
  if r and otlp_e and not cfg.sink and not r.websocket and type(h) == "userdata"
    and h:trace_begin(cfg.sample, cfg.trust_inbound, r.method) then
    if not r.attrs then otlp_attributes(r) end
    ctx._span = r
    return r
  end
  r = route_info(route, h:method())
  if type(h) == "userdata" then
    if otlp_e and not r.attrs then otlp_attributes(r) end -- (the encoder copies it in)
    local sp = M.start_root(ctx, r.name, "server", h.header, h, cfg.trust_inbound, false)
    if sp.sampled then sp._http = { h, rawget(req, "params"), r, false } end
    return sp
  end
  local ok, headers = pcall(h.headers, h) -- (names in lower case)
  if not ok or type(headers) ~= "table" then headers = NO_HEADERS end
  local sp = M.start_root(ctx, r.name, "server", table_header, headers, cfg.trust_inbound, r.template)
  local attrs = sp.attributes
  if attrs then pcall(http_attributes, attrs, req, h, headers, route.websocket) end
  return sp
end

--- The headers to answer an HTTP request with, in the root span of holder
--- (the request's context, or the request): hd, or a copy with
--- `traceparent` (a span C keeps is echoed by C).
function M.answer_headers(holder, hd)
  local sp = rawget(holder, "_span")
  if sp == nil or rawget(sp, "_virtual") then return hd end
  local hp = rawget(sp, "_http")
  if hp and hp[5] then return hd end -- (a span Lua took over from C: C echoes it, the same ids)
  return M.echo(sp, hd)
end

--- The answer of an HTTP request (the status st it was sent with: a
--- refused answer's 500) or WebSocket handshake (101), in the root span of
--- holder: the span ends.
function M.answer(holder, h, st)
  local sp = rawget(holder, "_span")
  if sp == nil then return end
  if rawget(sp, "_virtual") then
    local req = rawget(holder, "request") or holder
    -- (never raises into the answer: an exporter stopped meanwhile, at
    -- shutdown, loses the span, not the answer)
    local e = otlp_e
    if e then pcall(e.push_http_span, e, h, st, sp.name, sp.attrs, sp.websocket, rawget(req, "params")) end
    return
  end
  M.end_http(sp, st)
end

-- The headers of an answer without headers of its own: one table reused
-- (h:respond reads its headers before it returns, the C server's and
-- jararaca.testing's alike), not a table per request.
local ECHO = { traceparent = false }

--- Headers for an answer: hd plus `traceparent` of sp (a copy; hd is the
--- app's and may be shared). Keeps an app's own traceparent. The table is
--- for the respond call that follows: without hd, the same one each time.
function M.echo(sp, hd)
  if hd == nil then
    ECHO.traceparent = make_traceparent(sp)
    return ECHO
  end
  local out = { traceparent = make_traceparent(sp) }
  for k, v in pairs(hd) do
    if w3c.lower(tostring(k)) == "traceparent" then out.traceparent = nil end
    out[k] = v
  end
  return out
end

-- The producer spans of a transaction's staged publishes that are still
-- open when its root span ends: the transaction failed, its messages were
-- dropped (jararaca.staged): they end with status error.
local ROLLED_BACK = "rolled back: the transaction failed, the message was not published"
local function close_producers(root)
  local list = rawget(root, "_producers")
  if not list then return end
  root._producers = nil
  for i = 1, #list do
    local p = list[i]
    if not p.end_us then
      p:set_status("error", ROLLED_BACK)
      finish(p)
    end
  end
end

--- End the root span of an HTTP answer with status st.
function M.end_http(sp, st)
  if not sp.end_us then
    local hp = rawget(sp, "_http")
    local attrs = hp == nil and rawget(sp, "attributes")
    if hp then hp[4] = st elseif attrs then attrs["http.response.status_code"] = st end
    if (hp or attrs) and type(st) == "number" and st >= 500 then sp:set_status("error") end
  end
  close_producers(sp)
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
  close_producers(sp)
  finish(sp)
end

-- Producer spans ---------------------------------------------------------

--- The PRODUCER span of a publish (message m of jararaca.bus.publisher:
--- topic, body, headers; when: { delay } | { at } | nil): "<topic> publish",
--- a child of the current span, or nil outside a traced transaction (no
--- current span). A recorded span gives the message its id (m.id) so the
--- span can name it. system: the broker ("rabbitmq", "jararaca.embedded").
function M.start_producer(ctx, m, when, system)
  local parent = current_span(ctx)
  if parent == nil then return nil end
  local sp = new_span(m.topic .. " publish", "producer", parent)
  local a = sp.attributes
  if a then
    if m.id == nil then m.id = spanmod.trace_id() end
    a["messaging.system"] = system or "jararaca"
    a["messaging.operation"] = "publish"
    a["messaging.destination.name"] = m.topic
    a["messaging.message.id"] = m.id
    a["messaging.message.body.size"] = #m.body
    if when and when.delay then a["bus.message.delay"] = when.delay end
    if when and when.at then a["bus.message.at"] = when.at end
  end
  return sp
end

--- End a producer span after its message went to the broker (or did not:
--- ok false, err the reason). Returns ok, err, code.
function M.end_producer(sp, ok, err, code)
  if not ok then sp:set_status("error", err) end
  finish(sp)
  return ok, err, code
end

-- A staged publish's span ends once the transaction's staged publishes ran
-- (list.err: their send failed).
local function end_staged(sp, list)
  if list.err then sp:set_status("error", list.err) end
  finish(sp)
end

--- A publish staged in ctx's transaction: its span ends after the staged
--- publish (after the commit) or, the transaction failed and the message
--- dropped, with the root span, status error "rolled back: ...".
function M.stage_producer(ctx, sp, list)
  local root = rawget(ctx, "_span")
  if root == nil or root.end_us then
    -- (no root span to end it with: a context that is not a traced
    -- transaction) the span covers the staging only
    sp:set_attribute("bus.message.staged", true)
    return finish(sp)
  end
  local open = rawget(root, "_producers")
  if open == nil then
    open = {}
    root._producers = open
  end
  open[#open + 1] = sp
  require("jararaca.staged").add(ctx, end_staged, sp, list)
end

--- Outbound: set `traceparent` (of sp, a producer span, else the current
--- span's: a new parent id per hop), `tracestate` and `baggage` on headers, unless headers sets them
--- (in any case). Returns true when tracing added the trace context.
function M.inject(ctx, headers, sp)
  sp = sp or current_span(ctx)
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
