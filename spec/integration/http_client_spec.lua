-- jararaca.core.http_client (bindings/l_http_client.c, core/http_client*.c)
-- from tasks against the real binary serving spec/integration/apps/basic.lua:
-- responses as tables, many concurrent requests over a bounded pool,
-- cancellation by j.timeout, failures as nil, msg, code, misuse raising.
local http = require "jararaca.core.http_client"
local j = require "jararaca"
local cjson = require "cjson"
local server = require "spec.support.server"
local tcp = require "spec.support.client"
local wait = require "spec.support.wait"

describe("jararaca.core.http_client", function()
  local srv, base

  setup(function()
    srv = server.start("spec/integration/apps/basic.lua")
    base = "http://127.0.0.1:" .. srv.port
  end)

  teardown(function()
    assert.equal(0, srv:stop())
  end)

  it("answers a GET as { status, headers (lowercased), body }", function()
    local c = http.new()
    local res = assert(c:request { url = base .. "/hello?name=rpc", headers = { Accept = "application/json" } })
    assert.equal(200, res.status)
    assert.equal("application/json", res.headers["content-type"])
    assert.equal('{"message":"Hello rpc"}', res.body)
    assert.equal(tostring(#res.body), res.headers["content-length"])
    c:close()
  end)

  it("sends a body and headers given as a list of pairs", function()
    local c = http.new()
    local res = assert(c:request {
      method = "POST", url = base .. "/echo", body = '{"a":[1,2]}',
      headers = { { "content-type", "application/json" }, { "x-n", 42 } },
      timeout = 5,
    })
    assert.equal(200, res.status)
    local got = cjson.decode(res.body)
    assert.equal('{"a":[1,2]}', got.body)
    assert.same({ a = { 1, 2 } }, got.json)
    assert.equal("application/json", got.ct)
    -- another status and an empty body
    res = assert(c:request { method = "DELETE", url = base .. "/nothing" })
    assert.equal(204, res.status)
    assert.equal("", res.body)
    c:close()
  end)

  it("gathers 100 requests over 8 connections", function()
    local c = http.new { max_per_origin = 8 }
    local fns = {}
    for i = 1, 100 do
      fns[i] = function()
        local res = assert(c:request { url = base .. "/info/" .. i .. "/x" })
        return cjson.decode(res.body).id
      end
    end
    local ids = { j.gather(unpack(fns)) }
    for i = 1, 100 do assert.equal(i, ids[i]) end
    local st = c:stats()
    assert.equal(8, st.connections)
    assert.equal(8, st.idle)
    assert.equal(0, st.in_use)
    assert.equal(0, st.queued)
    assert.equal(100, st.requests)
    assert.equal(92, st.reused)
    c:close()
    assert.equal(0, c:stats().connections)
  end)

  it("closes the connection of a request whose task j.timeout cancels", function()
    local c = http.new()
    local ok, msg, code = j.timeout(0.05, function()
      return c:request { url = base .. "/sleep?s=2" }
    end)
    assert.is_nil(ok)
    assert.equal("timeout", code)
    assert.matches("timed out", msg)
    -- the cancelled task aborts its request when it runs: not pooled
    wait.until_true(function() return c:stats().connections == 0 end, "the connection is closed")
    assert.equal(0, c:stats().idle)
    -- the client goes on with a new connection
    assert.equal(200, assert(c:request { url = base .. "/hello" }).status)
    assert.equal(1, c:stats().connections)
    c:close()
  end)

  it("fails as nil, msg, code: timeout, refused, resolve, closed", function()
    local c = http.new()
    local res, msg, code = c:request { url = base .. "/sleep?s=2", timeout = 0.05 }
    assert.is_nil(res)
    assert.equal("timeout", code)
    assert.matches("timed out", msg)
    assert.equal(0, c:stats().connections)

    local port = tcp.free_port()
    res, msg, code = c:request { url = "http://127.0.0.1:" .. port .. "/" }
    assert.is_nil(res)
    assert.equal("refused", code)
    assert.matches("cannot connect to http://127.0.0.1:" .. port, msg, 1, true)

    res, msg, code = c:request { url = "http://no-such-host.invalid/" }
    assert.is_nil(res)
    assert.equal("resolve", code)
    assert.matches("cannot resolve the host of http://no-such-host.invalid:80", msg, 1, true)

    -- closed while a request waits, and after
    local t = j.spawn(function() return c:request { url = base .. "/sleep?s=2" } end)
    wait.until_true(function() return c:stats().in_use == 1 end, "the request holds a connection", 5, 0)
    c:close()
    local r = { t:wait() }
    assert.same({ true, nil, "the HTTP client was closed", "closed" }, { r[1], r[2], r[3], r[4] })
    res, msg, code = c:request { url = base .. "/hello" }
    assert.is_nil(res)
    assert.equal("the HTTP client is closed", msg)
    assert.equal("closed", code)
    c:close() -- idempotent
  end)

  it("raises on misuse", function()
    local c = http.new()
    assert.has_error(function() c:request("http://x/") end, "client:request(req): req must be a table")
    assert.error_matches(function() c:request { url = "ftp://x/" } end, "must start with http:// or https://")
    assert.error_matches(function() c:request {} end, "req.url must be a string")
    assert.error_matches(function() c:request { url = base, headers = { ["bad name"] = "x" } } end,
      "bad header name")
    assert.error_matches(function() c:request { url = base, headers = { x = "a\r\nb" } } end, "CR, LF or NUL")
    assert.error_matches(function() http.new { nope = 1 } end, "unknown option nope")
    assert.error_matches(function() http.new { tls = { ca_file = "/nonexistent.pem" } } end, "cannot read")
    c:close()
  end)
end)
