-- jararaca.core.otlp_encode: spans, log records, resources and metrics
-- encoded in C, decoded by the test receiver with opentelemetry-proto's
-- generated code (spec/support/otlp_receiver.js), field by field.
local enc = require "jararaca.core.otlp_encode"
local span = require "jararaca.tracing.span"
local otlp = require "spec.support.otlp"
local registry = require "jararaca.metrics.registry"
local otlp_metrics = require "jararaca.otlp.metrics"

local TRACE, SPAN, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "a3ce929d0e0e4736"

describe("otlp_encode", function()
  local r
  setup(function() r = otlp.start() end)
  teardown(function() if r then r:stop() end end)

  it("encodes a new trace's ids from the span's words, without making their hex", function()
    -- 64 root spans: words with the high bit set (negative bit.tobit
    -- values) come up about half the time, so both cases are covered
    for _ = 1, 64 do
      local sp = span.new("tick", "internal", nil, true)
      sp.end_us = sp.start_us + 1
      local bytes = assert(enc.span(sp))
      assert.is_nil(rawget(sp, "trace_id"))
      assert.is_nil(rawget(sp, "span_id"))
      local d = assert(r:decode("Span", bytes))
      assert.equal(sp.trace_id, d.traceId)
      assert.equal(sp.span_id, d.spanId)
    end
  end)

  it("encodes a finished span with every field", function()
    local sp = span.new("GET /tasks/{id}", "server",
      { trace_id = TRACE, parent_id = PARENT, sampled = true, tracestate = "k=v" })
    sp.start_us = 1700000000123456
    sp:set_attributes { ["http.method"] = "GET", ["http.response.status_code"] = 200, ratio = 0.5,
      cached = false, big = 2 ^ 53, neg = -3 }
    sp:add_event("query sent", { rows = 3 })
    sp.events[1].time_us = 1700000000200000
    sp:add_link({ trace_id = TRACE, span_id = SPAN }, { ["boundary.kind"] = "untrusted" })
    sp:set_status("error", "boom")
    sp.end_us = 1700000000300001
    local bytes = assert(enc.span(sp))
    local d = assert(r:decode("Span", bytes))
    assert.equal(TRACE, d.traceId)
    assert.equal(sp.span_id, d.spanId)
    assert.equal(PARENT, d.parentSpanId)
    assert.equal("k=v", d.traceState)
    assert.equal("GET /tasks/{id}", d.name)
    assert.equal(2, d.kind) -- SPAN_KIND_SERVER
    assert.equal("1700000000123456000", d.startTimeUnixNano)
    assert.equal("1700000000300001000", d.endTimeUnixNano)
    assert.same({ ["http.method"] = "GET", ["http.response.status_code"] = 200, ratio = 0.5, cached = false,
      big = 2 ^ 53, neg = -3 }, d.attrs)
    -- integers are int_value (int64 as a decimal string), fractions double_value
    local kinds = {}
    for _, kv in ipairs(d.attributes) do kinds[kv.key] = next(kv.value) end
    assert.equal("intValue", kinds["http.response.status_code"])
    assert.equal("intValue", kinds.neg)
    assert.equal("doubleValue", kinds.ratio)
    assert.equal("boolValue", kinds.cached)
    assert.equal(1, #d.events)
    assert.equal("query sent", d.events[1].name)
    assert.equal("1700000000200000000", d.events[1].timeUnixNano)
    assert.same({ rows = 3 }, d.events[1].attrs)
    assert.equal(1, #d.links)
    assert.equal(TRACE, d.links[1].traceId)
    assert.equal(SPAN, d.links[1].spanId)
    assert.same({ ["boundary.kind"] = "untrusted" }, d.links[1].attrs)
    assert.same({ code = 2, message = "boom" }, d.status)
  end)

  it("maps every kind and status, and leaves out what a root span has not", function()
    local want = { internal = 1, server = 2, client = 3, producer = 4, consumer = 5 }
    for kind, n in pairs(want) do
      local sp = span.new("s", kind, nil, true)
      sp.end_us = sp.start_us + 1
      local d = assert(r:decode("Span", assert(enc.span(sp))))
      assert.equal(n, d.kind)
      assert.is_nil(d.parentSpanId)
      assert.is_nil(d.status) -- unset, no message: not written
      assert.equal(0, #d.attributes)
    end
    local sp = span.new("s", nil, nil, true)
    sp:set_status("ok")
    assert.same({ code = 1 }, assert(r:decode("Span", assert(enc.span(sp)))).status)
  end)

  it("encodes long attributes and many of them (lengths past one varint byte)", function()
    local sp = span.new("big", "internal", nil, true)
    local long = ("x"):rep(70000)
    sp:set_attribute("long", long)
    for i = 1, 300 do sp:set_attribute("k" .. i, i) end
    sp.end_us = sp.start_us
    local d = assert(r:decode("Span", assert(enc.span(sp))))
    assert.equal(long, d.attrs.long)
    assert.equal(300, d.attrs.k300)
    assert.equal(301, #d.attributes)
  end)

  it("answers nil, message, 'invalid' for ids that are not hex of the right length", function()
    local sp = span.new("s", "internal", nil, true)
    sp.trace_id = "xyz"
    local b, msg, code = enc.span(sp)
    assert.is_nil(b)
    assert.equal("invalid", code)
    assert.truthy(msg:find("trace_id", 1, true))
    sp = span.new("s", "internal", nil, true)
    sp.parent_id = ("g"):rep(16)
    assert.equal("invalid", select(3, enc.span(sp)))
    assert.has_error(function() enc.span("nope") end)
  end)

  it("encodes a log record with its trace context", function()
    local bytes = assert(enc.log_record {
      time_us = 1700000000000001, observed_us = 1700000000000002, severity_number = 17,
      severity_text = "ERROR", body = "it broke", attributes = { ["request.id"] = "r-1" },
      trace_id = TRACE, span_id = SPAN, sampled = true,
    })
    local d = assert(r:decode("LogRecord", bytes))
    assert.equal("1700000000000001000", d.timeUnixNano)
    assert.equal("1700000000000002000", d.observedTimeUnixNano)
    assert.equal(17, d.severityNumber)
    assert.equal("ERROR", d.severityText)
    assert.same({ stringValue = "it broke" }, d.body)
    assert.same({ ["request.id"] = "r-1" }, d.attrs)
    assert.equal(TRACE, d.traceId)
    assert.equal(SPAN, d.spanId)
    assert.equal(1, d.flags)
    -- outside a span: no ids
    d = assert(r:decode("LogRecord", assert(enc.log_record { time_us = 1, severity_number = 9, body = "x" })))
    assert.is_nil(d.traceId)
    assert.is_nil(d.spanId)
  end)

  it("encodes a resource", function()
    local d = assert(r:decode("Resource", assert(enc.resource {
      ["service.name"] = "tasks", ["telemetry.sdk.name"] = "jararaca", ["process.pid"] = 42 })))
    assert.same({ ["service.name"] = "tasks", ["telemetry.sdk.name"] = "jararaca", ["process.pid"] = 42 }, d.attrs)
  end)

  it("encodes sums (monotonic or not), gauges and histograms", function()
    local d = assert(r:decode("Metric", assert(enc.metric {
      name = "app_jobs_total", description = "Jobs done.", unit = "1", type = "sum", monotonic = true,
      start_us = 1000, time_us = 2000,
      points = { { attributes = { kind = "mail" }, value = 3 }, { attributes = { kind = "sms" }, value = 0.5 } },
    })))
    assert.equal("app_jobs_total", d.name)
    assert.equal("Jobs done.", d.description)
    assert.equal("1", d.unit)
    assert.is_true(d.sum.isMonotonic)
    assert.equal(2, d.sum.aggregationTemporality) -- CUMULATIVE
    local p1, p2 = d.sum.dataPoints[1], d.sum.dataPoints[2]
    assert.same({ kind = "mail" }, p1.attrs)
    assert.equal("3", p1.asInt)
    assert.equal(0.5, p2.asDouble)
    assert.equal("1000000", p1.startTimeUnixNano)
    assert.equal("2000000", p1.timeUnixNano)

    d = assert(r:decode("Metric", assert(enc.metric {
      name = "app_queue", type = "sum", monotonic = false, points = { { value = -2 } } })))
    assert.is_false(d.sum.isMonotonic)
    assert.equal("-2", d.sum.dataPoints[1].asInt)

    d = assert(r:decode("Metric", assert(enc.metric {
      name = "app_job_seconds", type = "histogram", start_us = 1, time_us = 2,
      points = { { attributes = { kind = "mail" }, count = 4, sum = 2.75, bounds = { 0.1, 1 }, counts = { 1, 2, 1 } } },
    })))
    local h = d.histogram.dataPoints[1]
    assert.equal(2, d.histogram.aggregationTemporality)
    assert.equal("4", h.count)
    assert.equal(2.75, h.sum)
    assert.same({ 0.1, 1 }, h.explicitBounds)
    assert.same({ "1", "2", "1" }, h.bucketCounts)
    assert.same({ kind = "mail" }, h.attrs)

    d = assert(r:decode("Metric", assert(enc.metric { name = "g", type = "gauge", points = { { value = 7 } } })))
    assert.equal("7", d.gauge.dataPoints[1].asInt)

    local b, _, code = enc.metric { name = "x", type = "summary" }
    assert.is_nil(b)
    assert.equal("invalid", code)
  end)

  it("encodes a registry's counters, up-down counters and histograms (jararaca.otlp.metrics)", function()
    local reg = registry.new()
    local c = reg:counter("app_jobs_total", "Jobs done.", { "kind", "code" })
    c:inc { kind = "mail", code = 200 }
    c:add(2, { kind = "sms", code = "500" })
    local q = reg:updown_counter("app_queue", "Queued.")
    q:dec()
    local h = reg:histogram("app_job_seconds", "Job time.", { "kind" }, { 0.1, 1 })
    h:observe(0.05, { kind = "mail" })
    h:observe(0.5, { kind = "mail" })
    h:observe(5, { kind = "mail" })
    reg:counter("app_unused_total", "No series yet.", { "x" })
    local list = otlp_metrics.encode(1000, { reg })
    assert.equal(3, #list) -- a metric without series is not sent
    local jobs = assert(r:decode("Metric", list[1]))
    assert.equal("app_jobs_total", jobs.name)
    assert.equal("Jobs done.", jobs.description)
    assert.is_true(jobs.sum.isMonotonic)
    assert.same({ kind = "mail", code = "200" }, jobs.sum.dataPoints[1].attrs)
    assert.equal("1", jobs.sum.dataPoints[1].asInt)
    assert.same({ kind = "sms", code = "500" }, jobs.sum.dataPoints[2].attrs)
    assert.equal("2", jobs.sum.dataPoints[2].asInt)
    assert.equal("1000000", jobs.sum.dataPoints[1].startTimeUnixNano)
    local queue = assert(r:decode("Metric", list[2]))
    assert.is_false(queue.sum.isMonotonic)
    assert.equal("-1", queue.sum.dataPoints[1].asInt)
    local hist = assert(r:decode("Metric", list[3]))
    local p = hist.histogram.dataPoints[1]
    assert.equal("3", p.count)
    assert.equal(5.55, p.sum)
    assert.same({ 0.1, 1 }, p.explicitBounds)
    assert.same({ "1", "1", "1" }, p.bucketCounts) -- per bucket, the last +Inf
  end)
end)
