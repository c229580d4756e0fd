-- jararaca.metrics.settings: Microservice{ metrics = ... } and
-- JARARACA_METRICS_PATH.
--
--   metrics = nil | false        no /metrics, no built-in metrics (the default)
--   metrics = true               GET /metrics
--   metrics = { path = "/metrics", enabled = true }
--
-- JARARACA_METRICS_PATH, when set, wins over metrics.path (it does not
-- turn metrics on).
local M = {}

local format, type, pairs, tostring = string.format, type, pairs, tostring

--- Check Microservice.metrics; raises a message naming the field (level
--- as error's).
function M.check(v, level)
  level = (level or 1) + 1
  if v == nil or type(v) == "boolean" then return end
  if type(v) ~= "table" then
    error("Microservice.metrics must be a boolean or a table { path, enabled }, got " .. type(v), level)
  end
  for k, x in pairs(v) do
    if k == "path" then
      if type(x) ~= "string" or x:sub(1, 1) ~= "/" then
        error("Microservice.metrics.path must be a string starting with '/'", level)
      end
    elseif k == "enabled" then
      if type(x) ~= "boolean" then error("Microservice.metrics.enabled must be a boolean", level) end
    else
      error(format("Microservice.metrics: unknown field %q", tostring(k)), level)
    end
  end
end

--- The settings of an app: { path } or nil when metrics are off;
--- nil, message, "invalid" for a bad JARARACA_METRICS_PATH.
function M.config(app, getenv)
  local v = app and app.metrics
  if not v then return nil end
  if type(v) == "table" and v.enabled == false then return nil end
  local path = type(v) == "table" and v.path or "/metrics"
  local env = (getenv or os.getenv)("JARARACA_METRICS_PATH")
  if env and env ~= "" then
    if env:sub(1, 1) ~= "/" then
      return nil, format("JARARACA_METRICS_PATH must start with '/', got %q", env), "invalid"
    end
    path = env
  end
  return { path = path }
end

return M
