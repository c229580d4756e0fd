-- jararaca.rpc: declaring clients and the mapping of a call to a request
-- and of a response to a value, against a recording transport (no
-- network: spec/integration/rpc_spec.lua runs the same against real servers).
local j = require "jararaca"
local s = j.schema
local json = j.json
local tracing = require "jararaca.tracing"
local memory = require "jararaca.tracing.memory"

-- A transport that records each request and answers from a script: a list
-- of responses (or { nil, msg, code } failures), the last one repeated.
local function fake(script)
  local t = { seen = {} }
  t.fn = function(req)
    t.seen[#t.seen + 1] = req
    local r = script[math.min(#t.seen, #script)]
    if r[1] == nil and r[2] then return nil, r[2], r[3] end
    return { status = r.status or 200, headers = r.headers or { ["content-type"] = "application/json" },
      body = r.body or "" }
  end
  return t
end

local Pong = s.object("RpcSpecPong", { { "id", s.integer() }, { "at", s.datetime():optional() } })

local Hello = j.RestClient("/hello", {
  ping = j.rpc.Get("/ping/{id}", { params = { id = s.integer { minimum = 1 } }, query = { "verbose", "tag" },
    headers = { ["X-Client"] = "spec", ["x-request-id"] = s.string():optional() }, response = Pong }),
  create = j.rpc.Post("/items", { body = s.object { { "name", s.string() } } }),
  raw_file = j.rpc.Get("/files/{p:path}", { raw = true }),
  plain = j.rpc.Put("/plain/{name}", { content_type = "text/plain" }),
  typed_query = j.rpc.Get("/q", { query = { page = s.integer():default(1), ids = s.array(s.integer()):optional() } }),
  created = j.rpc.Post("/made", { success = { 201 } }),
})

local function build(script, opts)
  local t = fake(script)
  opts = opts or {}
  opts.base_url = opts.base_url or "http://127.0.0.1:9/api/"
  opts.transport = t.fn
  return j.rpc.build(Hello, opts), t
end

describe("rpc: declaring", function()
  it("RestClient keeps routes and checks options where they are declared", function()
    assert.truthy(j.rpc.is_client(Hello))
    assert.equal("HelloClient", Hello.__rest_client.name)
    assert.has_error(function() j.rpc.Get("/x", { nope = 1 }) end,
      'rpc.Get("/x"): unknown option "nope" (expected body, content_type, description, headers, middlewares, name, params, query, raw, response, response_hooks, retry, success, timeout)')
    assert.has_error(function() j.rpc.Get("x") end, 'rpc.Get("x"): path must start with "/" (or be "")')
    assert.has_error(function() j.rpc.Get("/x", { success = { 999 } }) end)
    assert.has_error(function() j.rpc.Get("/x", { retry = { attempts = 0 } }) end)
    assert.has_error(function() j.rpc.Get("/x", { retry = { on_error = { "nope" } } }) end)
    assert.has_error(function() j.rpc.Get("/x", { retry = { on_error = { refused = true } } }) end,
      'rpc.Get("/x"): retry.on_error: expected a list of codes, got the key "refused"')
    assert.has_error(function() j.rpc.Get("/x", { description = 1 }) end,
      'rpc.Get("/x"): description: expected a string, got 1')
    assert.has_error(function() j.rpc.Get("/x", { raw = true, response = Pong }) end)
    local ok, err = pcall(function() local c = j.RestClient("/a/", {}); return c end)
    assert.falsy(ok)
    assert.truthy(err:find("rpc_client_spec.lua", 1, true), err)
  end)

  it("build checks the template with the server's router, and the base URL", function()
    local Bad = j.RestClient("/b", { r = j.rpc.Get("/x/{id") })
    local ok, err = pcall(j.rpc.build, Bad, { base_url = "http://h", transport = function() end })
    assert.falsy(ok)
    assert.truthy(err:find("rpc route BClient.r (GET /b/x/{id)", 1, true), err)
    local Bad2 = j.RestClient("/b", { r = j.rpc.Get("/x", { params = { id = s.integer() } }) })
    ok, err = pcall(j.rpc.build, Bad2, { base_url = "http://h", transport = function() end })
    assert.falsy(ok)
    assert.truthy(err:find("params.id: the path /b/x has no {id} parameter", 1, true), err)
    assert.has_error(function() j.rpc.build(Hello, { base_url = "ftp://x" }) end)
    -- the pool's options are checked by build, not at the first call
    ok, err = pcall(function() local c = j.rpc.build(Hello, { base_url = "http://h", http = { max_per_orign = 4 } }); return c end)
    assert.falsy(ok)
    assert.truthy(err:find("rpc_client_spec.lua:%d+: rpc.build%(HelloClient%): http: .*unknown option max_per_orign"), err)
    assert.truthy(j.rpc.build(Hello, { base_url = "http://h", http = { max_per_origin = 4 } }))
    assert.has_error(function() j.rpc.build({}, { base_url = "http://x" }) end)
  end)
end)

describe("rpc: a call's request", function()
  it("maps path params, query (untyped, arrays repeat), headers and the base URL", function()
    local c, t = build({ { body = '{"id":3,"extra":1}' } })
    local v, res = c:ping({ id = 3, verbose = true, tag = { "a b", "c/d" }, ["x-request-id"] = "r1" })
    assert.same({ id = 3 }, v) -- cleaned by the schema: extra dropped
    assert.equal(200, res.status)
    local req = t.seen[1]
    assert.equal("GET", req.method)
    assert.equal("http://127.0.0.1:9/api/hello/ping/3?tag=a%20b&tag=c%2Fd&verbose=true", req.url)
    assert.equal("spec", req.headers["x-client"])
    assert.equal("r1", req.headers["x-request-id"])
    assert.equal("application/json", req.headers.accept)
    assert.is_nil(req.body)
    assert.equal(30, req.timeout)
  end)

  it("encodes path segments; a {p:path} keeps its slashes; raw returns the response", function()
    local c, t = build({ { body = "bytes", headers = { ["content-type"] = "application/octet-stream" } } })
    local res = c:raw_file({ p = "a b/c?d" })
    assert.equal("http://127.0.0.1:9/api/hello/files/a%20b/c%3Fd", t.seen[1].url)
    assert.equal("bytes", res.body)
    assert.equal(200, res.status)
  end)

  it("sends a body: JSON through its schema, or raw text with the route's content type", function()
    local c, t = build({ { status = 200, body = "" } })
    assert.equal(true, (c:create({ body = { name = "x", dropped = 1 } })))
    assert.equal('{"name":"x"}', t.seen[1].body)
    assert.equal("application/json", t.seen[1].headers["content-type"])
    assert.equal(true, (c:plain({ name = "n", body = "hello" })))
    assert.equal("hello", t.seen[2].body)
    assert.equal("text/plain", t.seen[2].headers["content-type"])
    assert.equal("PUT", t.seen[2].method)
  end)

  it("typed query values: defaults, arrays, validation", function()
    local c, t = build({ { body = "[]" } })
    c:typed_query({ ids = { 1, 2 } })
    assert.equal("http://127.0.0.1:9/api/hello/q?ids=1&ids=2&page=1", t.seen[1].url)
  end)

  it("arguments that do not fit: nil, message, 'invalid', every error; nothing is sent", function()
    local c, t = build({ { body = "{}" } })
    local v, msg, code, errs = c:ping({ id = 0, tag = { {} } })
    assert.is_nil(v)
    assert.equal("invalid", code)
    assert.truthy(msg:find("^HelloClient.ping: invalid arguments: path.id: "), msg)
    assert.equal(2, #errs)
    assert.same({ "query", "tag" }, errs[2].loc)
    v, msg, code = c:ping({})
    assert.is_nil(v)
    assert.equal("invalid", code)
    assert.truthy(msg:find("path.id", 1, true), msg)
    local errs1 = errs
    v, msg, code, errs = c:create({ body = { name = 5 } })
    assert.is_nil(v, msg)
    assert.equal("invalid", code)
    assert.same({ "body", "name" }, errs[1].loc)
    assert.equal(0, #t.seen)
    -- each failed call has its own list, untouched by the calls after it
    assert.are_not.equal(errs1, errs)
    assert.equal(2, #errs1)
    assert.same({ "query", "tag" }, errs1[2].loc)
    assert.equal(1, #errs)
    -- a call whose argument raised half way leaves nothing for the next one
    local Z = j.RestClient("/z", { r = j.rpc.Post("/{id:int}", { body = s.ref("RpcSpecNoSuchSchema") }) })
    local z = j.rpc.build(Z, { base_url = "http://h", transport = t.fn })
    assert.has_error(function() z:r({ id = "x", body = {} }) end) -- an error for id, then the ref raises
    v, msg, code, errs = z:r({ id = "y" })
    assert.is_nil(v)
    assert.equal("invalid", code, msg)
    assert.equal(2, #errs) -- only its own: path.id and the body left out
    assert.same({ "path", "id" }, errs[1].loc)
    assert.same({ "body" }, errs[2].loc)
  end)

  it("refuses path values that would climb the path: '.', '..', a '..' segment of a {p:path}", function()
    local c, t = build({ { body = "x" } })
    for _, bad in ipairs { "..", "a/../b", "./a", "." } do
      local v, _, code, errs = c:raw_file({ p = bad })
      assert.is_nil(v)
      assert.equal("invalid", code)
      assert.same({ "path", "p" }, errs[1].loc)
    end
    assert.is_nil((c:plain({ name = ".." })))
    assert.equal(0, #t.seen)
    assert.truthy(c:raw_file({ p = "a/..b/c." }))
  end)

  it("misuse raises at the caller: unknown argument, not a method call", function()
    local c = build({ { body = "{}" } })
    local ok, err = pcall(function() local r = c:ping({ idd = 3 }); return r end)
    assert.falsy(ok)
    assert.truthy(err:find("rpc_client_spec.lua:%d+: HelloClient.ping: unknown argument \"idd\""), err)
    ok, err = pcall(function() return c.ping({ id = 3 }) end)
    assert.falsy(ok)
    assert.truthy(err:find("call it as a method", 1, true), err)
  end)

  it("per-call options: timeout and headers", function()
    local c, t = build({ { body = '{"id":1}' } }, { timeout = 7, headers = { ["X-Build"] = "b" } })
    c:ping({ id = 1 }, { timeout = 2, headers = { ["X-Call"] = "c" } })
    assert.equal(2, t.seen[1].timeout)
    assert.equal("b", t.seen[1].headers["x-build"])
    assert.equal("c", t.seen[1].headers["x-call"])
    c:ping({ id = 1 })
    assert.equal(7, t.seen[2].timeout)
    -- a misspelt option raises at the caller, naming it; nothing is sent
    local ok, err = pcall(function() local v = c:ping({ id = 1 }, { timeot = 1 }); return v end)
    assert.falsy(ok)
    assert.truthy(err:find('rpc_client_spec.lua:%d+: HelloClient.ping%(args, opts%): unknown option "timeot" %(expected headers, timeout%)'), err)
    assert.equal(2, #t.seen)
    -- so do headers the transport would refuse, here, naming the route
    for _, h in ipairs({ { ["bad name"] = "x" }, { ["x-a"] = "1\r\nx-b: 2" }, { ["x-a"] = {} } }) do
      ok, err = pcall(function() local v = c:ping({ id = 1 }, { headers = h }); return v end)
      assert.falsy(ok)
      assert.truthy(err:find('rpc_client_spec.lua:%d+: HelloClient.ping%(args, opts%): opts.headers%["[%w %-]+"%]: expected a header name'), err)
    end
    assert.equal(2, #t.seen)
    c:ping({ id = 1 }, { headers = { ["X-N"] = 5 } })
    assert.equal("5", t.seen[3].headers["x-n"])
  end)
end)

describe("rpc: a call's answer", function()
  it("success is any 2xx unless the route lists its statuses", function()
    local c = build({ { status = 204 } })
    assert.equal(true, (c:create({ body = { name = "x" } })))
    c = build({ { status = 200, body = "{}" } })
    local v, msg, code, res = c:created()
    assert.is_nil(v)
    assert.equal("status", code)
    assert.equal(200, res.status)
    assert.truthy(msg:find("POST http://127.0.0.1:9/api/hello/made answered 200", 1, true), msg)
  end)

  it("a non-success status: nil, message, 'status', the response with its decoded body", function()
    local c = build({ { status = 404, body = '{"detail":"no such item"}' } })
    local v, msg, code, res = c:ping({ id = 9 })
    assert.is_nil(v)
    assert.equal("status", code)
    assert.truthy(msg:find("answered 404"), msg)
    assert.equal(404, res.status)
    assert.equal("no such item", res.json.detail)
  end)

  it("a response that is not JSON or does not fit its schema is 'invalid'", function()
    local c = build({ { body = "not json" } })
    local v, msg, code, res = c:ping({ id = 1 })
    assert.is_nil(v)
    assert.equal("invalid", code)
    assert.truthy(msg:find("not JSON"), msg)
    assert.equal("not json", res.body)
    c = build({ { body = '{"id":"x"}' } })
    v, msg, code, res = c:ping({ id = 1 })
    assert.is_nil(v)
    assert.equal("invalid", code)
    assert.truthy(msg:find("does not match its schema: id: "), msg)
    assert.same({ "id" }, res.errors[1].loc)
  end)

  it("text that is not JSON comes back as text when no schema asks for JSON", function()
    local c = build({ { body = "hi", headers = { ["content-type"] = "text/plain" } } })
    assert.equal("hi", (c:plain({ name = "x" })))
  end)

  it("transport failures come back with the transport's code", function()
    local c = build({ { nil, "connection refused", "refused" } })
    local v, msg, code = c:ping({ id = 1 })
    assert.is_nil(v)
    assert.equal("refused", code)
    assert.equal("HelloClient.ping: GET http://127.0.0.1:9/api/hello/ping/1: connection refused", msg)
  end)

  it("a response hook that returns a table that is not a response raises, naming the route", function()
    local c = build({ { body = '{"id":1}' } }, { response_hooks = { function(res) return { body = res.body } end } })
    local ok, err = pcall(function() local v = c:ping({ id = 1 }); return v end)
    assert.falsy(ok)
    assert.equal("HelloClient.ping: response hook 1 returned a table without a numeric status, not a response", err)
  end)

  it("a transport that returns neither a response nor nil, message, code raises, naming the route", function()
    for _, bad in ipairs({ function() end, function() return {} end, function() return nil, "x" end }) do
      local c = j.rpc.build(Hello, { base_url = "http://h", transport = bad })
      local ok, err = pcall(function() local v = c:ping({ id = 1 }); return v end)
      assert.falsy(ok)
      assert.truthy(err:find("HelloClient.ping: the transport returned", 1, true), err)
    end
  end)
end)

describe("rpc: cancellation", function()
  it("a call whose task is cancelled raises j.CANCELLED (no retry, no value)", function()
    local c, t = build({ { nil, "the task was cancelled", "cancelled" } }, { retry = { attempts = 3, backoff = 0 } })
    local ok, err = pcall(function() local v = c:ping({ id = 1 }); return v end)
    assert.falsy(ok)
    assert.equal(j.CANCELLED, err)
    assert.equal(1, #t.seen)
  end)
end)

describe("rpc: retries", function()
  local R = j.RestClient("/r", {
    get = j.rpc.Get("/x", { retry = { attempts = 3, backoff = 0 } }),
    post = j.rpc.Post("/x", { retry = { attempts = 3, backoff = 0 } }),
    post_unsafe = j.rpc.Post("/x", { retry = { attempts = 3, backoff = 0, unsafe = true } }),
    slow = j.rpc.Get("/x", { retry = { attempts = 2, backoff = 0.05 } }),
    none = j.rpc.Get("/x", { retry = false }),
  })
  local function rb(script, opts)
    local t = fake(script)
    opts = opts or {}
    opts.base_url, opts.transport = "http://h", t.fn
    return j.rpc.build(R, opts), t
  end

  it("retries a listed status, then succeeds", function()
    local c, t = rb({ { status = 503 }, { status = 502 }, { status = 200, body = "[1]" } })
    local v = c:get()
    assert.same({ 1 }, v)
    assert.equal(3, #t.seen)
  end)

  it("retries transport failures; gives up after the attempts with the last failure", function()
    local c, t = rb({ { nil, "refused", "refused" } })
    local v, _, code = c:get()
    assert.is_nil(v)
    assert.equal("refused", code)
    assert.equal(3, #t.seen)
    c, t = rb({ { status = 503, body = '{"e":1}' } })
    local _, _, code2, res = c:get()
    assert.equal("status", code2)
    assert.equal(503, res.status)
    assert.equal(3, #t.seen)
  end)

  it("does not retry a POST unless the route says unsafe = true", function()
    local c, t = rb({ { status = 503 } })
    c:post()
    assert.equal(1, #t.seen)
    c, t = rb({ { status = 503 }, { status = 200 } })
    assert.equal(true, (c:post_unsafe()))
    assert.equal(2, #t.seen)
  end)

  it("the client's retry applies unless the route says retry = false", function()
    local c, t = rb({ { status = 503 } }, { retry = { attempts = 2, backoff = 0 } })
    c:none()
    assert.equal(1, #t.seen)
    -- a client's retry = false: none for its routes, though the build has some
    local NoRetry = j.RestClient("/n", { retry = false, get = j.rpc.Get("/x") })
    t = fake({ { status = 503 } })
    c = j.rpc.build(NoRetry, { base_url = "http://h", transport = t.fn, retry = { attempts = 3, backoff = 0 } })
    c:get()
    assert.equal(1, #t.seen)
  end)

  it("backs off exponentially up to max_backoff; Retry-After asks for longer", function()
    local delay = require("jararaca.rpc.call").delay
    local r = { backoff = 0.1, max_backoff = 0.5 }
    assert.equal(0.1, delay(r, 1))
    assert.equal(0.2, delay(r, 2))
    assert.equal(0.4, delay(r, 3))
    assert.equal(0.5, delay(r, 4))
    assert.equal(0.3, delay(r, 1, { headers = { ["retry-after"] = "0.3" } }))
    assert.equal(0.5, delay(r, 1, { headers = { ["retry-after"] = "120" } }))
    assert.equal(0.2, delay(r, 2, { headers = { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" } }))
    -- an HTTP-date ahead asks for longer too (IMF-fixdate, RFC 9110 10.2.3)
    local ahead = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 100)
    assert.equal(0.5, delay(r, 1, { headers = { ["retry-after"] = ahead } }))
    assert.equal(0.1, delay(r, 1, { headers = { ["retry-after"] = "soon" } }))
    -- the delay of each retry is on its span event
    local mem = memory.new()
    tracing.configure { exporter = mem.export, batch_size = 1 }
    local c = rb({ { status = 503 }, { status = 200 } })
    local ok, err = pcall(function() assert.equal(true, (c:slow())) end)
    tracing.configure(nil)
    assert(ok, err)
    assert.equal(0.05, mem.find("GET /r/x").events[1].attributes["retry.delay_s"])
  end)
end)

describe("rpc: middlewares and hooks", function()
  it("bearer, basic and api_key set what the server reads", function()
    local c, t = build({ { body = '{"id":1}' } }, { middlewares = { j.rpc.bearer("tok") } })
    c:ping({ id = 1 })
    assert.equal("Bearer tok", t.seen[1].headers.authorization)
    c, t = build({ { body = '{"id":1}' } }, { middlewares = { j.rpc.basic("Aladdin", "open sesame") } })
    c:ping({ id = 1 })
    assert.equal("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", t.seen[1].headers.authorization)
    c, t = build({ { body = '{"id":1}' } }, { middlewares = { j.rpc.api_key(function() return "k1" end) } })
    c:ping({ id = 1 })
    assert.equal("k1", t.seen[1].headers["x-api-key"])
    c, t = build({ { body = '{"id":1}' } }, { middlewares = { j.rpc.api_key("k2", { query = "key" }) } })
    c:ping({ id = 1 })
    assert.truthy(t.seen[1].url:find("?key=k2", 1, true), t.seen[1].url)
  end)

  it("a middleware may change the request or fail the call; hooks see the response", function()
    local seen
    local c, t = build({ { body = '{"id":1}' } }, {
      middlewares = { function(req) req.headers["x-mw"] = req.name end },
      response_hooks = { function(res, req) seen = res.status .. " " .. req.route end },
    })
    c:ping({ id = 1 })
    assert.equal("HelloClient.ping", t.seen[1].headers["x-mw"])
    assert.equal("200 /hello/ping/{id}", seen)
    c, t = build({ { body = "{}" } }, { middlewares = { j.rpc.bearer(function() return nil, "no token", "unauthorized" end) } })
    local v, msg, code = c:ping({ id = 1 })
    assert.is_nil(v)
    assert.equal("unauthorized", code)
    assert.equal("HelloClient.ping: no token", msg)
    assert.equal(0, #t.seen)
    c, t = build({ { body = "{}" } }, { middlewares = { function() return nil, "not now" end } })
    v, msg, code = c:ping({ id = 1 })
    assert.is_nil(v)
    assert.equal("error", code) -- no code given
    assert.equal("HelloClient.ping: not now", msg)
    assert.equal(0, #t.seen)
  end)
end)

describe("rpc: tracing", function()
  local mem
  before_each(function()
    mem = memory.new()
    tracing.configure { exporter = mem.export, batch_size = 1 }
  end)
  after_each(function() tracing.configure(nil) end)

  it("a call is a CLIENT span, child of the current one, whose traceparent is sent", function()
    local c, t = build({ { status = 503 }, { body = '{"id":1}' } }, { retry = { attempts = 2, backoff = 0 } })
    local parent
    j.start_span("outer", function(o)
      parent = o
      assert.same({ id = 1 }, (c:ping({ id = 1 })))
    end)
    local sp = mem.find("GET /hello/ping/{id}")
    assert.equal("client", sp.kind)
    assert.equal(parent.span_id, sp.parent_id)
    assert.equal(parent.trace_id, sp.trace_id)
    assert.equal(sp:traceparent(), t.seen[1].headers.traceparent)
    assert.equal(sp:traceparent(), t.seen[2].headers.traceparent)
    assert.equal(200, sp.attributes["http.response.status_code"])
    assert.equal(1, sp.attributes["http.request.resend_count"])
    assert.equal("http://127.0.0.1:9/api/hello/ping/1", sp.attributes["url.full"])
    assert.equal("retry", sp.events[1].name)
  end)

  it("a failed call sets the span's status to error", function()
    local c = build({ { status = 500 } })
    c:ping({ id = 1 })
    local sp = mem.find("GET /hello/ping/{id}")
    assert.equal("error", sp.status.code)
    assert.equal("status", sp.attributes["error.type"])
  end)

  it("a middleware or a response hook that raises makes the call raise, its span ended with the error", function()
    local boom = {}
    local c, t = build({ { body = '{"id":1}' } }, { middlewares = { function() error(boom) end } })
    local ok, err = pcall(function() local v = c:ping({ id = 1 }); return v end)
    assert.falsy(ok)
    assert.equal(boom, err) -- the same value
    assert.equal(0, #t.seen) -- nothing sent
    c, t = build({ { body = '{"id":1}' } }, { response_hooks = { function() error("hook failed", 0) end } })
    ok, err = pcall(function() local v = c:ping({ id = 1 }); return v end)
    assert.falsy(ok)
    assert.equal("hook failed", err)
    assert.equal(1, #t.seen)
    assert.equal(2, #mem.spans)
    for _, sp in ipairs(mem.spans) do
      assert.equal("GET /hello/ping/{id}", sp.name)
      assert.equal("error", sp.status.code)
      assert.equal("exception", sp.events[1].name)
    end
  end)

  it("tracing off: no span, no traceparent", function()
    tracing.configure(nil)
    local c, t = build({ { body = '{"id":1}' } })
    c:ping({ id = 1 })
    assert.is_nil(t.seen[1].headers.traceparent)
    assert.equal(0, #mem.spans)
  end)
end)

describe("rpc: as a provider", function()
  it("is built by a factory from configuration and injected", function()
    local t = fake({ { body = '{"id":5}' } })
    local Svc = { __name = "RpcSpecSvc", inject = { hello = "HelloRPC" } }
    Svc.__index = Svc
    local C = j.RestController("/svc", { inject = { svc = Svc } })
    C.get = j.Get("/", function(self) return (self.svc.hello:ping({ id = 5 })) end)
    local app = j.Microservice {
      name = "rpcspec",
      providers = {
        j.ProviderSpec { provide = "HelloURL", use_value = "http://127.0.0.1:9" },
        j.ProviderSpec { provide = "HelloRPC", inject = { base = "HelloURL" }, use_factory = function(d)
          return j.rpc.build(Hello, { base_url = d.base, transport = t.fn })
        end },
        Svc,
      },
      controllers = { C },
    }
    local client = require("jararaca.testing").client(app)
    local res = client:get("/svc/")
    assert.equal(200, res.status, res.body)
    assert.same({ id = 5 }, json.decode(res.body))
    assert.equal("http://127.0.0.1:9/hello/ping/5", t.seen[1].url)
    client:close()
  end)
end)

describe("rpc: a client from a server controller", function()
  local Item = s.object("RpcSpecItem", { { "id", s.integer() }, { "name", s.string() } })
  local Items = j.RestController("/items", { name = "ItemsController" })
  Items.get_item = j.Get("/{id:int}", { params = { id = s.integer { minimum = 1 } }, response = Item },
    function(_, req) return { id = req.params.id, name = "n" .. req.params.id, secret = "dropped" } end)
  Items.search = j.Get("/", { query = { q = s.string(), tags = s.array(s.string()):optional() },
    headers = { ["x-tenant"] = s.string() } },
    function(_, req) return { q = req.query.q, tags = req.query.tags, tenant = req.header_params["x-tenant"] } end)
  Items.create = j.Post("", { status = 201, body = Item, response = Item }, function(_, req) return req.json end)
  Items.ws = j.WebSocketEndpoint("/ws", function() end)

  -- the RPC client's requests dispatched in process by jararaca.testing
  local function through(app)
    local tc = require("jararaca.testing").client(app)
    return tc, function(req)
      local target = req.url:match("^https?://[^/]+(.*)$")
      local r = tc:request(req.method, target, { headers = req.headers, body = req.body })
      return { status = r.status, headers = r.headers, body = r.body }
    end
  end

  it("has the controller's routes, options and schemas; calls reach its handlers", function()
    local tc, transport = through(j.Microservice { name = "rpcitems", controllers = { Items } })
    local ItemsRPC = j.rpc.from_controller(Items)
    assert.equal("ItemsClient", ItemsRPC.__rest_client.name)
    assert.is_nil(ItemsRPC.ws)
    local c = j.rpc.build(ItemsRPC, { base_url = "http://items", transport = transport })
    assert.same({ id = 4, name = "n4" }, (c:get_item({ id = 4 })))
    local v = assert(c:search({ q = "a b", tags = { "x", "y" }, ["x-tenant"] = "t1" }))
    assert.same({ q = "a b", tags = { "x", "y" }, tenant = "t1" }, v)
    local made, res = c:create({ body = { id = 9, name = "new" } })
    assert.same({ id = 9, name = "new" }, made)
    assert.equal(201, res.status)
    -- the server's schemas check the arguments before anything is sent
    local _, _, code, errs = c:get_item({ id = 0 })
    assert.equal("invalid", code)
    assert.same({ "path", "id" }, errs[1].loc)
    _, _, code, errs = c:search({ q = "x" })
    assert.equal("invalid", code)
    assert.same({ "header", "x-tenant" }, errs[1].loc)
    tc:close()
  end)
end)
