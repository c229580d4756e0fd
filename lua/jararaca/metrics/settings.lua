-- jararaca.metrics.settings: Microservice{ metrics = ... } and the
-- JARARACA_METRICS_* variables.
--
--   metrics = nil | false        no /metrics, no built-in metrics (the default)
--   metrics = true               GET /metrics on the app's port
--   metrics = { path = "/metrics", enabled = true,
--               port = 9464, host = "127.0.0.1" }   -- the admin port
--
-- port: /metrics is served on a listener of its own (and no longer on the
-- app's port); `jararaca worker` and `jararaca scheduler` serve it only
-- there (they have no HTTP server). JARARACA_METRICS_PATH,
-- JARARACA_METRICS_PORT and JARARACA_METRICS_HOST, when set, win over the
-- app's fields (they do not turn metrics on).
local M = {}

local format, type, pairs, tostring, tonumber = string.format, type, pairs, tostring, tonumber

--- The admin port's default host: loopback (the series are not public).
M.DEFAULT_HOST = "127.0.0.1"

local function valid_port(x) return type(x) == "number" and x % 1 == 0 and x >= 0 and x <= 65535 end

--- Check Microservice.metrics; raises a message naming the field (level
--- as error's).
function M.check(v, level)
  level = (level or 1) + 1
  if v == nil or type(v) == "boolean" then return end
  if type(v) ~= "table" then
    error("Microservice.metrics must be a boolean or a table { path, enabled, port, host }, got " .. type(v), level)
  end
  for k, x in pairs(v) do
    if k == "path" then
      if type(x) ~= "string" or x:sub(1, 1) ~= "/" then
        error("Microservice.metrics.path must be a string starting with '/'", level)
      end
    elseif k == "enabled" then
      if type(x) ~= "boolean" then error("Microservice.metrics.enabled must be a boolean", level) end
    elseif k == "port" then
      if not valid_port(x) then
        error(format("Microservice.metrics.port must be an integer in 0..65535, got %s", tostring(x)), level)
      end
    elseif k == "host" then
      if type(x) ~= "string" or x == "" then error("Microservice.metrics.host must be a non-empty string", level) end
    else
      error(format("Microservice.metrics: unknown field %q", tostring(k)), level)
    end
  end
end

--- The settings of an app: { path, port, host } (port nil: on the app's
--- own port) or nil when metrics are off; nil, message, "invalid" for a
--- bad JARARACA_METRICS_* variable.
function M.config(app, getenv)
  local v = app and app.metrics
  if not v then return nil end
  if type(v) == "table" and v.enabled == false then return nil end
  getenv = getenv or os.getenv
  local t = type(v) == "table" and v or {}
  local cfg = { path = t.path or "/metrics", port = t.port, host = t.host or M.DEFAULT_HOST }
  local env = getenv("JARARACA_METRICS_PATH")
  if env and env ~= "" then
    if env:sub(1, 1) ~= "/" then
      return nil, format("JARARACA_METRICS_PATH must start with '/', got %q", env), "invalid"
    end
    cfg.path = env
  end
  env = getenv("JARARACA_METRICS_PORT")
  if env and env ~= "" then
    local n = env:match("^%d+$") and tonumber(env)
    if not n or not valid_port(n) then
      return nil, format("JARARACA_METRICS_PORT must be an integer in 0..65535, got %q", env), "invalid"
    end
    cfg.port = n
  end
  env = getenv("JARARACA_METRICS_HOST")
  if env and env ~= "" then cfg.host = env end
  return cfg
end

return M
