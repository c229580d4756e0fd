-- jararaca.otlp.config: Microservice{ otlp = ... } merged with the OTEL_*
-- environment (env overrides the app table; a signal's own setting beats
-- the shared one), and every bad value named in its error.
local config = require "jararaca.otlp.config"

local function from(app, env, name)
  env = env or {}
  return config.from(app, function(k) return env[k] end, name or "tasks")
end

local function fails(pattern, app, env)
  local cfg, msg, code = from(app, env)
  assert.is_nil(cfg)
  assert.equal("invalid", code)
  assert.matches(pattern, msg)
end

-- fails with the env given plus an endpoint (so that export is on)
local function fails_env(pattern, env)
  env.OTEL_EXPORTER_OTLP_ENDPOINT = env.OTEL_EXPORTER_OTLP_ENDPOINT or "http://c"
  fails(pattern, nil, env)
end

local function header(list, name)
  for _, h in ipairs(list) do if h[1]:lower() == name:lower() then return h[2] end end
end

describe("jararaca.otlp.config", function()
  it("is off without an endpoint, when disabled, or when every exporter is none", function()
    assert.is_nil(from(nil, {}))
    assert.is_nil(from({ headers = { a = "b" } }, {}))
    assert.is_nil(from({ endpoint = "http://c:4318" }, { OTEL_SDK_DISABLED = "true" }))
    assert.is_nil(from({ endpoint = "http://c:4318" }, { OTEL_SDK_DISABLED = "TRUE" }))
    assert.is_nil(from({ endpoint = "http://c:4318", enabled = false }, {}))
    assert.is_nil(from(nil, { OTEL_EXPORTER_OTLP_ENDPOINT = "http://c:4318", OTEL_TRACES_EXPORTER = "none",
      OTEL_METRICS_EXPORTER = "none", OTEL_LOGS_EXPORTER = "none" }))
    assert.is_nil(from({ endpoint = "http://c:4318", traces = false, metrics = false, logs = { enabled = false } }))
    -- empty values count as unset (the OTel rule)
    assert.is_nil(from(nil, { OTEL_EXPORTER_OTLP_ENDPOINT = "" }))
    assert.is_table(from({ endpoint = "http://c:4318" }, { OTEL_SDK_DISABLED = "false" }))
  end)

  it("builds the signal URLs: shared endpoints get /v1/<signal>, a signal's own is used as is", function()
    local cfg = from({ endpoint = "http://app:4318" })
    assert.equal("http://app:4318/v1/traces", cfg.traces.url)
    assert.equal("http://app:4318/v1/metrics", cfg.metrics.url)
    assert.equal("http://app:4318/v1/logs", cfg.logs.url)
    cfg = from({ endpoint = "http://app:4318/", traces = { endpoint = "http://t:1/custom" } },
      { OTEL_EXPORTER_OTLP_ENDPOINT = "https://env:4318/base/", OTEL_EXPORTER_OTLP_LOGS_ENDPOINT = "http://l:2/x" })
    assert.equal("https://env:4318/base/v1/traces", cfg.traces.url) -- env wins over the app, at any level
    assert.equal("https://env:4318/base/v1/metrics", cfg.metrics.url)
    assert.equal("http://l:2/x", cfg.logs.url)
    cfg = from({ endpoint = "http://app:4318", traces = { endpoint = "http://t:1/custom" } })
    assert.equal("http://t:1/custom", cfg.traces.url)
    cfg = from(nil, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "http://t:1/v1/traces",
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = "http://m:1/v1/metrics" })
    assert.equal("http://t:1/v1/traces", cfg.traces.url)
    assert.equal("http://m:1/v1/metrics", cfg.metrics.url)
    assert.is_nil(cfg.logs) -- no endpoint for logs: that signal is off
  end)

  it("merges headers: app shared < app signal < env shared < env signal, values percent-decoded", function()
    local cfg = from({ endpoint = "http://c", headers = { ["X-App"] = "1", ["X-Over"] = "app" },
      traces = { headers = { ["X-Sig"] = "t" } } },
      { OTEL_EXPORTER_OTLP_HEADERS = "x-over=env, Authorization=Basic%20dTpw",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS = "X-Sig=env%2Ct" })
    local h = cfg.traces.headers
    assert.equal("1", header(h, "X-App"))
    assert.equal("env", header(h, "X-Over"))
    assert.equal("Basic dTpw", header(h, "authorization"))
    assert.equal("env,t", header(h, "X-Sig"))
    assert.is_nil(header(cfg.metrics.headers, "X-Sig"))
    local n = 0
    for _, x in ipairs(h) do if x[1]:lower() == "x-over" then n = n + 1 end end
    assert.equal(1, n) -- replaced by name, case-insensitively
    fails_env("OTEL_EXPORTER_OTLP_HEADERS: \"novalue\" is not key=value", { OTEL_EXPORTER_OTLP_HEADERS = "a=1,novalue" })
    fails_env("OTEL_EXPORTER_OTLP_LOGS_HEADERS", { OTEL_EXPORTER_OTLP_LOGS_HEADERS = "=x" })
  end)

  it("reads timeouts: env ms (signal, then shared), else the app's seconds, else 10 s", function()
    assert.equal(10000, from({ endpoint = "http://c" }).traces.timeout_ms)
    local cfg = from({ endpoint = "http://c", timeout = 2.5, logs = { timeout = 1 } })
    assert.equal(2500, cfg.traces.timeout_ms)
    assert.equal(1000, cfg.logs.timeout_ms)
    cfg = from({ endpoint = "http://c", timeout = 2.5 },
      { OTEL_EXPORTER_OTLP_TIMEOUT = "700", OTEL_EXPORTER_OTLP_METRICS_TIMEOUT = "300" })
    assert.equal(700, cfg.traces.timeout_ms)
    assert.equal(300, cfg.metrics.timeout_ms)
    fails_env("OTEL_EXPORTER_OTLP_TIMEOUT must be a whole number of milliseconds, got \"1s\"", { OTEL_EXPORTER_OTLP_TIMEOUT = "1s" })
    fails_env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", { OTEL_EXPORTER_OTLP_TRACES_TIMEOUT = "-5" })
  end)

  it("reads the batch settings: OTEL_BSP_* for traces, OTEL_BLRP_* for logs, OTEL_METRIC_EXPORT_* for metrics", function()
    local cfg = from({ endpoint = "http://c" })
    assert.same({ 5000, 30000, 2048, 512 }, { cfg.traces.schedule_delay_ms, cfg.traces.export_timeout_ms,
      cfg.traces.max_queue, cfg.traces.max_batch })
    assert.equal(1000, cfg.logs.schedule_delay_ms)
    assert.equal(60000, cfg.metrics.interval_ms)
    cfg = from({ endpoint = "http://c", traces = { schedule_delay = 2, max_queue_size = 100, max_export_batch_size = 10,
      export_timeout = 3 }, logs = { max_queue_size = 50 }, metrics = { interval = 15, export_timeout = 5 } },
      { OTEL_BSP_SCHEDULE_DELAY = "250", OTEL_BSP_EXPORT_TIMEOUT = "4000", OTEL_BSP_MAX_QUEUE_SIZE = "64",
        OTEL_BLRP_SCHEDULE_DELAY = "100", OTEL_BLRP_EXPORT_TIMEOUT = "900", OTEL_BLRP_MAX_EXPORT_BATCH_SIZE = "8",
        OTEL_METRIC_EXPORT_INTERVAL = "5000" })
    assert.same({ 250, 4000, 64, 10 }, { cfg.traces.schedule_delay_ms, cfg.traces.export_timeout_ms,
      cfg.traces.max_queue, cfg.traces.max_batch })
    assert.same({ 100, 900, 50, 8 }, { cfg.logs.schedule_delay_ms, cfg.logs.export_timeout_ms,
      cfg.logs.max_queue, cfg.logs.max_batch })
    assert.equal(5000, cfg.metrics.interval_ms)
    assert.equal(5000, cfg.metrics.export_timeout_ms)
    local env = { OTEL_EXPORTER_OTLP_ENDPOINT = "http://c" }
    for _, var in ipairs({ "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BLRP_SCHEDULE_DELAY",
      "OTEL_BLRP_EXPORT_TIMEOUT", "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT" }) do
      env[var] = "soon"
      fails(var .. " must be a whole number of milliseconds", nil, env)
      env[var] = nil
    end
    for _, var in ipairs({ "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BLRP_MAX_QUEUE_SIZE",
      "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE" }) do
      env[var] = "0"
      fails(var .. " must be a positive integer, got \"0\"", nil, env)
      env[var] = nil
    end
    env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE = "4096"
    fails("otlp traces: the batch size %(4096%) must not exceed the queue size %(2048%) %(OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
      nil, env)
  end)

  it("accepts only http/protobuf, no compression, no client certificate, and the exporters otlp and none", function()
    local env = { OTEL_EXPORTER_OTLP_ENDPOINT = "http://c", OTEL_EXPORTER_OTLP_PROTOCOL = "http/protobuf",
      OTEL_EXPORTER_OTLP_COMPRESSION = "none", OTEL_TRACES_EXPORTER = "otlp" }
    assert.is_table(from(nil, env))
    local bad = {
      { "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL: only \"http/protobuf\" is supported, got \"grpc\"" },
      { "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: only" },
      { "OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", "OTEL_EXPORTER_OTLP_COMPRESSION: only \"none\" is supported %(no gzip yet%)" },
      { "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: only" },
      { "OTEL_METRICS_EXPORTER", "prometheus", "OTEL_METRICS_EXPORTER must be \"otlp\" or \"none\"" },
      { "OTEL_SDK_DISABLED", "yes", "OTEL_SDK_DISABLED must be true or false" },
      { "OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem", "OTEL_EXPORTER_OTLP_CLIENT_KEY: client certificates %(mTLS%) are not supported" },
      { "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "/c.pem", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: client" },
    }
    for _, b in ipairs(bad) do
      local saved = env[b[1]]
      env[b[1]] = b[2]
      fails(b[3], nil, env)
      env[b[1]] = saved
    end
    fails("Microservice.otlp.protocol: only", { protocol = "grpc" }, { OTEL_EXPORTER_OTLP_ENDPOINT = "http://c" })
  end)

  it("checks the endpoint URLs, naming where each came from", function()
    fails("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL, got \"collector:4318/v1/traces\"", nil,
      { OTEL_EXPORTER_OTLP_ENDPOINT = "collector:4318" })
    fails("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be", nil, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "grpc://c" })
    fails("Microservice.otlp.endpoint must be", { endpoint = "c:4318" })
    fails("Microservice.otlp.logs.endpoint must be", { logs = { endpoint = "/v1/logs" } })
  end)

  it("takes the CA file from OTEL_EXPORTER_OTLP_CERTIFICATE (or per signal, or the app) and checks it is readable", function()
    local ca = os.tmpname()
    local env = { OTEL_EXPORTER_OTLP_ENDPOINT = "https://c", OTEL_EXPORTER_OTLP_CERTIFICATE = ca }
    assert.equal(ca, from(nil, env).ca_file)
    assert.is_nil(from(nil, { OTEL_EXPORTER_OTLP_ENDPOINT = "https://c" }).ca_file)
    assert.equal(ca, from({ endpoint = "https://c", certificate = ca }).ca_file)
    env.OTEL_EXPORTER_OTLP_CERTIFICATE = "/nonexistent/ca.pem"
    fails("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read the CA file: /nonexistent/ca.pem", nil, env)
    env.OTEL_EXPORTER_OTLP_CERTIFICATE = nil
    env.OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE = "/nonexistent/logs.pem"
    fails("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE: cannot read", nil, env)
    env.OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE = ca
    fails("name different CA files", nil, env) -- one exporter, one CA file
    env.OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE, env.OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE = ca, ca
    assert.equal(ca, from(nil, env).ca_file)
    os.remove(ca)
  end)

  it("makes the resource attributes: app name < app table < OTEL_RESOURCE_ATTRIBUTES < OTEL_SERVICE_NAME", function()
    local a = from({ endpoint = "http://c" }, {}, "tasks").resource_attributes
    assert.equal("tasks", a["service.name"])
    assert.equal("jararaca", a["telemetry.sdk.name"])
    assert.equal("lua", a["telemetry.sdk.language"])
    assert.is_string(a["telemetry.sdk.version"])
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", a["service.instance.id"])
    a = from({ endpoint = "http://c", service_name = "app-svc", resource = { ["deployment.environment"] = "dev" } })
      .resource_attributes
    assert.equal("app-svc", a["service.name"])
    assert.equal("dev", a["deployment.environment"])
    a = from({ endpoint = "http://c", service_name = "app-svc" },
      { OTEL_RESOURCE_ATTRIBUTES = "service.name=from-attrs,deployment.environment=prod,team=a%20b,telemetry.sdk.name=x" })
      .resource_attributes
    assert.equal("from-attrs", a["service.name"])
    assert.equal("prod", a["deployment.environment"])
    assert.equal("a b", a.team)
    assert.equal("jararaca", a["telemetry.sdk.name"]) -- a fact, not a setting
    a = from(nil, { OTEL_EXPORTER_OTLP_ENDPOINT = "http://c", OTEL_RESOURCE_ATTRIBUTES = "service.name=x",
      OTEL_SERVICE_NAME = "wins" }).resource_attributes
    assert.equal("wins", a["service.name"])
    fails_env("OTEL_RESOURCE_ATTRIBUTES: \"oops\" is not key=value", { OTEL_RESOURCE_ATTRIBUTES = "a=1,oops" })
  end)

  it("checks the app table, naming the field", function()
    assert.is_true(config.check(nil))
    assert.is_true(config.check({ endpoint = "http://c", traces = true, metrics = { interval = 10 } }))
    local cases = {
      { "Microservice.otlp must be a table", "x" },
      { "Microservice.otlp: unknown field \"endpoints\"", { endpoints = "http://c" } },
      { "Microservice.otlp.endpoint must be a string, got number", { endpoint = 4318 } },
      { "Microservice.otlp.timeout must be a non%-negative number", { timeout = -1 } },
      { "Microservice.otlp.headers must map strings to strings", { headers = { a = 1 } } },
      { "Microservice.otlp.resource must map strings to strings", { resource = { "x" } } },
      { "Microservice.otlp.traces must be a boolean or a table", { traces = "yes" } },
      { "Microservice.otlp.traces: unknown field \"interval\"", { traces = { interval = 5 } } },
      { "Microservice.otlp.metrics: unknown field \"max_queue_size\"", { metrics = { max_queue_size = 5 } } },
      { "Microservice.otlp.logs.max_queue_size must be a non%-negative integer", { logs = { max_queue_size = 1.5 } } },
      { "Microservice.otlp.logs.schedule_delay must be a non%-negative number", { logs = { schedule_delay = "1" } } },
      { "Microservice.otlp.traces.headers must map strings", { traces = { headers = { x = true } } } },
    }
    for _, c in ipairs(cases) do
      local ok, why = config.check(c[2])
      assert.is_nil(ok)
      assert.matches(c[1], why)
      fails(c[1], c[2])
    end
  end)
end)
