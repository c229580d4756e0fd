-- OTLP export when the collector misbehaves: answers 503 twice (the batch
-- is retried and its spans arrive once), and is down when the server stops
-- (the server still exits, within the flush bound).
local server = require "spec.support.server"
local client = require "spec.support.client"
local files = require "spec.support.files"
local sched = require "jararaca.sched"
local wait = require "spec.support.wait"
local cli = require "spec.support.cli"
local otlp = require "spec.support.otlp"
local jotlp = require "jararaca.otlp"

local APP = server.root .. "/spec/integration/apps/otlp_chain.lua"

local dir
setup(function() dir = files.temp_dir("otlpfaults") end)
teardown(function() files.remove_dir(dir) end)

-- traces only: log and metric exports would take the injected faults
local function env_for(endpoint, extra)
  local env = {
    OTEL_EXPORTER_OTLP_ENDPOINT = endpoint, OTEL_BSP_SCHEDULE_DELAY = "50",
    OTEL_LOGS_EXPORTER = "none", OTEL_METRICS_EXPORTER = "none",
    JARARACA_BUS_URL = "sqlite:///" .. dir .. "/bus.db", JARARACA_LOG_LEVEL = "info",
  }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

-- fn(rcv, start) with a receiver; start(extra_env) starts the server
-- exporting to it. The server (when fn failed before stopping it) and the
-- receiver are stopped however fn ends.
local function with_receiver(fn)
  local rcv, srv = otlp.start(), nil
  local ok, err = pcall(fn, rcv, function(extra)
    srv = server.start(APP, { "--worker-timeout", "0" }, env_for(rcv.endpoint, extra))
    return srv
  end)
  if not ok and srv then srv:stop() end
  rcv:stop()
  assert(ok, err)
end

describe("OTLP export faults", function()
  it("retries a batch answered 503 twice: its spans arrive once", function()
    with_receiver(function(rcv, start)
      rcv:fault(503, 2)
      local srv = start()
      local res = assert(client.request(srv.port, "POST", "/chain", {}))
      assert.equal(202, res.status, res.body)
      local got = rcv:wait_for("traces", function(items, all)
        for _, s in ipairs(items) do if s.name == "POST /chain" then return all end end
      end, 30)
      assert.truthy(got.attempts >= 3, "two refused attempts, then the one accepted")
      local n = 0
      for _, s in ipairs(got.items) do if s.name == "POST /chain" then n = n + 1 end end
      assert.equal(1, n)
      assert.equal(0, (srv:stop()))
    end)
  end)

  it("exits within the flush bound when the collector is down at shutdown", function()
    local srv = server.start(APP, { "--worker-timeout", "0" }, env_for("http://127.0.0.1:" .. client.free_port()))
    local res = assert(client.request(srv.port, "POST", "/chain", {}))
    assert.equal(202, res.status, res.body)
    local t0 = sched.clock()
    local status = srv:stop("SIGTERM", jotlp.FLUSH_TIMEOUT + 10)
    local took = sched.clock() - t0
    assert.equal(0, status)
    assert.truthy(took < jotlp.FLUSH_TIMEOUT + 5, ("stopped in %.1f s"):format(took))
  end)

  it("logs what the exporter gave up on once per interval, with the last error, not once per batch", function()
    -- a collector that is down, batches given up after 100 ms, reports every second
    local srv = server.start(APP, { "--worker-timeout", "0" }, env_for("http://127.0.0.1:" .. client.free_port(), {
      OTEL_BSP_EXPORT_TIMEOUT = "100", OTEL_METRICS_EXPORTER = "otlp", OTEL_METRIC_EXPORT_INTERVAL = "1000",
      OTEL_METRIC_EXPORT_TIMEOUT = "100", OTEL_BSP_MAX_EXPORT_BATCH_SIZE = "1",
    }))
    for _ = 1, 10 do assert.equal(202, assert(client.request(srv.port, "POST", "/chain", {})).status) end
    local lines = wait.until_true(function()
      local n, failed = 0, 0
      for line in srv:output():gmatch("[^\n]+") do
        local f = line:match("WARN .*otlp traces export: %d+ dropped %(queue full%), (%d+) failed %(last error: .+%)")
        if f then n, failed = n + 1, failed + tonumber(f) end
      end
      return failed >= 10 and n
    end, "the server reported the 10 failed spans", 20)
    -- 10 spans in batches of 1, each given up after ~100 ms: a report per
    -- interval (a few), not one per batch (10) or per attempt
    assert.truthy(lines < 10, lines .. " reports")
    assert.equal(0, (srv:stop()))
  end)

  it("logs the spans a 2xx partial_success rejected, with the collector's message", function()
    with_receiver(function(rcv, start)
      rcv:partial("traces", 1, "span name too long")
      local srv = start { OTEL_METRICS_EXPORTER = "otlp", OTEL_METRIC_EXPORT_INTERVAL = "500" }
      assert.equal(202, assert(client.request(srv.port, "POST", "/chain", {})).status)
      wait.until_true(function()
        return srv:output():find("WARN .*otlp traces export: 0 dropped %(queue full%), 1 failed, 1 rejected by the "
          .. "collector %(last error: the collector rejected 1 spans of a batch of %d+: span name too long%)")
      end, "the server reported the rejected span", 20)
      assert.equal(0, (srv:stop()))
    end)
  end)

  it("a bad OTEL_* variable is a startup error naming it", function()
    local env = env_for("http://127.0.0.1:4318", { OTEL_EXPORTER_OTLP_PROTOCOL = "grpc" })
    local status, out, err = cli.run({ "server", APP, "--port", tostring(client.free_port()), "--host", "127.0.0.1" },
      { env = env, timeout = 30 })
    assert.equal(1, status)
    assert.truthy((out .. err):find("startup failed for .*OTEL_EXPORTER_OTLP_PROTOCOL"), out .. err)
  end)
end)
