-- GET /metrics on a real server: the built-in HTTP metrics and a user's,
-- checked by `promtool check metrics`, and scraped by a real Prometheus
-- (spec/support/prometheus.lua) whose query API then returns our series.
local client = require "spec.support.client"
local server = require "spec.support.server"
local prometheus = require "spec.support.prometheus"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local line_value = require("spec.support.metrics").value

local APP = "spec/integration/apps/metrics.lua"

local function req(port, method, target)
  return assert(client.request(port, method, target))
end

-- `promtool check metrics` on text: exit status and its output.
local function promtool(text)
  local path = run.temp_file(text, ".prom")
  local status, out, err = run.run({ "sh", "-c", 'exec promtool check metrics < "$0"', path }, 30)
  return status, out .. err
end


describe("GET /metrics on a real server", function()
  local srv
  setup(function() srv = server.start(APP) end)
  teardown(function()
    run.cleanup()
    if srv then assert.equal(0, (srv:stop())) end
  end)

  it("counts requests by route template and status and passes promtool check metrics", function()
    for i = 1, 3 do assert.equal(200, req(srv.port, "GET", "/api/items/" .. i).status) end
    assert.equal(201, req(srv.port, "POST", "/api/jobs/mail").status)
    assert.equal(201, req(srv.port, "POST", "/api/jobs/sms").status)
    assert.equal(500, req(srv.port, "GET", "/api/boom").status)
    assert.equal(404, req(srv.port, "GET", "/nowhere").status)
    local res = req(srv.port, "GET", "/metrics")
    assert.equal(200, res.status)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", res.headers["content-type"])
    local body = res.body
    local function count(method, route, status)
      return line_value(body, ('jararaca_http_requests_total{method="%s",route="%s",status="%s"}'):format(method, route, status))
    end
    assert.equal(3, count("GET", "/api/items/{id}", 200))
    assert.equal(2, count("POST", "/api/jobs/{kind}", 201)) -- mail and sms: one route
    assert.equal(1, count("GET", "/api/boom", 500))
    assert.equal(1, count("GET", "unmatched", 404))
    assert.equal(3, line_value(body, 'jararaca_http_request_duration_seconds_count{method="GET",route="/api/items/{id}"}'))
    assert.equal(3, line_value(body,
      'jararaca_http_request_duration_seconds_bucket{method="GET",route="/api/items/{id}",le="+Inf"}'))
    assert.equal(1, line_value(body, "jararaca_http_requests_in_flight"))
    assert.equal(1, line_value(body, 'app_jobs_total{kind="mail"}'))
    assert.equal(1, line_value(body, 'app_job_size_bytes_bucket{kind="sms",le="100"}'))
    assert.matches('# HELP app_job_size_bytes Job sizes "in bytes".\\nSecond line.\n', body, 1, true)
    local status, out = promtool(body)
    assert.equal(0, status, out)
  end)

  it("is what a real Prometheus scrapes: its query API returns our series with their labels", function()
    local p = prometheus.private("127.0.0.1:" .. srv.port, "/metrics")
    finally(function() p:close() end)
    for _ = 1, 2 do req(srv.port, "GET", "/api/items/9") end
    local series = wait.until_true(function()
      local r = p:query('jararaca_http_requests_total{route="/api/items/{id}",status="200"}')
      return #r > 0 and tonumber(r[1].value[2]) >= 5 and r
    end, "Prometheus has scraped 5 GET /api/items/{id} answers", 30, 0.2)
    assert.equal(1, #series)
    local m = series[1].metric
    assert.equal("jararaca_http_requests_total", m.__name__)
    assert.equal("GET", m.method)
    assert.equal("200", m.status)
    assert.equal("/api/items/{id}", m.route)
    assert.equal("jararaca", m.job)
    assert.equal("127.0.0.1:" .. srv.port, m.instance)
    -- every series of the metric, the scrapes themselves included
    local all = p:query("jararaca_http_requests_total")
    local routes = {}
    for _, s in ipairs(all) do routes[s.metric.method .. " " .. s.metric.route .. " " .. s.metric.status] = true end
    assert.is_true(routes["GET /metrics 200"])
    assert.is_true(routes["GET unmatched 404"])
    assert.is_true(routes["GET /api/boom 500"])
    -- a histogram and a user counter, through PromQL
    local q = p:query('histogram_quantile(0.5, sum by (le) (jararaca_http_request_duration_seconds_bucket{route="/api/items/{id}"}))')
    assert.equal(1, #q)
    assert.is_true(tonumber(q[1].value[2]) > 0)
    assert.equal("1", p:query('app_jobs_total{kind="mail"}')[1].value[2])
    local up = p:query("up")
    assert.equal("1", up[1].value[2])
  end)
end)

describe("JARARACA_METRICS_PATH", function()
  it("moves GET /metrics", function()
    local srv = server.start(APP, {}, { JARARACA_METRICS_PATH = "/internal/metrics" })
    finally(function() srv:stop() end)
    assert.equal(404, req(srv.port, "GET", "/metrics").status)
    local res = req(srv.port, "GET", "/internal/metrics")
    assert.equal(200, res.status)
    assert.matches("# TYPE jararaca_http_requests_total counter", res.body, 1, true)
  end)

  it("refuses a path without a leading '/' at startup", function()
    local status, out, err = run.run({ server.bin, "server", APP, "--port", tostring(client.free_port()),
      env = { JARARACA_METRICS_PATH = "metrics" } }, 30)
    assert.equal(1, status)
    assert.matches("JARARACA_METRICS_PATH must start with '/'", out .. err)
  end)
end)
