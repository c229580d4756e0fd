-- The W3C trace context of an HTTP request on what it publishes
-- (jararaca.bus.propagation.valid_traceparent / http, and the publisher),
-- in one process: jararaca.testing's in-process client, a real embedded
-- broker in a temporary file. End to end with a server and a worker:
-- spec/integration/bus_trace_spec.lua.
local j = require "jararaca"
local propagation = require "jararaca.bus.propagation"
local embedded = require "jararaca.bus.embedded"
local testing = require "jararaca.testing"

local TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

describe("propagation.valid_traceparent", function()
  it("takes a version-00 traceparent with lower-case hex and non-zero ids", function()
    assert.is_true(propagation.valid_traceparent(TP))
    assert.is_true(propagation.valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"))
    assert.is_true(propagation.valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff"))
  end)

  it("refuses anything else", function()
    for _, tp in ipairs {
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0F",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b71-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01, " .. TP,
      " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
      "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
      "", false, 42,
    } do
      assert.is_false(propagation.valid_traceparent(tp), tostring(tp))
    end
    assert.is_false(propagation.valid_traceparent(nil))
  end)
end)

describe("propagation.http", function()
  local function from(t) return function(name) return t[name] end end

  it("copies a valid traceparent with its tracestate, and baggage", function()
    assert.same({ traceparent = TP, tracestate = "a=1", baggage = "k=v" },
      propagation.http(from { traceparent = TP, tracestate = "a=1", baggage = "k=v", ["x-other"] = "o" }))
  end)

  it("drops an invalid or missing traceparent's tracestate, keeps baggage; skips empty values", function()
    assert.same({ baggage = "k=v" }, propagation.http(from { traceparent = "00-bad", tracestate = "a=1", baggage = "k=v" }))
    assert.same({}, propagation.http(from { tracestate = "a=1" }))
    assert.same({ traceparent = TP }, propagation.http(from { traceparent = TP, tracestate = "", baggage = "" }))
    assert.same({}, propagation.http(from {}))
  end)
end)

describe("an HTTP request's publishes (in-process client)", function()
  local dir, client, broker, late

  before_each(function()
    dir = testing.temp_dir()
    local url = "sqlite:///" .. dir .. "/bus.db"
    local C = j.RestController("/p", { name = "PubController" })
    C.pub = j.Post("", function(_, req)
      local own = req:header("x-own-traceparent")
      assert(j.use_publisher():publish({ n = 1 }, "t.http", own and { headers = { traceparent = own } } or nil))
      return { ok = true }
    end)
    -- a task the request leaves running publishes after the request ended
    -- (under the real server the request can no longer be read then: the
    -- publish goes out without the trace context, it does not raise)
    C.later = j.Post("/later", function()
      late = j.spawn(function()
        j.sleep(0.05)
        return j.use_publisher():publish({ n = 2 }, "t.late")
      end)
      return { ok = true }
    end)
    local W = j.MessageBusController { name = "W" }
    W.h = j.IncomingHandler("t.#", function() end)
    client = testing.client(j.Microservice { name = "tr", controllers = { C, W },
      bus = { url = url, propagate_headers = { "x-tenant" } } })
    broker = assert(embedded.open(dir .. "/bus.db"))
  end)

  after_each(function()
    broker:close()
    client:close()
    testing.cleanup()
  end)

  local function one()
    local ds = assert(broker:fetch("tr.h", 10))
    assert.equal(1, #ds)
    return ds[1].headers
  end

  it("carry the request's trace context only (not the app's allow-list)", function()
    local res = client:post("/p", { headers = { Traceparent = TP, tracestate = "a=1", baggage = "k=v",
      ["x-tenant"] = "acme" } })
    assert.equal(200, res.status, res.body)
    local h = one()
    assert.equal(TP, h.traceparent)
    assert.equal("a=1", h.tracestate)
    assert.equal("k=v", h.baggage)
    assert.is_nil(h["x-tenant"])
  end)

  it("a header the publish sets wins; an invalid inbound traceparent is ignored", function()
    local own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert.equal(200, client:post("/p", { headers = { traceparent = TP, ["x-own-traceparent"] = own } }).status)
    assert.equal(own, one().traceparent)
    assert.equal(200, client:post("/p", { headers = { traceparent = "00-" .. ("0"):rep(32) .. "-00f067aa0ba902b7-01",
      tracestate = "a=1" } }).status)
    local h = one()
    assert.is_nil(h.traceparent)
    assert.is_nil(h.tracestate)
  end)

  it("a task that outlives its request still publishes", function()
    assert.equal(200, client:post("/p/later", { headers = { traceparent = TP } }).status)
    local ok, sent, err = late:wait()
    assert.is_true(ok)
    assert.is_true(sent, err)
    assert.equal("t.late", assert(broker:fetch("tr.h", 10))[1].topic)
  end)
end)
