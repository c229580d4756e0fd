--- jararaca.bus: an app's message bus in one process (server or worker).
--
--   bus.start(rt [, opts])   -- at startup, after the interceptors' startup (jararaca.runtime);
--                            -- opts.declare: declare RabbitMQ's topology (jararaca declare)
--   bus.broker(container)    -- the broker: broker | nil, message, code (opened at first use)
--   bus.state(container)     -- { app, settings, handlers, broker, propagate }
--   bus.stop(rt)             -- before the interceptors' shutdown
--
-- start checks the handlers' declarations and the broker's settings (a bad
-- one raises: a startup error). The broker is opened at startup when the app
-- has handlers or asked for a bus (Microservice.bus, JARARACA_BUS_URL), and
-- every handler's queue is bound to its topic there, in the server as in the
-- worker, so a message published before any worker ran is kept for it. An
-- app that only publishes opens it at its first publish.
-- Each process also runs the outbox relay (jararaca.bus.outbox): messages
-- its transactions wrote into the app's databases, or a crashed process left
-- there, go to the broker.
-- The broker is the embedded one (jararaca.bus.embedded) or RabbitMQ
-- (jararaca.bus.amqp), whose topology is checked at startup (declared with
-- Microservice.bus.declare, or by `jararaca declare`).
-- @module jararaca.bus
local controller = require "jararaca.bus.controller"
local settings = require "jararaca.bus.settings"
local log = require "jararaca.log"

local M = {}

local setmetatable, format, tostring, ipairs, rawget = setmetatable, string.format, tostring, ipairs, rawget

local states = setmetatable({}, { __mode = "k" })

--- The bus state of a container (nil before start).
function M.state(container)
  return states[container]
end

-- Open RabbitMQ: connect, then declare or check the app's topology.
local function open_amqp(st)
  local s = st.settings
  local b, err, code = require("jararaca.bus.amqp").open({
    url = s.dial, where = s.where, app = controller.app_name(st.app) })
  if not b then return nil, err, code end
  local ok
  if st.declare or (rawget(st.app, "bus") or {}).declare then
    ok, err, code = b:declare(st.handlers)
  else
    ok, err, code = b:check(st.handlers, rawget(st.app, "__file"))
  end
  if not ok then
    b:close()
    return nil, err, code
  end
  return b
end

-- Open the embedded broker: on the app's database when it is the same
-- file (one writer per file and process, see docs/bus-embedded.md).
local function open(st)
  if st.settings.kind == "amqp" then return open_amqp(st) end
  local embedded = require "jararaca.bus.embedded"
  local target = st.settings.path
  for _, db in ipairs(require("jararaca.persistence.session").databases(st.container)) do
    if db.path == target then target = db end
  end
  local b, err, code = embedded.open(target)
  if not b then return nil, err, code end
  for _, h in ipairs(st.handlers) do
    local ok, berr, bcode = b:bind(h.queue, h.topic)
    if not ok then
      b:close()
      return nil, format("message bus: cannot bind queue %q to %q: %s", h.queue, h.topic, tostring(berr)), bcode
    end
  end
  return b
end

--- The broker of the running app: broker | nil, message, code. Opened on
--- first use when start did not; tasks asking meanwhile wait for that one
--- opening.
function M.broker(container)
  local st = states[container]
  if st == nil then return nil, "the message bus is not started (no app is running in this context)", "closed" end
  if st.broker then return st.broker end
  if st.stopped then return nil, "the message bus is stopped", "closed" end
  if st.opening then
    local ok, b, err, code = st.opening:wait()
    if not ok then return nil, b, err end
    return b, err, code
  end
  st.opening = require("jararaca.sched").spawn(open, st)
  st.opening.observed = true
  local ok, b, err, code = st.opening:wait()
  st.opening = nil
  if not ok then return nil, b, err end
  if b then
    if st.stopped then b:close(); return nil, "the message bus is stopped", "closed" end
    st.broker = b
    log.debug("message bus: broker ", st.settings.url)
  end
  return b, err, code
end

--- Check the declarations and settings of rt.app; open the broker when the
--- app has handlers or asked for a bus. Raises error(msg, 0) on a bad one.
function M.start(rt, opts)
  local app = rt.app
  local handlers = controller.handlers(app)
  -- the scheduled actions a worker runs (dispatch = "bus")
  for _, h in ipairs(require("jararaca.schedule.dispatch").handlers(app)) do handlers[#handlers + 1] = h end
  local databases = require("jararaca.persistence.session").databases(rt.container)
  local s, err = settings.resolve(app, databases)
  if not s then error(err, 0) end
  local st = { app = app, container = rt.container, settings = s, handlers = handlers, broker = nil,
    declare = opts and opts.declare,
    -- the headers a handler's publishes inherit (jararaca.bus.propagation)
    propagate = require("jararaca.bus.propagation").allow_list((rawget(app, "bus") or {}).propagate_headers) }
  states[rt.container] = st
  rt.bus = st
  -- A broker on one of the app's databases is opened now: a transaction's
  -- messages go into its tables before the commit, when it cannot be opened.
  local shared = false
  for _, db in ipairs(databases) do if db.path == s.path then shared = true end end
  if #handlers > 0 or settings.explicit(app) or shared or st.declare then
    local b, oerr = M.broker(rt.container)
    if not b then error(oerr, 0) end
  end
  st.relay = require("jararaca.bus.outbox").start(st)
  return st
end

--- Close the broker (before the interceptors' shutdown: it may share the
--- app's database).
function M.stop(rt)
  local st = states[rt.container]
  if st == nil then return end
  if st.relay then st.relay:stop(); st.relay = nil end
  st.stopped = true
  if st.broker then st.broker:close(); st.broker = nil end
end

return M
