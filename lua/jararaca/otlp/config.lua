-- jararaca.otlp.config: the OTLP exporter's settings, from
-- Microservice{ otlp = {...} } and the standard OTEL_* environment.
--
--   local cfg, msg, code = config.from(app.otlp, os.getenv, app.name)
--     cfg         the exporter's settings (below): export is on
--     nil         export is off (no endpoint anywhere, OTEL_SDK_DISABLED=true,
--                 every signal's exporter "none", or otlp.enabled = false)
--     nil, msg, "invalid"   a bad value; msg names the field or variable
--   local ok, why = config.check(app.otlp)     -- the app table alone
--
-- Precedence: the app table gives defaults, the environment overrides
-- them (operators configure the SDK at deploy time, as OTel means env to
-- be used); within each, a signal's own setting beats the shared one. So
-- an endpoint is, first found: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is),
-- OTEL_EXPORTER_OTLP_ENDPOINT (+ "/v1/traces"), otlp.traces.endpoint (as
-- is), otlp.endpoint (+ "/v1/traces"). Times in the app table are seconds,
-- in the environment milliseconds (the OTel spec's unit). docs/otlp-config.md
-- has the table of every field and variable.
--
-- cfg = {
--   traces  = signal | nil, metrics = signal | nil, logs = signal | nil,
--   ca_file = "/path/ca.pem" | nil,          -- nil: the system's CAs
--   resource_attributes = { ["service.name"] = "tasks", ... },  -- strings
-- }
-- signal = { url =, headers = { {name, value}, ... }, timeout_ms =,
--   max_queue =, max_batch =, schedule_delay_ms =, export_timeout_ms =,
--   interval_ms = (metrics only: OTEL_METRIC_EXPORT_INTERVAL) }
local M = {}

local format, type, pairs, ipairs, tostring, tonumber = string.format, type, pairs, ipairs, tostring, tonumber
local floor, sort = math.floor, table.sort

local SIGNALS = { "traces", "metrics", "logs" }
local UPPER = { traces = "TRACES", metrics = "METRICS", logs = "LOGS" }

-- Batch defaults per signal (OTel: BSP for spans, BLRP for logs; metrics
-- are pushed a collection at a time, so a short delay joins one collection
-- into one request).
local DEFAULTS = {
  traces = { schedule_delay_ms = 5000, export_timeout_ms = 30000, max_queue = 2048, max_batch = 512 },
  logs = { schedule_delay_ms = 1000, export_timeout_ms = 30000, max_queue = 2048, max_batch = 512 },
  metrics = { schedule_delay_ms = 1000, export_timeout_ms = 30000, max_queue = 2048, max_batch = 512,
    interval_ms = 60000 },
}
local TIMEOUT_MS = 10000

-- The env variables of each signal's batch settings.
local BATCH_ENV = {
  traces = { schedule_delay_ms = "OTEL_BSP_SCHEDULE_DELAY", export_timeout_ms = "OTEL_BSP_EXPORT_TIMEOUT",
    max_queue = "OTEL_BSP_MAX_QUEUE_SIZE", max_batch = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" },
  logs = { schedule_delay_ms = "OTEL_BLRP_SCHEDULE_DELAY", export_timeout_ms = "OTEL_BLRP_EXPORT_TIMEOUT",
    max_queue = "OTEL_BLRP_MAX_QUEUE_SIZE", max_batch = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE" },
  metrics = { interval_ms = "OTEL_METRIC_EXPORT_INTERVAL", export_timeout_ms = "OTEL_METRIC_EXPORT_TIMEOUT" },
}
-- The app table's names for the same (seconds for times, counts as they are).
local BATCH_APP = {
  schedule_delay_ms = "schedule_delay", export_timeout_ms = "export_timeout", max_queue = "max_queue_size",
  max_batch = "max_export_batch_size", interval_ms = "interval",
}
local SECONDS = { schedule_delay_ms = true, export_timeout_ms = true, interval_ms = true }

---------------------------------------------------------------------------
-- the app table

local SHARED_FIELDS = {
  enabled = "boolean", endpoint = "string", headers = "table", timeout = "number", protocol = "string",
  compression = "string", certificate = "string", service_name = "string", resource = "table",
  traces = "signal", metrics = "signal", logs = "signal",
}
local SIGNAL_FIELDS = {
  enabled = "boolean", endpoint = "string", headers = "table", timeout = "number",
  traces = { schedule_delay = true, export_timeout = true, max_queue_size = true, max_export_batch_size = true },
  logs = { schedule_delay = true, export_timeout = true, max_queue_size = true, max_export_batch_size = true },
  metrics = { interval = true, export_timeout = true },
}

local function check_strings(t, where)
  for k, v in pairs(t) do
    if type(k) ~= "string" or type(v) ~= "string" then
      return nil, format("%s must map strings to strings (got %s = %s)", where, type(k), type(v))
    end
  end
  return true
end

local function check_number(v, where, integer)
  if type(v) ~= "number" or v < 0 or v ~= v or v == math.huge or (integer and v ~= floor(v)) then
    return nil, format("%s must be a non-negative %s, got %s", where, integer and "integer" or "number", tostring(v))
  end
  return true
end

local function check_signal(name, v)
  local where = "Microservice.otlp." .. name
  if type(v) == "boolean" then return true end
  if type(v) ~= "table" then return nil, where .. " must be a boolean or a table, got " .. type(v) end
  local extra = SIGNAL_FIELDS[name]
  for k, x in pairs(v) do
    local want = SIGNAL_FIELDS[k]
    if type(k) == "string" and extra[k] then
      local ok, why = check_number(x, where .. "." .. k, k:sub(1, 4) == "max_")
      if not ok then return nil, why end
    elseif type(k) ~= "string" or not want or type(want) == "table" then
      return nil, format("%s: unknown field %q", where, tostring(k))
    elseif type(x) ~= want then
      return nil, format("%s.%s must be a %s, got %s", where, k, want, type(x))
    elseif k == "headers" then
      local ok, why = check_strings(x, where .. ".headers")
      if not ok then return nil, why end
    elseif k == "timeout" then
      local ok, why = check_number(x, where .. ".timeout")
      if not ok then return nil, why end
    end
  end
  return true
end

--- Check Microservice.otlp on its own: true | nil, message naming the field.
function M.check(v)
  if v == nil or v == false then return true end
  if v == true then return nil, "Microservice.otlp must be a table (at least { endpoint = ... }) or nil" end
  if type(v) ~= "table" then return nil, "Microservice.otlp must be a table, got " .. type(v) end
  for k, x in pairs(v) do
    local want = type(k) == "string" and SHARED_FIELDS[k]
    if not want then return nil, format("Microservice.otlp: unknown field %q", tostring(k)) end
    if want == "signal" then
      local ok, why = check_signal(k, x)
      if not ok then return nil, why end
    elseif type(x) ~= want then
      return nil, format("Microservice.otlp.%s must be a %s, got %s", k, want, type(x))
    elseif k == "headers" or k == "resource" then
      local ok, why = check_strings(x, "Microservice.otlp." .. k)
      if not ok then return nil, why end
    elseif k == "timeout" then
      local ok, why = check_number(x, "Microservice.otlp.timeout")
      if not ok then return nil, why end
    end
  end
  return true
end

---------------------------------------------------------------------------
-- the environment

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "k=v,k2=v2" (W3C baggage-like: the OTel format of the headers and the
-- resource attributes), values percent-decoded. A list of {k, v}, or nil, why.
local function parse_pairs(s, var)
  local out = {}
  for item in s:gmatch("[^,]+") do
    local k, v = item:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
    if not k or k == "" then
      return nil, format("%s: %q is not key=value", var, item)
    end
    out[#out + 1] = { percent_decode(k), percent_decode(v) }
  end
  return out
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- An env reader that treats empty values as unset (the OTel rule).
local function env_reader(getenv)
  return function(name)
    local v = getenv(name)
    if v == nil then return nil end
    v = trim(v)
    if v == "" then return nil end
    return v
  end
end

local function env_ms(env, var)
  local v = env(var)
  if v == nil then return nil end
  if not v:match("^%d+$") then
    return nil, format("%s must be a whole number of milliseconds, got %q", var, v)
  end
  return tonumber(v)
end

local function env_count(env, var)
  local v = env(var)
  if v == nil then return nil end
  if not v:match("^%d+$") or tonumber(v) == 0 then
    return nil, format("%s must be a positive integer, got %q", var, v)
  end
  return tonumber(v)
end

-- OTEL_EXPORTER_OTLP_<SIGNAL>_<what> or else OTEL_EXPORTER_OTLP_<what>: value, variable.
local function env_otlp(env, signal, what)
  local var = "OTEL_EXPORTER_OTLP_" .. UPPER[signal] .. "_" .. what
  local v = env(var)
  if v then return v, var end
  var = "OTEL_EXPORTER_OTLP_" .. what
  return env(var), var
end

local function check_url(url, where)
  if not url:match("^[hH][tT][tT][pP][sS]?://[^/?#]") then
    return nil, format("%s must be an http:// or https:// URL, got %q", where, url)
  end
  return true
end

-- base + "/v1/traces" (one slash between them whatever base ends with).
local function join(base, signal)
  return (base:gsub("/+$", "")) .. "/v1/" .. signal
end

local function resolve_endpoint(env, app, sapp, signal)
  local var = "OTEL_EXPORTER_OTLP_" .. UPPER[signal] .. "_ENDPOINT"
  local url, where = env(var), var
  if not url and env("OTEL_EXPORTER_OTLP_ENDPOINT") then
    url, where = join(env("OTEL_EXPORTER_OTLP_ENDPOINT"), signal), "OTEL_EXPORTER_OTLP_ENDPOINT"
  end
  if not url and sapp.endpoint then url, where = sapp.endpoint, "Microservice.otlp." .. signal .. ".endpoint" end
  if not url and app.endpoint then url, where = join(app.endpoint, signal), "Microservice.otlp.endpoint" end
  if not url then return nil end
  local ok, why = check_url(url, where)
  if not ok then return nil, why end
  return url
end

-- Headers: app shared < app signal < env shared < env signal; a later one
-- replaces an earlier one of the same name (names are case-insensitive).
local function resolve_headers(env, app, sapp, signal)
  local list, index = {}, {}
  local function put(k, v)
    local lk = k:lower()
    if index[lk] then list[index[lk]][2] = v
    else
      list[#list + 1] = { k, v }
      index[lk] = #list
    end
  end
  for _, t in ipairs({ app.headers or {}, sapp.headers or {} }) do
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    sort(keys)
    for _, k in ipairs(keys) do put(k, t[k]) end
  end
  for _, var in ipairs({ "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_" .. UPPER[signal] .. "_HEADERS" }) do
    local v = env(var)
    if v then
      local pairs_, why = parse_pairs(v, var)
      if not pairs_ then return nil, why end
      for _, p in ipairs(pairs_) do put(p[1], p[2]) end
    end
  end
  for _, h in ipairs(list) do
    if h[1]:find("[%c%s:]") or h[2]:find("[\r\n]") then
      return nil, format("otlp header %q: a name must be a token and a value one line", h[1])
    end
  end
  return list
end

local function resolve_signal(env, app, signal)
  local sapp = type(app[signal]) == "table" and app[signal] or {}
  if app[signal] == false or sapp.enabled == false then return nil end
  local exporter_var = "OTEL_" .. UPPER[signal] .. "_EXPORTER"
  local exporter = env(exporter_var)
  if exporter then
    exporter = exporter:lower()
    if exporter == "none" then return nil end
    if exporter ~= "otlp" then
      return nil, format("%s must be \"otlp\" or \"none\" (the exporters jararaca has), got %q", exporter_var, exporter)
    end
  end
  local url, why = resolve_endpoint(env, app, sapp, signal)
  if not url then return nil, why end

  local protocol, pvar = env_otlp(env, signal, "PROTOCOL")
  if not protocol then protocol, pvar = app.protocol, "Microservice.otlp.protocol" end
  if protocol and protocol ~= "http/protobuf" then
    return nil, format("%s: only \"http/protobuf\" is supported, got %q", pvar, protocol)
  end
  local compression, cvar = env_otlp(env, signal, "COMPRESSION")
  if not compression then compression, cvar = app.compression, "Microservice.otlp.compression" end
  if compression and compression ~= "none" then
    return nil, format("%s: only \"none\" is supported (no gzip yet), got %q", cvar, compression)
  end

  local s = { url = url }
  local headers, herr = resolve_headers(env, app, sapp, signal)
  if not headers then return nil, herr end
  s.headers = headers

  local tvar = "OTEL_EXPORTER_OTLP_" .. UPPER[signal] .. "_TIMEOUT"
  local t, terr = env_ms(env, tvar)
  if terr then return nil, terr end
  if not t then
    t, terr = env_ms(env, "OTEL_EXPORTER_OTLP_TIMEOUT")
    if terr then return nil, terr end
  end
  if not t then
    local secs = sapp.timeout or app.timeout
    t = secs and floor(secs * 1000 + 0.5) or TIMEOUT_MS
  end
  if t == 0 then t = TIMEOUT_MS end
  s.timeout_ms = t

  local vars = BATCH_ENV[signal]
  for key, default in pairs(DEFAULTS[signal]) do
    local v, err
    if vars[key] then
      if SECONDS[key] then v, err = env_ms(env, vars[key]) else v, err = env_count(env, vars[key]) end
      if err then return nil, err end
    end
    if v == nil then
      local a = sapp[BATCH_APP[key]]
      if a ~= nil then v = SECONDS[key] and floor(a * 1000 + 0.5) or a end
    end
    s[key] = v or default
  end
  if s.max_queue < 1 or s.max_batch < 1 then
    return nil, format("otlp %s: the queue and batch sizes must be at least 1", signal)
  end
  if s.max_batch > s.max_queue then
    return nil, format("otlp %s: the batch size (%d) must not exceed the queue size (%d)%s", signal, s.max_batch,
      s.max_queue, vars.max_batch and format(" (%s, %s)", vars.max_batch, vars.max_queue) or "")
  end

  -- mTLS is not implemented: a client certificate silently left out would
  -- look like a collector refusing us, so say it at startup.
  for _, what in ipairs({ "CLIENT_CERTIFICATE", "CLIENT_KEY" }) do
    local v, var = env_otlp(env, signal, what)
    if v then return nil, format("%s: client certificates (mTLS) are not supported", var) end
  end
  local ca, cavar = env_otlp(env, signal, "CERTIFICATE")
  if not ca then ca, cavar = app.certificate, "Microservice.otlp.certificate" end
  if ca then
    local f, ferr = io.open(ca, "r")
    if not f then return nil, format("%s: cannot read the CA file: %s", cavar, ferr) end
    f:close()
  end
  s.ca_file, s.ca_from = ca, cavar
  return s
end

-- service.name: the app's name, the app table's, OTEL_RESOURCE_ATTRIBUTES,
-- then OTEL_SERVICE_NAME (each over the one before).
local function resolve_resource(env, app, app_name)
  local sys = require "jararaca.core.sys"
  local attrs = {
    ["service.name"] = app_name or "unknown_service",
    ["service.instance.id"] = require("jararaca").uuid4(),
    ["telemetry.sdk.name"] = "jararaca",
    ["telemetry.sdk.language"] = "lua",
    ["telemetry.sdk.version"] = sys.version,
  }
  for k, v in pairs(app.resource or {}) do attrs[k] = v end
  if app.service_name then attrs["service.name"] = app.service_name end
  local ra = env("OTEL_RESOURCE_ATTRIBUTES")
  if ra then
    local list, why = parse_pairs(ra, "OTEL_RESOURCE_ATTRIBUTES")
    if not list then return nil, why end
    for _, p in ipairs(list) do attrs[p[1]] = p[2] end
  end
  local sn = env("OTEL_SERVICE_NAME")
  if sn then attrs["service.name"] = sn end
  -- the SDK's own attributes are facts, not settings
  attrs["telemetry.sdk.name"], attrs["telemetry.sdk.language"] = "jararaca", "lua"
  return attrs
end

--- The exporter's settings (see the top of the file).
function M.from(app, getenv, app_name)
  local ok, why = M.check(app)
  if not ok then return nil, why, "invalid" end
  app = type(app) == "table" and app or {}
  local env = env_reader(getenv or os.getenv)
  local disabled = env("OTEL_SDK_DISABLED")
  if disabled then
    disabled = disabled:lower()
    if disabled ~= "true" and disabled ~= "false" then
      return nil, format("OTEL_SDK_DISABLED must be true or false, got %q", disabled), "invalid"
    end
    if disabled == "true" then return nil end
  end
  if app.enabled == false then return nil end
  local cfg, any, ca, ca_from = {}, false, nil, nil
  local seen_ca = false
  for _, signal in ipairs(SIGNALS) do
    local s, err = resolve_signal(env, app, signal)
    if err then return nil, err, "invalid" end
    if s then
      if seen_ca and s.ca_file ~= ca then
        return nil, format("%s and %s name different CA files: one exporter has one (set OTEL_EXPORTER_OTLP_CERTIFICATE)",
          ca_from, s.ca_from), "invalid"
      end
      ca, ca_from, seen_ca = s.ca_file, s.ca_from, true
      s.ca_file, s.ca_from = nil, nil
      cfg[signal], any = s, true
    end
  end
  if not any then return nil end
  cfg.ca_file = ca
  local attrs, rerr = resolve_resource(env, app, app_name)
  if not attrs then return nil, rerr, "invalid" end
  cfg.resource_attributes = attrs
  return cfg
end

return M
