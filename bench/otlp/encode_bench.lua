-- luacheck: std +busted
-- bench/otlp/encode_bench.lua - the cost of encoding one finished span (an
-- HTTP request's root span: its ~15 attributes) and one log record to OTLP
-- protobuf (jararaca.core.otlp_encode), what every sampled span and log
-- line pays on the event loop before the push (push_bench.lua):
--
--   build/jararaca test bench/otlp/encode_bench.lua
--   (env: OTLP_BENCH_N=100000 per round, OTLP_BENCH_ROUNDS=3)
--
-- Prints the median ns per call and the span's encoded size; asserts
-- nothing about speed.
local enc = require "jararaca.core.otlp_encode"
local span = require "jararaca.tracing.span"
local sys = require "jararaca.core.sys"

local N, ROUNDS = tonumber(os.getenv("OTLP_BENCH_N")) or 100000, tonumber(os.getenv("OTLP_BENCH_ROUNDS")) or 3

-- The median over the rounds of the CPU ns per fn(arg).
local function measure(fn, arg)
  local cpu = {}
  for r = 1, ROUNDS do
    local c0 = os.clock()
    for _ = 1, N do fn(arg) end
    cpu[r] = (os.clock() - c0) / N * 1e9
  end
  table.sort(cpu)
  return cpu[math.floor((ROUNDS + 1) / 2)]
end

describe("otlp encode", function()
  it(("a root span and a log record, %d calls, %d rounds"):format(N, ROUNDS), function()
    local sp = span.new("GET /items/{id}", "server", nil, true)
    sp:set_attributes {
      ["app.context_type"] = "http", ["http.method"] = "GET", ["http.path"] = "/items/42",
      ["http.url"] = "/items/42?x=1", ["http.route.path"] = "/items/{id}", ["http.query"] = "x=1",
      ["http.route.endpoint.name"] = "item", ["http.request.path_param.id"] = 42,
      ["http.request.header.host"] = "127.0.0.1:8000", ["http.request.header.user-agent"] = "wrk",
      ["http.request.header.accept"] = "*/*", ["http.request.client.host"] = "127.0.0.1",
      ["http.response.status_code"] = 200,
    }
    sp.end_us = sp.start_us + 120
    local bytes = assert(enc.span(sp))
    local rec = { time_us = sys.time() * 1e6, severity_number = 9, severity_text = "INFO", body = "created task 42",
      attributes = { ["request.id"] = "64cd-1" }, trace_id = sp.trace_id, span_id = sp.span_id, sampled = true }
    assert(enc.log_record(rec))
    local s = measure(enc.span, sp)
    local l = measure(enc.log_record, rec)
    print(("\notlp encode: span (%d attributes, %d bytes) median %.0f ns CPU; log record median %.0f ns CPU")
      :format(13, #bytes, s, l))
  end)
end)
