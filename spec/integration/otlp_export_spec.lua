-- OTLP export end to end (the issue's acceptance): `jararaca server`,
-- `jararaca worker` and `jararaca scheduler` (spec/integration/apps/otlp_chain.lua,
-- three processes sharing an embedded broker) export to the test receiver
-- (spec/support/otlp_receiver.js, decoding with opentelemetry-proto's
-- generated code): one trace across HTTP -> publish -> worker -> publish ->
-- worker with each hop's parent chain, a WebSocket connection's and a
-- scheduled run's root spans, log records carrying the ids of the span they
-- were written in, and a counter's value.
local server = require "spec.support.server"
local client = require "spec.support.client"
local files = require "spec.support.files"
local bus = require "spec.support.bus"
local wsclient = require "spec.support.wsclient"
local process = require "jararaca.core.process"
local otlp = require "spec.support.otlp"

local APP = server.root .. "/spec/integration/apps/otlp_chain.lua"

local dir, rcv, srv, worker, sched_proc

-- small batches and delays: the specs wait for events, not for 5 s timers
local function env_for(endpoint, extra)
  local env = {
    OTEL_EXPORTER_OTLP_ENDPOINT = endpoint, OTEL_BSP_SCHEDULE_DELAY = "50", OTEL_BLRP_SCHEDULE_DELAY = "50",
    OTEL_METRIC_EXPORT_INTERVAL = "200", JARARACA_BUS_URL = "sqlite:///" .. dir .. "/bus.db",
    JARARACA_LOG_LEVEL = "info",
  }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

setup(function()
  dir = files.temp_dir("otlpchain")
  rcv = otlp.start()
  local env = env_for(rcv.endpoint)
  srv = server.start(APP, { "--worker-timeout", "0" }, env)
  worker = bus.start_worker(APP, dir .. "/worker.log", nil, env)
  sched_proc = assert(process.spawn { server.bin, "scheduler", APP, env = env,
    stdout = dir .. "/scheduler.log", stderr = dir .. "/scheduler.log" })
end)

teardown(function()
  if sched_proc then sched_proc:kill("SIGKILL"); sched_proc:wait(5) end
  if worker then worker.proc:kill("SIGKILL"); worker.proc:wait(5) end
  if srv then srv:stop() end
  if rcv then rcv:stop() end
  files.remove_dir(dir)
end)

local function by_id(spans)
  local t = {}
  for _, s in ipairs(spans) do t[s.spanId] = s end
  return t
end

local function find(spans, pred)
  for _, s in ipairs(spans) do if pred(s) then return s end end
end

-- The names of s's ancestors, nearest first, within spans (by id); stops at
-- a parent that is not among them.
local function ancestors(s, ids)
  local out = {}
  local p = s.parentSpanId and ids[s.parentSpanId]
  while p do
    out[#out + 1] = p
    p = p.parentSpanId and ids[p.parentSpanId]
  end
  return out
end

local function has(list, s)
  for _, x in ipairs(list) do if x == s then return true end end
  return false
end

-- POST /chain on port; the trace the receiver gets, checked: root <-
-- (publish) <- hop one <- (publish) <- hop two <- inner, across processes.
-- Returns the trace id, the server span and "inner".
local function chain(port)
  local res = assert(client.request(port, "POST", "/chain", {}))
  assert.equal(202, res.status, res.body)
  local trace_id = res.headers.traceparent:match("^00%-(%x+)%-")
  local spans = rcv:wait_for("traces", function(items)
    local mine = {}
    for _, s in ipairs(items) do if s.traceId == trace_id then mine[#mine + 1] = s end end
    return find(mine, function(s) return s.name == "inner" end) and mine
  end, 20)
  local ids = by_id(spans)
  local root = find(spans, function(s) return s.name == "POST /chain" end)
  assert.truthy(root, "the server span")
  assert.equal(2, root.kind) -- SERVER
  assert.is_nil(root.parentSpanId) -- a new trace: no inbound traceparent
  assert.equal(202, root.attrs["http.response.status_code"])
  assert.equal("otlpchain", root.resource["service.name"])
  local one = assert(find(spans, function(s) return s.name == "TASK chain.one" end), "hop one's span")
  local two = assert(find(spans, function(s) return s.name == "TASK chain.two" end), "hop two's span")
  local inner = find(spans, function(s) return s.name == "inner" end)
  assert.equal(5, one.kind) -- CONSUMER
  assert.equal(5, two.kind)
  -- (a producer span per publish may sit between a hop and the next)
  assert.truthy(has(ancestors(one, ids), root), "hop one descends from the server span")
  assert.truthy(has(ancestors(two, ids), one), "hop two descends from hop one")
  assert.equal(two.spanId, inner.parentSpanId)
  -- every span of the trace has its parent in the trace (nothing lost), but the root
  for _, s in ipairs(spans) do
    if s ~= root then assert.truthy(ids[s.parentSpanId], s.name .. "'s parent was exported") end
  end
  -- server and worker are separate processes: each its own service instance
  assert.truthy(root.resource["service.instance.id"])
  assert.not_equal(root.resource["service.instance.id"], one.resource["service.instance.id"])
  return trace_id, root, inner
end

describe("OTLP export across server, worker and scheduler", function()
  local trace_id, root, inner

  it("one trace from an HTTP request through two worker hops, each hop a descendant of the one before", function()
    trace_id, root, inner = chain(srv.port)
  end)

  it("log records carry the trace and span ids of the span they were written in", function()
    assert.truthy(inner, "needs the trace of the first test")
    local logs = rcv:wait_for("logs", function(items)
      local http = find(items, function(l) return l.body and l.body.stringValue == "hop http" end)
      local two = find(items, function(l) return l.body and l.body.stringValue == "hop two" end)
      return http and two and { http = http, two = two }
    end, 20)
    assert.equal(trace_id, logs.http.traceId)
    assert.equal(root.spanId, logs.http.spanId)
    assert.equal(9, logs.http.severityNumber) -- INFO
    assert.equal("INFO", logs.http.severityText)
    assert.equal(trace_id, logs.two.traceId)
    assert.equal(inner.spanId, logs.two.spanId)
    -- a line outside any transaction has no ids
    local startup = rcv:wait_for("logs", function(items)
      return find(items, function(l) return l.body and (l.body.stringValue or ""):find("^worker started") end)
    end, 20)
    assert.is_nil(startup.traceId)
  end)

  it("a counter's value arrives as a cumulative monotonic sum, with the built-in HTTP metrics", function()
    rcv:wait_for("metrics", function(items)
      for _, m in ipairs(items) do
        if m.name == "otlp_chain_requests_total" and m.sum and m.sum.isMonotonic then
          local p = m.sum.dataPoints[1]
          if p and p.attrs.kind == "http" and p.asInt == "1" and m.sum.aggregationTemporality == 2 then return true end
        end
      end
    end, 20)
    rcv:wait_for("metrics", function(items)
      for _, m in ipairs(items) do
        if m.name == "jararaca_http_requests_total" then
          for _, p in ipairs(m.sum.dataPoints) do
            if p.attrs.route == "/chain" and p.attrs.status == "202" and p.asInt == "1" then return true end
          end
        end
      end
    end, 20)
  end)

  it("a WebSocket connection is a root span, parent of a span inside its handler", function()
    local ws = assert(wsclient.connect(srv.port, "/chain/ws", {}))
    ws:expect_close(10)
    local spans = rcv:wait_for("traces", function(items)
      local c = find(items, function(s) return s.name == "WebSocket /chain/ws" end)
      local i = c and find(items, function(s) return s.name == "ws inner" and s.parentSpanId == c.spanId end)
      return i and { conn = c, inner = i }
    end, 20)
    assert.equal(2, spans.conn.kind)
    assert.is_nil(spans.conn.parentSpanId)
    assert.equal(spans.conn.traceId, spans.inner.traceId)
  end)

  it("a scheduled run is a root span, parent of a span inside the action", function()
    local spans = rcv:wait_for("traces", function(items)
      local r = find(items, function(s) return s.name == "Scheduler Task tick" end)
      local i = r and find(items, function(s) return s.name == "tick inner" and s.parentSpanId == r.spanId end)
      return i and { run = r, inner = i }
    end, 20)
    assert.is_nil(spans.run.parentSpanId)
    assert.equal("scheduler", spans.run.attrs["app.context_type"])
    assert.equal(spans.run.traceId, spans.inner.traceId)
  end)
end)

describe("OTLP metrics of a worker without an admin port", function()
  it("counts its deliveries from its start, not from its first push (here: the one at its stop)", function()
    local env = env_for(rcv.endpoint, { JARARACA_BUS_URL = "sqlite:///" .. dir .. "/wm.db",
      OTEL_METRIC_EXPORT_INTERVAL = "600000" })
    local msrv = server.start(APP, { "--worker-timeout", "0" }, env)
    local w = bus.start_worker(APP, dir .. "/wm.log", nil, env)
    local ok, err = pcall(function()
      local res = assert(client.request(msrv.port, "POST", "/chain", {}))
      assert.equal(202, res.status, res.body)
      local trace = res.headers.traceparent:match("^00%-(%x+)%-")
      -- hop two's span: both deliveries were handled (and acked: the span ends first)
      local inner = rcv:wait_for("traces", function(items)
        return find(items, function(s) return s.traceId == trace and s.name == "inner" end)
      end, 20)
      local instance = inner.resource["service.instance.id"]
      assert(w.proc:kill("SIGTERM"))
      assert.equal(0, w.proc:wait(20))
      w = nil
      rcv:wait_for("metrics", function(items)
        for _, m in ipairs(items) do
          if m.name == "jararaca_bus_messages_processed_total" and m.resource["service.instance.id"] == instance then
            local acked = 0
            for _, p in ipairs(m.sum.dataPoints) do
              if p.attrs.outcome == "ack" then acked = acked + tonumber(p.asInt) end
            end
            if acked == 2 then return true end
          end
        end
      end, 20)
    end)
    if w then w.proc:kill("SIGKILL"); w.proc:wait(5) end
    msrv:stop()
    assert(ok, err)
  end)
end)

describe("OTLP export on RabbitMQ", function()
  local rabbitmq = require "spec.support.rabbitmq"
  local run = require "spec.support.run"
  local rsrv, rworker

  setup(function()
    local env = env_for(rcv.endpoint, { JARARACA_BUS_URL = rabbitmq.url() })
    -- the topology first: servers and workers check it at startup
    local status, out, err = run.run({ server.bin, "declare", APP, env = env }, 60)
    assert.equal(0, status, out .. err)
    rsrv = server.start(APP, { "--worker-timeout", "0" }, env)
    rworker = bus.start_worker(APP, dir .. "/rworker.log", nil, env)
  end)

  teardown(function()
    if rworker then rworker.proc:kill("SIGKILL"); rworker.proc:wait(5) end
    if rsrv then rsrv:stop() end
  end)

  it("one trace from an HTTP request through two worker hops", function()
    chain(rsrv.port)
  end)
end)

describe("OTLP export with gzip bodies", function()
  it("sends gzip bodies the receiver decodes (OTEL_EXPORTER_OTLP_COMPRESSION=gzip)", function()
    local gsrv = server.start(APP, { "--worker-timeout", "0" },
      env_for(rcv.endpoint, { OTEL_EXPORTER_OTLP_COMPRESSION = "gzip", JARARACA_BUS_URL = "sqlite:///" .. dir .. "/gz.db" }))
    local ok, err = pcall(function()
      local res = assert(client.request(gsrv.port, "POST", "/chain", {}))
      assert.equal(202, res.status, res.body)
      local trace = res.headers.traceparent:match("^00%-(%x+)%-")
      local got = rcv:wait_for("traces", function(items, all)
        return find(items, function(s) return s.traceId == trace and s.name == "POST /chain" end) and all
      end, 20)
      assert.truthy(got.gzipped > 0)
    end)
    gsrv:stop()
    assert(ok, err)
  end)
end)
