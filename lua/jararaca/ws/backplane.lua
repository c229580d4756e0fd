--- jararaca.ws.backplane: how this process's room manager reaches the other
-- instances (core/wsbackplane.h).
--
--   Microservice{ websocket = { backplane = "redis://host:6379/0", channel = "jararaca:ws:tasks" } }
--
-- backplane: "local" (the default: the in-machine mesh between the workers
-- of `--workers N`, nothing with one process), "none", or a redis:// URL
-- (every instance subscribes to channel). The environment variable
-- JARARACA_WS_BACKPLANE and JARARACA_WS_CHANNEL, when set, win. channel
-- defaults to "jararaca:ws:<app name>".
-- @module jararaca.ws.backplane
local core = require "jararaca.core.ws"

local M = {}

local type, pairs, tostring, format, getenv = type, pairs, tostring, string.format, os.getenv

M.DEFAULT = "local"

local KEYS = { backplane = true, channel = true }

--- Check Microservice.websocket (raises naming the field; Microservice{}
--- calls it at declaration).
function M.check(cfg, level)
  level = (level or 1) + 1
  if cfg == nil then return end
  if type(cfg) ~= "table" then
    error("Microservice.websocket must be a table { backplane =, channel = }, got a " .. type(cfg), level)
  end
  for k, v in pairs(cfg) do
    if not KEYS[k] then error(format("Microservice.websocket: unknown field %q", tostring(k)), level) end
    if type(v) ~= "string" or v == "" then
      error(format("Microservice.websocket.%s must be a non-empty string, got %s", k, type(v)), level)
    end
  end
end

--- The backplane spec and channel of app.
function M.setting(app)
  local cfg = app.websocket or {}
  local env = getenv("JARARACA_WS_BACKPLANE")
  local spec = (env ~= nil and env ~= "") and env or cfg.backplane or M.DEFAULT
  local channel = getenv("JARARACA_WS_CHANNEL")
  if channel == nil or channel == "" then channel = cfg.channel or ("jararaca:ws:" .. (app.name or "app")) end
  return spec, channel
end

--- Attach the manager to app's backplane, once per process (after fork):
--- its kind ("none", "local", "redis") | nil, msg, "invalid".
function M.start(app)
  local spec, channel = M.setting(app)
  local kind, err, code = core.start_backplane(spec, channel)
  if not kind then
    -- never print a URL's password
    local shown = spec:gsub("^(%a[%w+.-]*://)[^@/]*@", "%1***@")
    return nil, format("WebSocket backplane %q: %s", shown, tostring(err)), code
  end
  return kind, channel
end

return M
