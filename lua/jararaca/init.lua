-- jararaca: the public API. `local j = require "jararaca"`.
--
-- Declaring:   j.Microservice, j.ProviderSpec, j.Token, j.RestController,
--              j.Get / j.Post / j.Put / j.Patch / j.Delete / j.Route,
--              j.WebSocketEndpoint (docs/websockets.md),
--              j.MessageBusController, j.IncomingHandler, j.MessageHandler, j.Message (docs/bus.md)
--              j.ScheduledAction (docs/scheduler.md)
-- Messages:    j.use_publisher():publish(payload, topic) (staged like WebSocketMessage)
-- WebSockets:  j.use_ws_manager() (rooms, broadcast), j.WebSocketMessage(payload):send(rooms)
--              (staged: sent when the transaction commits; j.staged is the generic hook)
-- Schemas:     j.schema (types, validate, encode), j.ExposeType(schema), j.json
-- Responding:  j.HTTPError(status, detail [, headers]) (raise it with error()),
--              j.Response{ status=, body=, headers=, content_type= }
-- Middleware:  j.cors{ allow_origins=, ... } (for Microservice.middlewares)
-- Data:        j.persistence (SessionInterceptor, CRUD, Query), j.use_session(name),
--              j.providing_new_session, j.config (AppConfigurationInterceptor)
-- RPC:         j.RestClient, j.rpc.Get/Post/..., j.rpc.build, j.rpc.bearer/basic/api_key (docs/rpc.md)
-- Waiting:     j.sleep, j.spawn, j.gather, j.timeout
-- Hooks:       j.use_current_container(), j.use_app_context()
-- Logging:     j.log.info(...), j.log.error(...)
local microservice = require "jararaca.microservice"
local di = require "jararaca.di"
local controller = require "jararaca.http.controller"
local errors = require "jararaca.errors"
local response = require "jararaca.http.response"
local sched = require "jararaca.sched"
local context = require "jararaca.context"
local log = require "jararaca.log"
local sys = require "jararaca.core.sys"
local schema = require "jararaca.schema"
local json = require "jararaca.json"

local j = {}

j.VERSION = sys.version

j.Microservice = microservice.Microservice
j.ProviderSpec = di.ProviderSpec
j.Token = di.Token

j.RestController = controller.RestController
j.Get = controller.Get
j.Post = controller.Post
j.Put = controller.Put
j.Patch = controller.Patch
j.Delete = controller.Delete
j.Route = controller.Route
j.WebSocketEndpoint = controller.WebSocketEndpoint

j.schema = schema
j.json = json
--- Register a schema for `jararaca gen-tsi` even if no route uses it (e.g. a
--- WebSocket message or a message-bus payload): the original's ExposeType.
j.ExposeType = schema.expose

-- Loaded on first use (an app without a database does not pay for them).
local lazy = {
  persistence = function() return require "jararaca.persistence" end,
  use_session = function() return require("jararaca.persistence").use_session end,
  providing_new_session = function() return require("jararaca.persistence").providing_new_session end,
  config = function() return require "jararaca.config" end,
  AppConfigurationInterceptor = function() return require("jararaca.config").AppConfigurationInterceptor end,
  cors = function() return require("jararaca.http.cors").cors end, -- j.cors{...}: an app-wide middleware
  use_ws_manager = function() return require("jararaca.ws.manager").use_ws_manager end,
  WebSocketMessage = function() return require("jararaca.ws.manager").WebSocketMessage end,
  staged = function() return require "jararaca.staged" end,
  metrics = function() return require "jararaca.metrics" end, -- j.metrics.counter{...} (docs/metrics.md)
  MessageBusController = function() return require("jararaca.bus.controller").MessageBusController end,
  IncomingHandler = function() return require("jararaca.bus.controller").IncomingHandler end,
  ScheduledAction = function() return require("jararaca.schedule.action").ScheduledAction end,
  MessageHandler = function() return require("jararaca.bus.controller").MessageHandler end,
  Message = function() return require("jararaca.bus.message_type").Message end,
  use_publisher = function() return require("jararaca.bus.publisher").use_publisher end,
  -- HTTP RPC clients (docs/rpc.md): j.RestClient("/x", { m = j.rpc.Get(...) }), j.rpc.build(...)
  rpc = function() return require "jararaca.rpc" end,
  RestClient = function() return require("jararaca.rpc").RestClient end,
  -- tracing (docs/tracing.md)
  tracing = function() return require "jararaca.tracing" end,
  start_span = function() return require("jararaca.tracing").start_span end,
  TracedFunc = function() return require("jararaca.tracing").TracedFunc end,
  traced = function() return require("jararaca.tracing").traced end,
  current_span = function() return require("jararaca.tracing").current_span end,
}
setmetatable(j, {
  __index = function(t, k)
    local load = lazy[k]
    if not load then return nil end
    local v = load()
    rawset(t, k, v)
    return v
  end,
})

j.HTTPError = errors.HTTPError
j.Response = response.Response

j.sleep = sched.sleep
j.spawn = sched.spawn
j.gather = sched.gather
j.timeout = sched.timeout
j.now = sched.now
j.CANCELLED = sched.CANCELLED

j.log = log
j.context = context

--- A random (version 4) UUID, lower-case.
local random_bytes, byte, format = sys.random_bytes, string.byte, string.format
function j.uuid4()
  local b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16 = byte(random_bytes(16), 1, 16)
  b7 = b7 % 16 + 64    -- version 4
  b9 = b9 % 64 + 128   -- variant 10
  return format("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
    b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16)
end

--- Now, UTC, as RFC 3339 with milliseconds: "2026-11-27T21:00:00.123Z".
local time, date, floor = sys.time, os.date, math.floor
function j.utcnow()
  local t = time()
  local sec = floor(t)
  local ms = floor((t - sec) * 1000)
  return date("!%Y-%m-%dT%H:%M:%S", sec) .. format(".%03dZ", ms)
end

--- The DI container of the running process (any context: startup, request, ...).
function j.use_current_container()
  return context.require("use_current_container").container
end

--- The current transaction's context: kind ("http", "startup", ...), and for
--- HTTP: request, controller, member, route, request_id.
function j.use_app_context()
  return context.require("use_app_context")
end

return j
