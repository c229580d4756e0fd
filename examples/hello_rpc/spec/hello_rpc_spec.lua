-- examples/hello_rpc: the HelloService (app.lua) and the HelloRPC service
-- (rpc_server.lua) as two real `jararaca server` processes on free ports;
-- the first calls the second through its declarative client.
local server = require "spec.support.server"
local client = require "spec.support.client"
local wait = require "spec.support.wait"

local DIR = server.root .. "/examples/hello_rpc/"

local rpc, app

setup(function()
  rpc = server.start(DIR .. "rpc_server.lua", { "--worker-timeout", "0" })
  app = server.start(DIR .. "app.lua", { "--worker-timeout", "0" },
    { HELLO_RPC_URL = "http://127.0.0.1:" .. rpc.port })
end)

teardown(function()
  if app then app:stop() end
  if rpc then rpc:stop() end
end)

describe("examples/hello_rpc", function()
  it("/ping answers with the other process's pong, in one trace across both", function()
    local res = assert(client.request(app.port, "GET", "/ping"))
    assert.equal(200, res.status, res.body)
    assert.equal('{"message":"pong"}', res.body)
    local trace = res.headers.traceparent:match("^00%-(%x+)%-")
    assert.equal(32, #trace)
    -- the HelloRPC service logged its "ping" inside the same trace
    wait.until_true(function()
      return rpc:output():find("trace_id=" .. trace .. " span_id=%x+ ping")
    end, "the HelloRPC service logs ping with the caller's trace id:\n" .. rpc:output(), 10)
  end)

  it("/hello?gather=true runs the ten waits at once; /hello one after the other", function()
    local res = assert(client.request(app.port, "GET", "/hello?gather=true"))
    assert.equal(200, res.status, res.body)
    local most = tonumber(res.body:match('"most_in_flight":(%d+)'))
    assert.truthy(most > 1, res.body)
    assert.truthy(res.body:find('"message":"Elapsed time: [%d.]+"'), res.body)
    res = assert(client.request(app.port, "GET", "/hello"))
    assert.equal(200, res.status, res.body)
    assert.equal(1, tonumber(res.body:match('"most_in_flight":(%d+)')), res.body)
  end)

  it("with the HelloRPC service gone, /ping answers 502 naming the refused connection", function()
    rpc:stop()
    rpc = nil
    local res = assert(client.request(app.port, "GET", "/ping"))
    assert.equal(502, res.status, res.body)
    assert.truthy(res.body:find('"code":"refused"', 1, true), res.body)
  end)
end)
