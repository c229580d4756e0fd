-- The RPC client (jararaca.rpc) over the real HTTP client
-- (jararaca.core.http_client) against a real `jararaca server`
-- (spec/integration/apps/rpc_target.lua) on a free port, and against
-- `openssl s_server` with a certificate made for the spec (HTTPS).
local j = require "jararaca"
local s = j.schema
local process = require "jararaca.core.process"
local tracing = require "jararaca.tracing"
local memory = require "jararaca.tracing.memory"
local server = require "spec.support.server"
local client = require "spec.support.client"
local run = require "spec.support.run"
local files = require "spec.support.files"
local wait = require "spec.support.wait"

local APP = server.root .. "/spec/integration/apps/rpc_target.lua"

local Seen = s.object {
  { "method", s.string() }, { "path", s.string() },
  { "query", s.map(s.array(s.string())):optional() },
  { "headers", s.map(s.string()) },
  { "body", s.string():optional() },
  { "id", s.integer():optional() }, { "name", s.string():optional() },
}

local Target = j.RestClient("/t", {
  name = "Target",
  echo = j.rpc.Get("/echo/{id:int}", { params = { id = s.integer() }, query = { "tag", "flag" },
    headers = { ["x-client"] = "rpc-spec" }, response = Seen }),
  echo_path = j.rpc.Get("/files/{rest:path}"),
  create = j.rpc.Post("/items", { body = s.object { { "name", s.string() } }, response = Seen }),
  create_retried = j.rpc.Post("/flaky/{key}", { query = { "fail" }, retry = { attempts = 3, backoff = 0 } }),
  flaky = j.rpc.Get("/flaky/{key}", { query = { "fail" }, retry = { attempts = 3, backoff = 0.01 } }),
  calls = j.rpc.Get("/calls/{key}"),
  slow = j.rpc.Get("/slow", { query = { "s" }, timeout = 0.3 }),
  missing = j.rpc.Get("/missing"),
  not_json = j.rpc.Get("/not-json"),
  wrong_shape = j.rpc.Get("/wrong-shape", { response = s.object { { "id", s.integer() } } }),
})

local srv, target

setup(function()
  srv = server.start(APP, { "--worker-timeout", "0" })
  target = j.rpc.build(Target, { base_url = "http://127.0.0.1:" .. srv.port })
end)

teardown(function()
  if srv then srv:stop() end
end)

describe("rpc against a jararaca server", function()
  it("sends path params, query (repeated keys), static headers; decodes and validates the answer", function()
    local v, res = target:echo({ id = 42, tag = { "a b", "c&d" }, flag = true })
    assert.is_table(v, res and res.body)
    assert.equal(200, res.status)
    assert.equal(42, v.id)
    assert.equal("/t/echo/42", v.path)
    assert.same({ "a b", "c&d" }, v.query.tag)
    assert.same({ "true" }, v.query.flag)
    assert.equal("rpc-spec", v.headers["x-client"])
    assert.equal("application/json", v.headers.accept)
  end)

  it("keeps the slashes of a {rest:path} parameter and encodes the rest", function()
    local v = assert(target:echo_path({ rest = "a/b c/d" }))
    assert.equal("a/b c/d", v.rest)
  end)

  it("a JSON body through its schema; any 2xx is a success (here 201)", function()
    local v, res = target:create({ body = { name = "widget" } })
    assert.is_table(v, res and res.body)
    assert.equal(201, res.status)
    assert.equal("widget", v.name)
    assert.equal("application/json", v.headers["content-type"])
    assert.equal('{"name":"widget"}', v.body)
  end)

  it("a non-2xx answer: nil, message, 'status', the response with its decoded body", function()
    local v, msg, code, res = target:missing()
    assert.is_nil(v)
    assert.equal("status", code)
    assert.truthy(msg:find("Target.missing: GET http://127.0.0.1:%d+/t/missing answered 404"), msg)
    assert.equal(404, res.status)
    assert.equal("no such thing", res.json.detail)
  end)

  it("an answer that is not JSON, or does not fit the schema: 'invalid'", function()
    local v, msg, code, res = target:not_json()
    assert.is_nil(v)
    assert.equal("invalid", code)
    assert.truthy(msg:find("not JSON"), msg)
    assert.equal("{oops", res.body)
    v, msg, code, res = target:wrong_shape()
    assert.is_nil(v)
    assert.equal("invalid", code)
    assert.truthy(msg:find("does not match its schema: id:"), msg)
    assert.equal("not a number", res.json.id)
  end)

  it("retries 503 with backoff, then succeeds; the server saw every try", function()
    local v = assert(target:flaky({ key = "k1", fail = 2 }))
    assert.equal(3, v.calls)
    assert.equal(3, assert(target:calls({ key = "k1" })).calls)
    -- more failures than tries: the last 503 comes back
    local _, _, code, res = target:flaky({ key = "k2", fail = 5 })
    assert.equal("status", code)
    assert.equal(503, res.status)
    assert.equal(3, assert(target:calls({ key = "k2" })).calls)
  end)

  it("does not retry a POST (not idempotent) even with a retry policy", function()
    local _, _, code, res = target:create_retried({ key = "k3", fail = 1 })
    assert.equal("status", code)
    assert.equal(503, res.status)
    assert.equal(1, assert(target:calls({ key = "k3" })).calls)
  end)

  it("a route's timeout ends the call with 'timeout'", function()
    local v, msg, code = target:slow({ s = 1 })
    assert.is_nil(v)
    assert.equal("timeout", code, msg)
    -- the pool still serves calls after a timed-out one
    assert.truthy(target:slow({ s = 0 }))
  end)

  it("a call under j.timeout is cancelled with its task; the pool goes on", function()
    local ok, msg, code = j.timeout(0.1, target.slow, target, { s = 1 })
    assert.is_nil(ok)
    assert.equal("timeout", code, msg)
    assert.truthy(target:slow({ s = 0 }))
  end)

  it("nothing listening: 'refused', retried like the route says", function()
    local dead = j.rpc.build(Target, { base_url = "http://127.0.0.1:" .. client.free_port() })
    local v, msg, code = dead:missing()
    assert.is_nil(v)
    assert.equal("refused", code, msg)
    v, msg, code = dead:flaky({ key = "x" })
    assert.is_nil(v)
    assert.equal("refused", code, msg)
  end)

  it("bearer, basic and api-key credentials reach the server", function()
    local function seen_with(mw)
      local c = j.rpc.build(Target, { base_url = "http://127.0.0.1:" .. srv.port, middlewares = { mw } })
      return assert(c:echo({ id = 1 }))
    end
    assert.equal("Bearer t0k", seen_with(j.rpc.bearer(function() return "t0k" end)).headers.authorization)
    assert.equal("Basic dXNlcjpwYXNz", seen_with(j.rpc.basic("user", "pass")).headers.authorization)
    assert.equal("k-1", seen_with(j.rpc.api_key("k-1")).headers["x-api-key"])
    assert.same({ "k-2" }, seen_with(j.rpc.api_key("k-2", { query = "api_key" })).query.api_key)
  end)

  it("many concurrent calls share the pool", function()
    local fns = {}
    for i = 1, 20 do fns[i] = function() return (assert(target:echo({ id = i }))).id end end
    local got = { j.gather(unpack(fns)) }
    for i = 1, 20 do assert.equal(i, got[i]) end
  end)
end)

describe("rpc tracing against a jararaca server", function()
  it("sends the CLIENT span's traceparent, tracestate and baggage", function()
    local mem = memory.new()
    tracing.configure { exporter = mem.export, batch_size = 1 }
    local ok, v = pcall(j.start_span, "caller", function(outer)
      outer.tracestate, outer.baggage = "vendor=x1", "user=alice"
      return assert(target:echo({ id = 7 }))
    end)
    tracing.configure(nil)
    assert(ok, v)
    local sp = mem.find("GET /t/echo/{id:int}")
    assert.equal("client", sp.kind)
    assert.equal(mem.find("caller").span_id, sp.parent_id)
    assert.equal(sp:traceparent(), v.headers.traceparent)
    assert.equal("vendor=x1", v.headers.tracestate)
    assert.equal("user=alice", v.headers.baggage)
    assert.equal(200, sp.attributes["http.response.status_code"])
  end)
end)

describe("rpc over HTTPS (openssl s_server, a certificate made here)", function()
  local dir, tls_srv, port, cert

  setup(function()
    dir = files.temp_dir("rpctls")
    cert = dir .. "/cert.pem"
    local status, _, err = run.run({ "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout", dir .. "/key.pem", "-out", cert }, 60)
    assert(status == 0, err)
    port = client.free_port()
    tls_srv = assert(process.spawn { "openssl", "s_server", "-quiet", "-www", "-accept", tostring(port),
      "-cert", cert, "-key", dir .. "/key.pem", stdout = dir .. "/out.log", stderr = dir .. "/out.log" })
    wait.until_true(function()
      local c = client.connect(port, 1)
      if c then c:close() end
      return c ~= nil
    end, "openssl s_server listens", 15)
  end)

  teardown(function()
    if tls_srv then run.stop(tls_srv) end
    if dir then files.remove_dir(dir) end
  end)

  local Root = j.RestClient("", { root = j.rpc.Get("/", { raw = true }) })

  it("verifies the server with its CA file", function()
    local c = j.rpc.build(Root, { base_url = "https://localhost:" .. port, http = { tls = { ca_file = cert } } })
    local res, msg, code = c:root()
    assert.is_table(res, tostring(msg) .. " " .. tostring(code))
    assert.equal(200, res.status)
    assert.truthy(res.body:find("s_server", 1, true), res.body)
  end)

  it("refuses an unknown CA, and a name the certificate is not for: 'tls'", function()
    local c = j.rpc.build(Root, { base_url = "https://localhost:" .. port, http = {} })
    local res, msg, code = c:root()
    assert.is_nil(res)
    assert.equal("tls", code, msg)
    -- 127.0.0.2 reaches the same listener; the certificate names 127.0.0.1 and localhost only
    c = j.rpc.build(Root, { base_url = "https://127.0.0.2:" .. port, http = { tls = { ca_file = cert } } })
    res, msg, code = c:root()
    assert.is_nil(res)
    assert.equal("tls", code, msg)
  end)
end)
