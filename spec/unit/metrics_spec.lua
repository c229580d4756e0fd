-- jararaca.metrics: the registry (validation, label sets, histogram math),
-- the text exposition format, the settings, and the built-in HTTP metrics
-- through the in-process test client. A real server, promtool and a real
-- Prometheus: spec/integration/metrics_spec.lua.
local j = require "jararaca"
local metrics = require "jararaca.metrics"
local registry = require "jararaca.metrics.registry"
local text = require "jararaca.metrics.text"
local settings = require "jararaca.metrics.settings"
local mhttp = require "jararaca.metrics.http"
local testing = require "jararaca.testing"
local sample = require("spec.support.metrics").value

local function raises(pattern, fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok)
  assert.matches(pattern, tostring(e))
end


describe("metrics registry", function()
  it("counts by label set, a table or positional values reaching the same series", function()
    local reg = registry.new()
    local c = reg:counter("jobs_total", "Jobs.", { "kind", "code" })
    c:inc { kind = "mail", code = 200 }
    c:add(2, { kind = "mail", code = "200" })
    c:with("mail", 200):inc()
    c:with("sms", 500):add(0.5)
    assert.equal(2, #c.list)
    assert.equal(4, c:with("mail", "200").value)
    assert.equal(text.render(reg), table.concat({
      "# HELP jobs_total Jobs.",
      "# TYPE jobs_total counter",
      'jobs_total{kind="mail",code="200"} 4',
      'jobs_total{kind="sms",code="500"} 0.5',
      "",
    }, "\n"))
  end)

  it("keeps the series of a label set it has seen (no new series per call)", function()
    local reg = registry.new()
    local c = reg:counter("x_total", "X.", { "a" })
    local s = c:with("v")
    for _ = 1, 100 do c:inc { a = "v" } end
    assert.equal(s, c:with("v"))
    assert.equal(100, s.value)
    assert.equal(1, #c.list)
  end)

  it("lets an updown_counter go down and exposes it as a gauge", function()
    local reg = registry.new()
    local g = reg:updown_counter("queue_length", "Waiting.")
    g:add(5); g:dec(); g:add(-2)
    assert.equal(2, g:with().value)
    assert.matches("# TYPE queue_length gauge\nqueue_length 2\n", text.render(reg), 1, true)
  end)

  it("computes cumulative histogram buckets, +Inf, _sum and _count", function()
    local reg = registry.new()
    local h = reg:histogram("job_seconds", "Job time.", { "kind" }, { 0.1, 1, 10 })
    for _, v in ipairs { 0.05, 0.1, 0.5, 1, 3, 20, 0 } do h:observe(v, { kind = "a" }) end
    local body = text.render(reg)
    assert.equal(table.concat({
      "# HELP job_seconds Job time.",
      "# TYPE job_seconds histogram",
      'job_seconds_bucket{kind="a",le="0.1"} 3', -- 0.05, 0.1 (le is inclusive), 0
      'job_seconds_bucket{kind="a",le="1"} 5',
      'job_seconds_bucket{kind="a",le="10"} 6',
      'job_seconds_bucket{kind="a",le="+Inf"} 7',
      'job_seconds_sum{kind="a"} 24.65',
      'job_seconds_count{kind="a"} 7',
      "",
    }, "\n"), body)
  end)

  it("writes a histogram without labels with only le in its buckets, and default buckets", function()
    local reg = registry.new()
    local h = reg:histogram("t_seconds", "T.")
    h:observe(0.003)
    local body = text.render(reg)
    assert.matches('t_seconds_bucket{le="0.005"} 1\n', body, 1, true)
    assert.matches('t_seconds_bucket{le="10"} 1\nt_seconds_bucket{le="+Inf"} 1\nt_seconds_sum 0.003\nt_seconds_count 1\n',
      body, 1, true)
    assert.equal(#registry.DEFAULT_BUCKETS + 1, select(2, body:gsub("_bucket", "")))
  end)

  it("escapes label values and help text", function()
    local reg = registry.new()
    local c = reg:counter("esc_total", 'Help with \\ and\nnewline and "quotes".', { "v" })
    c:inc { v = 'a\\b"c\nd' }
    local body = text.render(reg)
    assert.matches('# HELP esc_total Help with \\\\ and\\nnewline and "quotes".\n', body, 1, true)
    assert.matches('esc_total{v="a\\\\b\\"c\\nd"} 1\n', body, 1, true)
  end)

  it("writes numbers as the format spells them", function()
    local n = registry.number_text
    assert.equal("1", n(1)); assert.equal("-3", n(-3)); assert.equal("0.1", n(0.1))
    assert.equal("+Inf", n(math.huge)); assert.equal("-Inf", n(-math.huge)); assert.equal("NaN", n(0 / 0))
    assert.equal(0.1 + 0.2, tonumber(n(0.1 + 0.2)))
    assert.equal("1e+300", n(1e300))
  end)

  it("writes HELP and TYPE only for a labelled metric without series", function()
    local reg = registry.new()
    reg:counter("none_total", "Nothing yet.", { "a" })
    assert.equal("# HELP none_total Nothing yet.\n# TYPE none_total counter\n", text.render(reg))
  end)

  it("refuses bad names, labels and buckets at the caller's line", function()
    local reg = registry.new()
    local here = "metrics_spec.lua:%d+: .-"
    raises(here .. 'counter%(1x%): the metric name must match', function() reg:counter("1x", "h") end)
    raises(here .. 'counter%(5%): the metric name must match .*got number', function() reg:counter(5, "h") end)
    raises(here .. "counter%(a_total%): help must be a string, got nil", function() reg:counter("a_total") end)
    raises(here .. 'label name "a%-b" must match', function() reg:counter("b_total", "h", { "a-b" }) end)
    raises(here .. 'label name "__x" must match', function() reg:counter("b_total", "h", { "__x" }) end)
    raises(here .. 'label "a" is declared twice', function() reg:counter("b_total", "h", { "a", "a" }) end)
    raises(here .. 'the label name "le" is reserved', function() reg:histogram("h_seconds", "h", { "le" }) end)
    raises(here .. "buckets must be strictly increasing %(#2 = 1 after 1%)",
      function() reg:histogram("h_seconds", "h", nil, { 1, 1 }) end)
    raises(here .. "bucket #1 must be a finite number", function() reg:histogram("h_seconds", "h", nil, { math.huge }) end)
    raises(here .. "labels must be a list of label names", function() reg:counter("b_total", "h", "a") end)
    local dup = reg:counter("dup_total", "h", { "a" })
    assert.equal(dup, reg:counter("dup_total", "h", { "a" })) -- the same definition: the same metric
    raises(here .. 'a different metric named "dup_total" is already registered', function() reg:counter("dup_total", "h") end)
    raises(here .. 'a different metric named "dup_total"', function() reg:updown_counter("dup_total", "h", { "a" }) end)
    raises(here .. 'a different metric named "dup_total"', function() reg:counter("dup_total", "other", { "a" }) end)
    reg:histogram("dup_seconds", "h", nil, { 1, 2 })
    raises(here .. 'a different metric named "dup_seconds"', function() reg:histogram("dup_seconds", "h", nil, { 1, 3 }) end)
  end)

  it("refuses misuse of a metric at the caller's line", function()
    local reg = registry.new()
    local here = "metrics_spec.lua:%d+: "
    local c = reg:counter("m_total", "h", { "a", "b" })
    raises(here .. "m_total: a counter only goes up", function() c:add(-1, { a = 1, b = 2 }) end)
    raises(here .. "m_total: the amount must be a finite number, got x", function() c:add("x", { a = 1, b = 2 }) end)
    raises(here .. 'm_total: label "b" is missing', function() c:inc { a = 1 } end)
    raises(here .. 'm_total: unknown label "z"', function() c:inc { a = 1, b = 2, z = 3 } end)
    raises(here .. 'm_total: label "a" must be a string or a number, got boolean', function() c:inc { a = true, b = 2 } end)
    raises(here .. 'm_total: label "b" must be a string or a number, got nothing', function() c:with(1) end)
    raises(here .. "m_total: labels { a, b } are required", function() c:inc() end)
    raises(here .. "m_total: only an updown_counter goes down", function() c:dec { a = 1, b = 2 } end)
    raises(here .. "m_total: only a histogram is observed", function() c:observe(1, { a = 1, b = 2 }) end)
    local h = reg:histogram("h_seconds", "h")
    raises(here .. "h_seconds: observe needs a number", function() h:observe("1") end)
    raises(here .. "h_seconds: a histogram is observed, not added to", function() h:add(1) end)
    local fresh = reg:counter("f_total", "h", { "a" })
    raises(here .. 'f_total: unknown label "z"', function() fresh:inc { a = 1, z = 3 } end)
    assert.equal(0, #fresh.list) -- a refused call makes no series
    local u = reg:counter("u_total", "h")
    raises(here .. "u_total: has no labels", function() u:inc { a = 1 } end)
  end)
end)

describe("j.metrics (the default registry)", function()
  it("registers in the process's registry, errors at the caller's line", function()
    local c = j.metrics.counter("unit_spec_default_total", "From the unit spec.")
    c:inc()
    assert.equal(c, metrics.default:get("unit_spec_default_total"))
    assert.matches("unit_spec_default_total 1\n", metrics.render(), 1, true)
    raises("metrics_spec.lua:%d+: .*a different metric named \"unit_spec_default_total\" is already registered",
      function() j.metrics.counter("unit_spec_default_total", "again") end)
    assert.equal(c, j.metrics.counter("unit_spec_default_total", "From the unit spec."))
  end)
end)

describe("metrics settings", function()
  local function env(v) return function(name) return name == "JARARACA_METRICS_PATH" and v or nil end end
  local function vars(t) return function(name) return t[name] end end
  it("is off by default and on with true or a table", function()
    assert.is_nil(settings.config({}, env(nil)))
    assert.is_nil(settings.config({ metrics = false }, env(nil)))
    assert.is_nil(settings.config({ metrics = { enabled = false } }, env("/m")))
    assert.same({ path = "/metrics", host = "127.0.0.1" }, settings.config({ metrics = true }, env(nil)))
    assert.same({ path = "/x", host = "127.0.0.1" }, settings.config({ metrics = { path = "/x" } }, env("")))
    assert.same({ path = "/env", host = "127.0.0.1" }, settings.config({ metrics = { path = "/x" } }, env("/env")))
    local ok, err, code = settings.config({ metrics = true }, env("metrics"))
    assert.is_nil(ok); assert.equal("invalid", code)
    assert.matches("JARARACA_METRICS_PATH must start with '/'", err)
  end)
  it("takes the admin port and host from the app, the variables winning", function()
    assert.same({ path = "/metrics", port = 9464, host = "0.0.0.0" },
      settings.config({ metrics = { port = 9464, host = "0.0.0.0" } }, vars {}))
    assert.same({ path = "/m", port = 9000, host = "::1" }, settings.config({ metrics = { port = 9464, path = "/m" } },
      vars { JARARACA_METRICS_PORT = "9000", JARARACA_METRICS_HOST = "::1" }))
    -- the variables do not turn metrics on
    assert.is_nil(settings.config({}, vars { JARARACA_METRICS_PORT = "9000" }))
    for _, bad in ipairs { "http", "-1", "65536", "9.5" } do
      local ok, err, code = settings.config({ metrics = true }, vars { JARARACA_METRICS_PORT = bad })
      assert.is_nil(ok); assert.equal("invalid", code)
      assert.matches("JARARACA_METRICS_PORT must be an integer in 0..65535, got \"" .. bad:gsub("%p", "%%%0"), err)
    end
  end)
  it("refuses a bad Microservice.metrics naming the field", function()
    raises('Microservice.metrics: unknown field "ports"', function() j.Microservice { metrics = { ports = 1 } } end)
    raises("Microservice.metrics.path must be a string starting with '/'",
      function() j.Microservice { metrics = { path = "m" } } end)
    raises("Microservice.metrics.port must be an integer in 0..65535, got 70000",
      function() j.Microservice { metrics = { port = 70000 } } end)
    raises("Microservice.metrics.port must be an integer in 0..65535, got 9464",
      function() j.Microservice { metrics = { port = "9464" } } end)
    raises("Microservice.metrics.host must be a non%-empty string",
      function() j.Microservice { metrics = { port = 1, host = "" } } end)
    raises("Microservice.metrics must be a boolean or a table", function() j.Microservice { metrics = "yes" } end)
  end)
end)

describe("built-in HTTP metrics through the test client", function()
  local C = j.RestController("/mu", { name = "MetricsUnit" })
  C.get = j.Get("/items/{id}", function(_, req) return { id = req.params.id } end)
  C.boom = j.Get("/boom", function() error("boom") end)
  C.teapot = j.Get("/teapot", function() j.raise_http(418, "tea") end)

  local function req_count(body, method, route, status)
    return sample(body, ('jararaca_http_requests_total{method="%s",route="%s",status="%s"}'):format(method, route, status)) or 0
  end

  it("counts by route template and status, times requests, and serves the text", function()
    local client = testing.client(j.Microservice { name = "mu", controllers = { C }, metrics = true })
    local before = client:get("/metrics").body
    for i = 1, 3 do assert.equal(200, client:get("/mu/items/" .. i).status) end
    assert.equal(500, client:get("/mu/boom").status)
    assert.equal(404, client:get("/nowhere").status)
    assert.equal(405, client:request("POST", "/mu/boom").status)
    local res = client:get("/metrics")
    assert.equal(200, res.status)
    assert.equal(text.CONTENT_TYPE, res.headers["content-type"])
    local body = res.body
    assert.equal(3, req_count(body, "GET", "/mu/items/{id}", 200) - req_count(before, "GET", "/mu/items/{id}", 200))
    assert.equal(1, req_count(body, "GET", "/mu/boom", 500) - req_count(before, "GET", "/mu/boom", 500))
    assert.equal(1, req_count(body, "GET", "unmatched", 404) - req_count(before, "GET", "unmatched", 404))
    assert.equal(1, req_count(body, "POST", "unmatched", 405) - req_count(before, "POST", "unmatched", 405))
    assert.is_nil(body:find("/mu/items/1", 1, true)) -- never the raw path
    local cnt = 'jararaca_http_request_duration_seconds_count{method="GET",route="/mu/items/{id}"}'
    assert.equal(3, sample(body, cnt) - (sample(before, cnt) or 0))
    -- the /metrics request itself is in flight while it renders
    assert.equal(1, sample(body, "jararaca_http_requests_in_flight"))
    client:close()
  end)

  it("serves nothing at /metrics when metrics are off, and honours the path", function()
    local off = testing.client(j.Microservice { name = "mu-off", controllers = { C } })
    assert.equal(404, off:get("/metrics").status)
    off:close()
    local moved = testing.client(j.Microservice { name = "mu-path", controllers = { C }, metrics = { path = "/_m" } })
    assert.equal(404, moved:get("/metrics").status)
    assert.matches("# TYPE jararaca_http_requests_total counter", moved:get("/_m").body, 1, true)
    moved:close()
  end)

  it("loads an app file that registers metrics twice in one process (one series)", function()
    local app = "spec/integration/apps/metrics.lua"
    local c1 = testing.client(app)
    assert.equal(201, c1:post("/api/jobs/twice").status)
    c1:close()
    local c2 = testing.client(app)
    assert.equal(201, c2:post("/api/jobs/twice").status)
    assert.equal(2, sample(c2:get("/metrics").body, 'app_jobs_total{kind="twice"}'))
    c2:close()
  end)

  it("makes the built-in registry once per process", function()
    assert.equal(mhttp.builtin(), mhttp.builtin())
  end)
end)
