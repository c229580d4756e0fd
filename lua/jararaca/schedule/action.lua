--- jararaca.schedule.action: declaring scheduled actions and checking them.
--
--     local Jobs = j.MessageBusController { name = "Jobs" }
--     Jobs.tick = j.ScheduledAction("* * * * * */3", {
--       allow_overlap = false, exclusive = true, timeout = 10, name = "tick", group = "jobs",
--       zone = "UTC", misfire = "skip", dispatch = "inline",
--       exception_handler = function(self, err, run) ... end,
--     }, function(self, run) ... end)
--
-- Declaring checks shapes only (`error(msg, 2)`: no function, a cron that
-- is not a string); the cron expression and the options are checked once
-- per app at startup by `actions(app)`, whose errors name the app file, the
-- line and the action, like the bus handlers' (jararaca.bus.controller):
--     app.lua:12: scheduled action Jobs.tick (* * * * * */3): timeout: expected ...
-- An action may be a field of any controller class the app registers.
-- docs/scheduler.md is the user's page.
-- @module jararaca.schedule.action
local cron = require "jararaca.core.cron"
local controller = require "jararaca.bus.controller"

local M = {}

local type, pairs, ipairs, error, setmetatable, getmetatable, rawget, tostring, pcall =
  type, pairs, ipairs, error, setmetatable, getmetatable, rawget, tostring, pcall
local format, huge, concat = string.format, math.huge, table.concat

--- The environment variable naming the default time zone (the original's).
M.ZONE_ENV = "JARARACA_DEFAULT_TIMEZONE"

local order_counter = 0

local Action_mt = {}
Action_mt.__index = Action_mt
function Action_mt.__call(a, self, ...) return a.fn(self, ...) end -- `Ctl:tick(run)` in tests
function Action_mt.__tostring(a) return "ScheduledAction(" .. tostring(a.cron) .. ")" end

local function is_action(v)
  return type(v) == "table" and getmetatable(v) == Action_mt
end
M.is_action = is_action

--- `ScheduledAction(cron, [opts], fn)`: an action descriptor for a field of
--- a controller class.
function M.ScheduledAction(expr, opts, fn)
  if fn == nil and type(opts) == "function" then opts, fn = nil, opts end
  local what = "ScheduledAction(cron, [opts], fn)"
  if type(expr) ~= "string" then error(what .. ": cron must be a string, got " .. type(expr), 2) end
  if opts ~= nil and type(opts) ~= "table" then error(what .. ": opts must be a table, got " .. type(opts), 2) end
  if type(fn) ~= "function" then
    error(what .. ": expected an action function as the last argument, got " .. type(fn), 2)
  end
  order_counter = order_counter + 1
  local info = debug.getinfo(2, "Sl")
  return setmetatable({ cron = expr, opts = opts or {}, fn = fn, order = order_counter,
    defined_at = info and (info.short_src .. ":" .. (info.currentline or 0)) or nil }, Action_mt)
end

---------------------------------------------------------------------------
-- Options, checked at startup
---------------------------------------------------------------------------

local describe, label = controller.describe, controller.label

local function boolean(v, default, what)
  if v == nil then return default end
  if type(v) ~= "boolean" then error(format("%s: expected true or false, got %s", what, describe(v)), 0) end
  return v
end

local function choice(v, list, what)
  if v == nil then return list[1] end
  for _, c in ipairs(list) do if v == c then return v end end
  error(format("%s: expected one of %s, got %s", what, concat(list, ", "), describe(v)), 0)
end

local KNOWN = { "allow_overlap", "exclusive", "timeout", "exception_handler", "name", "group", "zone", "misfire",
  "dispatch" }
local IS_KNOWN = {}
for _, k in ipairs(KNOWN) do IS_KNOWN[k] = true end

-- The default zone: Microservice.scheduler.zone, else the environment's,
-- else UTC.
function M.default_zone(app, env)
  env = env or os.getenv
  local cfg = rawget(app, "scheduler")
  if cfg and cfg.zone then return cfg.zone, "Microservice.scheduler.zone" end
  local z = env(M.ZONE_ENV)
  if z ~= nil and z ~= "" then return z, M.ZONE_ENV end
  return "UTC", nil
end

-- The checked options of one action (raises a message without its place).
local function normalize(a, member, cls, zone_default)
  local o = a.opts
  for k in pairs(o) do
    if not IS_KNOWN[k] then error(format("unknown option %s (known: %s)", describe(k), concat(KNOWN, ", ")), 0) end
  end
  local c, cerr = cron.parse(a.cron)
  if not c then error("cron: " .. tostring(cerr), 0) end
  local timeout = o.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout <= 0 or timeout == huge) then
    error("timeout: expected a number of seconds > 0, got " .. describe(timeout), 0)
  end
  if o.exception_handler ~= nil and type(o.exception_handler) ~= "function" then
    error("exception_handler: expected a function(self, err, run), got " .. type(o.exception_handler), 0)
  end
  local zone_name = o.zone
  if zone_name == nil then zone_name = zone_default end
  if type(zone_name) ~= "string" or zone_name == "" then
    error("zone: expected a time zone name (\"UTC\", \"America/Sao_Paulo\"), got " .. describe(zone_name), 0)
  end
  local zone, zerr = cron.zone(zone_name)
  if not zone then error("zone: " .. tostring(zerr), 0) end
  local bus = rawget(cls, "__bus_controller")
  local exclusive = boolean(o.exclusive, true, "exclusive")
  local misfire = choice(o.misfire, { "skip", "run_once" }, "misfire")
  -- what was missed is known from the store's last claimed tick
  if misfire == "run_once" and not exclusive then
    error("misfire: \"run_once\" needs exclusive = true (the ticks missed are found from the last one claimed)", 0)
  end
  return {
    cron = c, expr = a.cron,
    allow_overlap = boolean(o.allow_overlap, false, "allow_overlap"),
    exclusive = exclusive,
    timeout = timeout,
    exception_handler = o.exception_handler,
    name = label(o.name == nil and member or o.name, "name"),
    group = label(o.group or (bus and bus.group) or "default", "group"),
    zone = zone, zone_name = zone_name,
    misfire = misfire,
    dispatch = choice(o.dispatch, { "inline", "bus" }, "dispatch"),
  }
end

--- "app.lua:12: scheduled action Jobs.tick (* * * * * */3)"
function M.where(a)
  local text = format("scheduled action %s.%s (%s)", tostring(rawget(a.controller, "__name")), tostring(a.member),
    tostring(a.expr))
  if a.defined_at then text = a.defined_at .. ": " .. text end
  return text
end

--- The scheduled actions of an app's controller classes, checked, in
--- declaration order: { controller, member, fn, cron, expr, name, group,
--- allow_overlap, exclusive, timeout, exception_handler, zone, zone_name,
--- misfire, dispatch, topic, defined_at }. Raises error(msg, 0) naming the
--- file, line and action of a bad option or cron expression, or two actions
--- with one name.
function M.actions(app)
  local prefix = controller.app_name(app)
  local zone_default, zone_origin = M.default_zone(app)
  return controller.collect(app, is_action, nil, function(a, d)
    a.expr = d.cron
    local ok, o = pcall(normalize, d, a.member, a.controller, zone_default)
    if not ok then
      if zone_origin and d.opts.zone == nil and tostring(o):find("^zone: ") then
        o = tostring(o) .. " (the default zone, from " .. zone_origin .. ")"
      end
      error(o, 0)
    end
    for k, v in pairs(o) do a[k] = v end
    a.topic = prefix .. ".schedule." .. a.name
  end, M.where)
end

return M
