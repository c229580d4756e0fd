--- jararaca.bus.controller: declaring message-bus controllers and their handlers.
--
--     local Worker = j.MessageBusController { name = "TaskWorker", inject = { tasks = "Tasks" }, group = "tasks" }
--     Worker.process = j.IncomingHandler("task.created", {
--       timeout = 30, max_retries = 5, backoff = { initial = 1, factor = 2, max = 60, jitter = 0.1 },
--       prefetch = 10, name = "process", group = "tasks", payload = s.object { id = s.integer() },
--     }, function(self, msg) ... end)
--
-- Declaring checks shapes only (`error(msg, 2)`: a handler without a
-- function, a topic that is not a string); the options are checked once per
-- app at startup by `handlers(app)`, whose errors name the app file, the
-- line and the handler, like the routes' (jararaca.http.route_spec):
--     app.lua:12: handler TaskWorker.process (task.created): max_retries: expected ...
-- Each handler gets one queue, "<app name>.<handler name>", bound to its
-- topic (an AMQP topic pattern: `*` one word, `#` zero or more).
-- docs/bus.md is the user's page.
-- @module jararaca.bus.controller
local schema = require "jararaca.schema"
local topic_mod = require "jararaca.bus.topic"

local M = {}

local type, pairs, ipairs, error, setmetatable, getmetatable, rawget, tostring =
  type, pairs, ipairs, error, setmetatable, getmetatable, rawget, tostring
local format, floor, huge, sort = string.format, math.floor, math.huge, table.sort

--- Defaults of a handler's options (docs/bus.md).
M.DEFAULTS = {
  timeout = 60, max_retries = 3, prefetch = 10, group = "default",
  backoff = { initial = 1, factor = 2, max = 60, jitter = 0.1 },
}

local order_counter = 0

local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  return info and (info.short_src .. ":" .. (info.currentline or 0)) or nil
end

local Handler_mt = {}
Handler_mt.__index = Handler_mt
function Handler_mt.__call(h, self, ...) return h.fn(self, ...) end -- `Ctl:name(msg)` in tests
function Handler_mt.__tostring(h) return "IncomingHandler(" .. tostring(h.topic) .. ")" end

local function is_handler(v)
  return type(v) == "table" and getmetatable(v) == Handler_mt
end
M.is_handler = is_handler

-- The descriptor; what: the declaring call, for errors at level 3.
local function handler(what, topic, opts, fn)
  if opts ~= nil and type(opts) ~= "table" then
    error(what .. ": opts must be a table, got " .. type(opts), 3)
  end
  if type(fn) ~= "function" then
    error(what .. ": expected a handler function as the last argument, got " .. type(fn), 3)
  end
  order_counter = order_counter + 1
  return setmetatable({ topic = topic, opts = opts or {}, fn = fn, order = order_counter, defined_at = where(3) },
    Handler_mt)
end

--- `IncomingHandler(topic, [opts], fn)`: a handler descriptor for a field of
--- a MessageBusController.
function M.IncomingHandler(topic, opts, fn)
  if fn == nil and type(opts) == "function" then opts, fn = nil, opts end
  if type(topic) ~= "string" then
    error("IncomingHandler(topic, [opts], fn): topic must be a string, got " .. type(topic), 2)
  end
  local h = handler("IncomingHandler(topic, [opts], fn)", topic, opts, fn)
  return h
end

--- `MessageHandler(MessageType, [opts], fn)`: IncomingHandler on the
--- message type's topic, its payload validated against the type
--- (jararaca.bus.message_type).
function M.MessageHandler(mtype, opts, fn)
  if fn == nil and type(opts) == "function" then opts, fn = nil, opts end
  local topic = require("jararaca.bus.message_type").topic(mtype)
  if topic == nil then
    error("MessageHandler(MessageType, [opts], fn): expected a message type (j.Message(name, { topic = ..., "
      .. "fields = ... })), got " .. (schema.is_schema(mtype) and tostring(mtype) or type(mtype)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("MessageHandler(MessageType, [opts], fn): opts must be a table, got " .. type(opts), 2)
  end
  if opts and opts.payload ~= nil then
    error("MessageHandler(MessageType, [opts], fn): opts.payload is the message type already; use IncomingHandler "
      .. "for another schema", 2)
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.payload = mtype
  local h = handler("MessageHandler(MessageType, [opts], fn)", topic, o, fn)
  return h
end

local CONTROLLER_OPTS = { name = "string", inject = "table", group = "string" }

--- `MessageBusController([opts])`: a controller class (built by the DI
--- container like a RestController). opts: name, inject, group (the default
--- group of its handlers).
function M.MessageBusController(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("MessageBusController(opts): opts must be a table, got " .. type(opts), 2) end
  for k, v in pairs(opts) do
    local want = CONTROLLER_OPTS[k]
    if want == nil then error(format("MessageBusController: unknown option %q", tostring(k)), 2) end
    if type(v) ~= want or (want == "string" and v == "") then
      error(format("MessageBusController: opts.%s must be a %s%s, got %s", k, want == "string" and "non-empty " or "",
        want, type(v)), 2)
    end
  end
  local at = where(2)
  local cls = {
    __name = opts.name or ("MessageBusController@" .. tostring(at)),
    __bus_controller = { opts = opts, group = opts.group, defined_at = at },
    inject = opts.inject,
  }
  cls.__index = cls
  return cls
end

--- True when v is a class made by MessageBusController.
function M.is_bus_controller(v)
  return type(v) == "table" and type(rawget(v, "__bus_controller")) == "table"
end

---------------------------------------------------------------------------
-- Options, checked at startup
---------------------------------------------------------------------------

-- A value in an error message.
local function describe(v)
  if type(v) == "string" then return format("%q", v) end
  return tostring(v)
end
M.describe = describe

local function seconds(v, what, positive)
  if type(v) ~= "number" or v ~= v or v == huge or v < 0 or (positive and v == 0) then
    error(format("%s: expected a number of seconds %s, got %s", what, positive and "> 0" or ">= 0", describe(v)), 0)
  end
  return v
end

local function whole(v, what, lo, hi)
  if type(v) ~= "number" or v ~= floor(v) or v < lo or v > hi then
    error(format("%s: expected a whole number in %d..%d, got %s", what, lo, hi, describe(v)), 0)
  end
  return v
end

local NAME = "^[%w_%-]+$"

-- A name or group: raises the message without its place.
local function label(v, what)
  if type(v) ~= "string" or not v:find(NAME) then
    error(format("%s: expected a non-empty name of letters, digits, '_' and '-', got %s", what, describe(v)), 0)
  end
  return v
end
M.label = label

-- "<app>.dlq", "<app>.dlx" and "<app>.retry" are the app's own queue and
-- exchanges on RabbitMQ (jararaca.bus.amqp_topology): no handler's queue.
local RESERVED = { dlq = true, dlx = true, retry = true }

local function handler_name(v)
  label(v, "name")
  if RESERVED[v] then
    error(format("name: %q is reserved for the app's own queues (dlq, dlx, retry): give the handler another "
      .. "name = ...", v), 0)
  end
  return v
end

local function backoff(v)
  local d = M.DEFAULTS.backoff
  if v == nil then return { initial = d.initial, factor = d.factor, max = d.max, jitter = d.jitter } end
  if type(v) ~= "table" then error("backoff: expected a table { initial, factor, max, jitter }, got " .. type(v), 0) end
  for k in pairs(v) do
    if d[k] == nil then error(format("backoff: unknown field %s (known: initial, factor, max, jitter)", describe(k)), 0) end
  end
  local b = {
    initial = seconds(v.initial == nil and d.initial or v.initial, "backoff.initial"),
    factor = v.factor == nil and d.factor or v.factor,
    max = seconds(v.max == nil and d.max or v.max, "backoff.max"),
    jitter = v.jitter == nil and d.jitter or v.jitter,
  }
  if type(b.factor) ~= "number" or b.factor ~= b.factor or b.factor < 1 or b.factor == huge then
    error("backoff.factor: expected a number >= 1, got " .. describe(b.factor), 0)
  end
  if type(b.jitter) ~= "number" or not (b.jitter >= 0 and b.jitter <= 1) then
    error("backoff.jitter: expected a fraction in 0..1, got " .. describe(b.jitter), 0)
  end
  if b.max < b.initial then error(format("backoff.max (%g) is below backoff.initial (%g)", b.max, b.initial), 0) end
  return b
end

local KNOWN = {
  timeout = true, max_retries = true, backoff = true, prefetch = true, name = true, group = true, payload = true,
}

-- The checked options of one handler (raises a message without its place).
local function normalize(h, member, cls)
  local o = h.opts
  for k in pairs(o) do
    if not KNOWN[k] then
      error(format("unknown option %s (known: timeout, max_retries, backoff, prefetch, name, group, payload)",
        describe(k)), 0)
    end
  end
  local perr = topic_mod.pattern_error(h.topic)
  if perr then error("topic: " .. perr, 0) end
  local d = M.DEFAULTS
  if o.payload ~= nil and not schema.is_schema(o.payload) then
    error("payload: expected a schema (j.schema...), got " .. type(o.payload), 0)
  end
  return {
    timeout = seconds(o.timeout == nil and d.timeout or o.timeout, "timeout", true),
    max_retries = whole(o.max_retries == nil and d.max_retries or o.max_retries, "max_retries", 0, 1000000),
    prefetch = whole(o.prefetch == nil and d.prefetch or o.prefetch, "prefetch", 1, 1000),
    name = handler_name(o.name == nil and member or o.name),
    group = label(o.group or rawget(cls, "__bus_controller").group or d.group, "group"),
    backoff = backoff(o.backoff),
    payload = o.payload,
  }
end

--- "app.lua:12: handler TaskWorker.process (task.created)"
function M.where(h)
  local text = format("handler %s.%s (%s)", tostring(rawget(h.controller, "__name")), tostring(h.member),
    tostring(h.topic))
  local at = h.defined_at or rawget(h.controller, "__bus_controller").defined_at
  if at then text = at .. ": " .. text end
  return text
end

--- The name of an app on the bus (its queues' prefix): Microservice.name,
--- else the app file's name without ".lua".
function M.app_name(app)
  if type(app.name) == "string" then return app.name end
  local file = rawget(app, "__file")
  if type(file) == "string" then return (file:match("([^/]+)$"):gsub("%.lua$", "")) end
  return "app"
end

--- The descriptors of an app's controller classes, checked, in
--- declaration order (the handlers here, jararaca.schedule.action's
--- scheduled actions). is(v): v is a descriptor; accept(cls): a class to
--- look in (nil: every class); build(r, d): fills the record r = {
--- controller, member, fn, defined_at } of descriptor d, raising the
--- message of a bad option (r then has what place(r) needs); place(r): its
--- place in errors. Raises error(msg, 0) naming the place of a bad option,
--- or two records with one name.
function M.collect(app, is, accept, build, place)
  local out, by_name = {}, {}
  for _, cls in ipairs(app.controllers or {}) do
    if accept == nil or accept(cls) then
      local found = {}
      for member, v in pairs(cls) do
        if type(member) == "string" and is(v) then found[#found + 1] = { member = member, d = v } end
      end
      sort(found, function(a, b) return a.d.order < b.d.order end)
      for _, f in ipairs(found) do
        local r = { controller = cls, member = f.member, fn = f.d.fn, defined_at = f.d.defined_at }
        local ok, err = pcall(build, r, f.d)
        if not ok then error(place(r) .. ": " .. tostring(err), 0) end
        local other = by_name[r.name]
        if other then
          error(format("%s: name: %q is the name of %s too (give one of them another name = ...)", place(r),
            r.name, place(other)), 0)
        end
        by_name[r.name] = r
        out[#out + 1] = r
      end
    end
  end
  return out
end

--- The handlers of an app's message-bus controllers, checked, in
--- declaration order: { controller, member, fn, topic, queue, name, group,
--- timeout, max_retries, prefetch, backoff, payload, defined_at }. Raises
--- error(msg, 0) naming the file, line and handler of a bad option, or two
--- handlers with one name.
function M.handlers(app)
  local prefix = M.app_name(app)
  return M.collect(app, is_handler, M.is_bus_controller, function(h, d)
    h.topic = d.topic
    for k, v in pairs(normalize(d, h.member, h.controller)) do h[k] = v end
    h.queue = prefix .. "." .. h.name
  end, M.where)
end

return M
