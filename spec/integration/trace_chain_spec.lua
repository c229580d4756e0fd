-- Tracing across processes: `jararaca server` takes an HTTP request with a
-- traceparent, publishes; `jararaca worker` consumes it and publishes
-- again; the worker consumes that (spec/integration/apps/trace_chain.lua).
-- Asserted through the response's traceparent, the message headers each
-- hop logs, the trace and span ids on its log lines (text for the server,
-- JSON for the worker) and the spans each process logs as they end (the
-- app's exporter): one trace, each hop a child of the one before it, each
-- publish a producer span between them.
local json = require "jararaca.json"
local server = require "spec.support.server"
local client = require "spec.support.client"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local bus = require "spec.support.bus"
local wsclient = require "spec.support.wsclient"

local APP = server.root .. "/spec/integration/apps/trace_chain.lua"
local TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
local TP = "00-" .. TRACE .. "-00f067aa0ba902b7-01"

local dir, srv, worker

setup(function()
  dir = files.temp_dir("tracechain")
  local env = { JARARACA_BUS_URL = "sqlite:///" .. dir .. "/bus.db", JARARACA_LOG_LEVEL = "info" }
  srv = server.start(APP, { "--worker-timeout", "0" }, env)
  worker = bus.start_worker(APP, dir .. "/worker.log", { "--log-format", "json" }, env)
end)

teardown(function()
  if worker then worker.proc:kill("SIGKILL"); worker.proc:wait(5) end
  if srv then srv:stop() end
  files.remove_dir(dir)
end)

-- The worker's JSON log record whose msg starts with prefix (waits for it).
local function record(prefix)
  return wait.until_true(function()
    for line in (run.read(worker.log) or ""):gmatch("[^\n]+") do
      local ok, r = pcall(json.decode, line)
      if ok and type(r) == "table" and type(r.msg) == "string" and r.msg:sub(1, #prefix) == prefix then
        return r
      end
    end
  end, "the worker logged " .. prefix .. ":\n" .. (run.read(worker.log) or ""), 15)
end

describe("a trace across HTTP -> publish -> worker -> publish -> worker", function()
  it("keeps one trace id, each hop's parent is the hop before it", function()
    local res = assert(client.request(srv.port, "POST", "/chain", { headers = { traceparent = TP } }))
    assert.equal(202, res.status, res.body)
    -- the answer echoes the request's root span: same trace, a new span id
    local echoed = res.headers.traceparent
    local t0, s0 = echoed:match("^00%-(%x+)%-(%x+)%-01$")
    assert.equal(TRACE, t0)
    assert.not_equal("00f067aa0ba902b7", s0)
    -- the server's text log line of the request carries the same ids
    local out = srv:output()
    assert.truthy(out:find("trace_id=" .. TRACE .. " span_id=" .. s0 .. " hop http", 1, true), out)

    -- the publish is a PRODUCER span, child of the request's span (the
    -- server logs its spans as they end)
    local p1 = wait.until_true(function()
      return srv:output():match("span chain%.one publish producer (%x+) parent=" .. s0)
    end, "the server logged the producer span of chain.one", 10)

    local one = record("hop one")
    assert.equal(TRACE, one.trace_id)
    assert.equal("hop one inbound=00-" .. TRACE .. "-" .. p1 .. "-01", one.msg) -- the producer span as parent
    assert.not_equal(s0, one.span_id)
    -- the consumer span of hop one: child of that producer span
    local c1 = record("span TASK chain.one consumer " .. one.span_id)
    assert.equal("span TASK chain.one consumer " .. one.span_id .. " parent=" .. p1, c1.msg)

    local two = record("hop two")
    assert.equal(TRACE, two.trace_id)
    -- the second message's parent is the producer span of the first handler's
    -- publish, a child of that handler's span (a new id per hop)
    local p2 = record("span chain.two publish producer ")
    local p2id = p2.msg:match("^span chain%.two publish producer (%x+) parent=" .. one.span_id .. "$")
    assert.truthy(p2id, p2.msg)
    assert.equal("hop two inbound=00-" .. TRACE .. "-" .. p2id .. "-01", two.msg)
    -- logged inside a nested span: its own span id
    assert.not_equal(one.span_id, two.span_id)
    assert.equal(16, #two.span_id)
  end)

  it("a WebSocket connection is a span, child of its handshake's traceparent, parent of its publishes", function()
    local ws = assert(wsclient.connect(srv.port, "/chain/ws", { headers = { traceparent = TP } }))
    ws:expect_close(10)
    local rec = record("hop ws")
    assert.equal(TRACE, rec.trace_id)
    local producer = rec.msg:match("^hop ws inbound=00%-" .. TRACE .. "%-(%x+)%-01$")
    assert.truthy(producer, rec.msg)
    assert.not_equal("00f067aa0ba902b7", producer)
    -- the message's parent is the producer span of the publish, a child of
    -- the connection's span, whose own log line carries its id
    local conn = wait.until_true(function()
      return srv:output():match("span chain%.ws publish producer " .. producer .. " parent=(%x+)")
    end, "the server logged the producer span of chain.ws", 10)
    local out = srv:output()
    assert.truthy(out:find("trace_id=" .. TRACE .. " span_id=" .. conn .. " hop wsconn", 1, true), out)
  end)
end)
