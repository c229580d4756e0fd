-- The real binary over real sockets: routing, request/response shapes,
-- keep-alive, pipelining, malformed input, errors and limits.
local client = require "spec.support.client"
local server = require "spec.support.server"
local cjson = require "cjson"

local APP = "spec/integration/apps/basic.lua"

describe("jararaca server (HTTP)", function()
  local srv
  setup(function()
    srv = server.start(APP, {
      "--max-header-size", "2048", "--max-headers", "20", "--max-body-size", "1000",
      "--header-timeout", "0.5", "--body-timeout", "0.5", "--idle-timeout", "1",
    })
  end)
  teardown(function()
    local status = srv:stop()
    assert.equal(0, status)
  end)

  local function get(target, opts)
    return assert(client.request(srv.port, "GET", target, opts))
  end

  it("answers GET /hello with JSON", function()
    local res = get("/hello?name=x")
    assert.equal(200, res.status)
    assert.equal("application/json", res.headers["content-type"])
    assert.equal('{"message":"Hello x"}', res.body)
    assert.equal("21", res.headers["content-length"])
    assert.truthy(res.headers["date"]:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
    assert.equal("yes", res.headers["x-tagged"])
  end)

  it("decodes the query (multi-valued), typed path params, headers, context", function()
    local res = get("/info/-42/caf%C3%A9?a=1&a=2&b=x%20y&c=a+b", {
      headers = { ["X-Multi"] = "one", ["X-Request-Id"] = "my-req-1" },
    })
    assert.equal(200, res.status)
    local b = cjson.decode(res.body)
    assert.equal(-42, b.id)
    assert.equal("café", b.name)
    assert.same({ a = { "1", "2" }, b = { "x y" }, c = { "a b" } }, b.query)
    assert.equal("one", b.headers.x_multi)
    assert.equal("127.0.0.1", b.headers.host)
    assert.equal("http", b.kind)
    assert.equal("info", b.member)
    assert.is_true(b.tagged)
    assert.equal("my-req-1", b.request_id)
    assert.equal("127.0.0.1", b.remote)
  end)

  it("returns 404 and 405 (with Allow) as JSON", function()
    local res = get("/nope")
    assert.equal(404, res.status)
    assert.same({ detail = "Not Found" }, cjson.decode(res.body))
    res = assert(client.request(srv.port, "PUT", "/hello"))
    assert.equal(405, res.status)
    assert.equal("GET, HEAD", res.headers["allow"])
    -- a string where the route wants an int does not match
    assert.equal(404, get("/info/abc/x").status)
  end)

  it("maps handler results to status and content type", function()
    local res = assert(client.request(srv.port, "POST", "/created", { body = "" }))
    assert.equal(201, res.status)
    assert.same({ ok = true }, cjson.decode(res.body))
    res = assert(client.request(srv.port, "DELETE", "/nothing"))
    assert.equal(204, res.status)
    assert.equal("", res.body)
    res = get("/text")
    assert.equal(202, res.status)
    assert.equal("text/plain; charset=utf-8", res.headers["content-type"])
    assert.equal("1", res.headers["x-extra"])
    assert.equal("plain text", res.body)
  end)

  it("echoes a JSON body and rejects bad JSON with 422", function()
    local res = assert(client.request(srv.port, "POST", "/echo", {
      headers = { ["Content-Type"] = "application/json" }, body = '{"a":[1,2]}' }))
    assert.equal(200, res.status)
    local b = cjson.decode(res.body)
    assert.same({ a = { 1, 2 } }, b.json)
    assert.equal("application/json", b.ct)
    res = assert(client.request(srv.port, "POST", "/echo", { body = "{nope" }))
    assert.equal(422, res.status)
    local d = cjson.decode(res.body).detail
    assert.equal("json_invalid", d[1].type)
    assert.same({ "body" }, d[1].loc)
  end)

  it("reads chunked bodies and answers Expect: 100-continue", function()
    local c = assert(client.connect(srv.port))
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
      "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
    local res = assert(c:read_response())
    assert.equal(200, res.status)
    assert.same({ a = 1 }, cjson.decode(res.body).json)
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n")
    local cont = assert(c:read_response())
    assert.equal(100, cont.status)
    c:send('{"b":2}')
    res = assert(c:read_response())
    assert.equal(200, res.status)
    assert.same({ b = 2 }, cjson.decode(res.body).json)
    c:close()
  end)

  it("answers HEAD like GET without a body", function()
    local res = assert(client.request(srv.port, "HEAD", "/hello?name=x"))
    assert.equal(200, res.status)
    assert.equal("21", res.headers["content-length"])
    assert.equal("", res.body)
  end)

  it("serves several requests on one keep-alive connection", function()
    local c = assert(client.connect(srv.port))
    for i = 1, 3 do
      c:send(client.format("GET", "/hello?name=" .. i))
      local res = assert(c:read_response())
      assert.equal(200, res.status)
      assert.equal("keep-alive", res.headers["connection"])
      assert.equal(('{"message":"Hello %d"}'):format(i), res.body)
    end
    c:close()
  end)

  it("answers pipelined requests in order, even when the first is slow", function()
    local c = assert(client.connect(srv.port))
    c:send(client.format("GET", "/sleep?s=0.2") .. client.format("GET", "/hello?name=2")
      .. client.format("GET", "/hello?name=3"))
    local r1 = assert(c:read_response())
    local r2 = assert(c:read_response())
    local r3 = assert(c:read_response())
    assert.same({ slept = 0.2 }, cjson.decode(r1.body))
    assert.equal('{"message":"Hello 2"}', r2.body)
    assert.equal('{"message":"Hello 3"}', r3.body)
    c:close()
  end)

  it("closes after Connection: close and after an HTTP/1.0 request", function()
    local c = assert(client.connect(srv.port))
    c:send(client.format("GET", "/hello", { headers = { Connection = "close" } }))
    local res = assert(c:read_response())
    assert.equal("close", res.headers["connection"])
    assert.is_true(c:closed(2))
    c = assert(client.connect(srv.port))
    c:send("GET /hello HTTP/1.0\r\n\r\n")
    res = assert(c:read_response())
    assert.equal(200, res.status)
    assert.is_true(c:closed(2))
  end)

  it("turns a handler error into a 500 with the request id, logged with a traceback", function()
    local res = get("/boom", { headers = { ["X-Request-Id"] = "boom-1" } })
    assert.equal(500, res.status)
    assert.same({ detail = "Internal Server Error", request_id = "boom-1" }, cjson.decode(res.body))
    local log = srv:output()
    assert.truthy(log:find("[boom-1] unhandled error in GET /boom", 1, true), log)
    assert.truthy(log:find("kaboom in handler", 1, true))
    assert.truthy(log:find("stack traceback", 1, true))
    -- still serving
    assert.equal(200, get("/hello").status)
  end)

  it("answers 500 (and keeps serving) when a handler returns an unsendable status or header", function()
    for _, path in ipairs { "/bad-header", "/bad-status", "/bad-detail" } do
      local res = get(path, { headers = { ["X-Request-Id"] = "bad-" .. path:sub(6) } })
      assert.equal(500, res.status)
      assert.is_nil(res.headers["injected"])
      assert.equal("Internal Server Error", cjson.decode(res.body).detail)
    end
    assert.truthy(srv:output():find("cannot be sent", 1, true))
    assert.equal(200, get("/hello").status)
  end)

  it("turns HTTPError into its status, detail and headers", function()
    local res = get("/teapot")
    assert.equal(418, res.status)
    assert.same({ detail = "short and stout" }, cjson.decode(res.body))
    assert.equal("1", res.headers["x-pot"])
  end)

  it("answers a malformed request with 400, closes, and keeps serving", function()
    local c = assert(client.connect(srv.port))
    c:send("GARBAGE\r\n\r\n")
    local res = assert(c:read_response())
    assert.equal(400, res.status)
    assert.equal("application/json", res.headers["content-type"])
    assert.is_true(c:closed(2))
    c = assert(client.connect(srv.port))
    c:send("GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert.equal(400, assert(c:read_response()).status)
    c:close()
    assert.equal(400, get("/hello%zz").status)
    assert.equal(200, get("/hello").status)
  end)

  it("answers 400 for an HTTP/1.1 request without Host or with two, closes, keeps serving", function()
    for _, raw in ipairs {
      "GET /hello HTTP/1.1\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET /hello HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
    } do
      local c = assert(client.connect(srv.port))
      c:send(raw)
      local res = assert(c:read_response())
      assert.equal(400, res.status)
      assert.equal("application/json", res.headers["content-type"])
      assert.equal("close", res.headers["connection"])
      assert.truthy(cjson.decode(res.body).detail:find("Host", 1, true))
      assert.is_true(c:closed(2))
    end
    -- HTTP/1.0 may leave Host out
    local c = assert(client.connect(srv.port))
    c:send("GET /hello?name=old HTTP/1.0\r\n\r\n")
    local res = assert(c:read_response())
    assert.equal(200, res.status)
    assert.equal('{"message":"Hello old"}', res.body)
    c:close()
    assert.equal(200, get("/hello").status)
  end)

  it("answers 501 for a transfer coding other than chunked, 400 for unusable framing", function()
    local function send(te_lines, version)
      local c = assert(client.connect(srv.port))
      c:send(("POST /echo HTTP/%s\r\nHost: x\r\n%s\r\n3\r\nabc\r\n0\r\n\r\n"):format(version or "1.1", te_lines))
      local res = assert(c:read_response())
      assert.equal("application/json", res.headers["content-type"])
      assert.equal("close", res.headers["connection"])
      assert.is_true(c:closed(2))
      return res
    end
    local res = send("Transfer-Encoding: gzip, chunked\r\n")
    assert.equal(501, res.status)
    assert.equal("Not Implemented", res.reason)
    assert.same({ detail = "transfer codings other than chunked are not implemented" }, cjson.decode(res.body))
    assert.equal(501, send("Transfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n").status)
    assert.equal(400, send("Transfer-Encoding: gzip\r\n").status)               -- chunked not last
    assert.equal(400, send("Transfer-Encoding: chunked, gzip\r\n").status)
    assert.equal(400, send("Transfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n").status)
    assert.equal(400, send("Transfer-Encoding: chunked\r\n", "1.0").status)
    assert.equal(200, get("/hello").status) -- (plain chunked: "reads chunked bodies" above)
  end)

  it("answers 431 for oversized or too many headers", function()
    local res = get("/hello", { headers = { ["X-Big"] = string.rep("a", 3000) } })
    assert.equal(431, res.status)
    local many = {}
    for i = 1, 25 do many["X-H" .. i] = "v" end
    res = get("/hello", { headers = many })
    assert.equal(431, res.status)
    assert.equal(200, get("/hello").status)
  end)

  it("answers 413 for a body over the limit (Content-Length and chunked)", function()
    local res = assert(client.request(srv.port, "POST", "/echo", { body = string.rep("x", 1001) }))
    assert.equal(413, res.status)
    local c = assert(client.connect(srv.port))
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ = 1, 3 do c:send("190\r\n" .. string.rep("y", 400) .. "\r\n") end
    res = assert(c:read_response())
    assert.equal(413, res.status)
    assert.is_true(c:closed(2))
  end)

  it("closes a slowloris client with 408 within the header timeout", function()
    local c = assert(client.connect(srv.port))
    c:send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    local res = assert(c:read_response())
    assert.equal(408, res.status)
    assert.is_true(c:closed(2))
  end)

  it("closes an idle keep-alive connection after the idle timeout", function()
    local c = assert(client.connect(srv.port))
    c:send(client.format("GET", "/hello"))
    assert.equal(200, assert(c:read_response()).status)
    assert.is_true(c:closed(3))
  end)

  it("runs gather concurrently inside a request", function()
    local b = cjson.decode(get("/gather").body)
    assert.equal(6, b.sum)
    assert.is_true(b.elapsed < 0.45, "elapsed " .. b.elapsed)
  end)

  it("keeps provider singletons across requests", function()
    local a = cjson.decode(get("/count").body).n
    local b = cjson.decode(get("/count").body).n
    assert.equal(a + 1, b)
  end)
end)
