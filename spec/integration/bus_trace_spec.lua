-- The W3C trace context of an HTTP request (and of a WebSocket handshake)
-- reaches the messages it publishes, end to end: `jararaca server` takes the
-- request, `jararaca worker` consumes the message and its handler records
-- the headers it saw (spec/integration/apps/bus_workers.lua), on one
-- embedded broker file (JARARACA_BUS_URL).
local dbmod = require "jararaca.db"
local json = require "jararaca.json"
local server = require "spec.support.server"
local client = require "spec.support.client"
local wsclient = require "spec.support.wsclient"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"
local bus = require "spec.support.bus"

local APP = server.root .. "/spec/integration/apps/bus_workers.lua"

local TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
local STATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
local BAGGAGE = "userId=alice,serverNode=DF%2028"

local dir, srv, worker, appdb

setup(function()
  dir = files.temp_dir("bustrace")
  local env = { BUS_W_DB = dir .. "/app.db", JARARACA_BUS_URL = "sqlite:///" .. dir .. "/bus.db",
    JARARACA_LOG_LEVEL = "info" }
  srv = server.start(APP, { "--worker-timeout", "0" }, env)
  worker = bus.start_worker(APP, dir .. "/worker.log", { "--handlers", "trace" }, env)
  appdb = assert(dbmod.open { path = dir .. "/app.db" })
end)

teardown(function()
  if worker then worker.proc:kill("SIGKILL"); worker.proc:wait(5) end
  if srv then srv:stop() end
  if appdb then appdb:close() end
  files.remove_dir(dir)
end)

-- The headers the handler saw for message id (waits for it).
local function seen(id)
  return wait.until_true(function()
    local r = bus.query({ db = appdb }, "SELECT headers FROM seen WHERE id = ?", { id })[1]
    return r and assert(json.decode(r.headers))
  end, "the message " .. id .. " was handled:\n" .. (run.read(worker.log) or ""), 15)
end

local function post(id, headers, own)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  local res = assert(client.request(srv.port, "POST", "/trace",
    { headers = headers, body = assert(json.encode { id = id, own = own }) }))
  assert.equal(201, res.status, res.body)
  return seen(id)
end

describe("an HTTP request's trace context on the messages it publishes", function()
  it("traceparent, tracestate and baggage are copied onto the message", function()
    local h = post("valid", { traceparent = TP, tracestate = STATE, baggage = BAGGAGE, ["X-Tenant"] = "acme" })
    assert.equal(TP, h.traceparent)
    assert.equal(STATE, h.tracestate)
    assert.equal(BAGGAGE, h.baggage)
    assert.is_nil(h["x-tenant"]) -- only the trace context, not the allow-list or other headers
    assert.is_nil(h["X-Tenant"])
    assert.equal("application/json", h["content-type"])
  end)

  it("header names are case-insensitive on the way in", function()
    local h = post("upper-names", { TraceParent = TP, TRACESTATE = STATE })
    assert.equal(TP, h.traceparent)
    assert.equal(STATE, h.tracestate)
  end)

  it("an invalid traceparent is ignored, and the tracestate with it; baggage still passes", function()
    local bad = {
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", -- another version
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01", -- all-zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", -- all-zero parent id
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", -- upper-case hex
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  -- short trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  -- short flags
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01", -- not hex
      "garbage",
    }
    for i, tp in ipairs(bad) do
      local h = post("bad-" .. i, { traceparent = tp, tracestate = STATE, baggage = BAGGAGE })
      assert.is_nil(h.traceparent, tp)
      assert.is_nil(h.tracestate, tp)
      assert.equal(BAGGAGE, h.baggage)
    end
  end)

  it("no trace headers: none on the message", function()
    local h = post("none")
    assert.is_nil(h.traceparent)
    assert.is_nil(h.tracestate)
    assert.is_nil(h.baggage)
  end)

  it("a traceparent the publish sets itself wins over the request's", function()
    local own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    local h = post("own", { traceparent = TP, tracestate = STATE }, own)
    assert.equal(own, h.traceparent)
    assert.equal(STATE, h.tracestate) -- what it did not set itself is still inherited
  end)

  it("a task that publishes after its request ended sends the message, without the trace context", function()
    local res = assert(client.request(srv.port, "POST", "/trace/later", { headers = {
      ["Content-Type"] = "application/json", traceparent = TP }, body = assert(json.encode { id = "later" }) }))
    assert.equal(202, res.status, res.body)
    local h = seen("later")
    assert.is_nil(h.traceparent)
  end)

  it("a WebSocket connection's publishes carry its handshake's trace context", function()
    local ws = assert(wsclient.connect(srv.port, "/ws/trace?id=ws-1",
      { headers = { traceparent = TP, baggage = BAGGAGE } }))
    ws:expect_close(10)
    local h = seen("ws-1")
    assert.equal(TP, h.traceparent)
    assert.equal(BAGGAGE, h.baggage)
    assert.is_nil(h.tracestate)
  end)
end)
