-- App-wide middlewares (Microservice.middlewares) and j.cors against a real
-- server: they run before routing (404, 405, OPTIONS), may short-circuit,
-- and their headers reach every answer (404/405/422/500/HTTPError).
local client = require "spec.support.client"
local server = require "spec.support.server"
local cjson = require "cjson"

local ORIGIN = "https://app.example"

-- The app with CORS_MODE = mode, started for the enclosing describe block.
local function serve(mode)
  local box = {}
  setup(function() box.srv = server.start("spec/integration/apps/cors.lua", {}, { CORS_MODE = mode }) end)
  teardown(function() if box.srv then assert.equal(0, (box.srv:stop())) end end)
  return box
end

describe("app-wide middlewares and CORS (allow_origins list, credentials)", function()
  local box = serve("list")

  local function req(method, target, headers, body)
    return assert(client.request(box.srv.port, method, target, { headers = headers, body = body }))
  end

  local function preflight(target, origin, method, headers)
    return req("OPTIONS", target, {
      Origin = origin, ["Access-Control-Request-Method"] = method, ["Access-Control-Request-Headers"] = headers,
    })
  end

  it("answers an allowed preflight before routing, with the allow headers", function()
    local res = preflight("/api/items", ORIGIN, "POST", "X-Token, content-type")
    assert.equal(200, res.status)
    assert.equal("OK", res.body)
    assert.equal(ORIGIN, res.headers["access-control-allow-origin"])
    assert.equal("GET, POST", res.headers["access-control-allow-methods"])
    assert.equal("Accept, Accept-Language, Content-Language, Content-Type, X-Token",
      res.headers["access-control-allow-headers"])
    assert.equal("true", res.headers["access-control-allow-credentials"])
    assert.equal("120", res.headers["access-control-max-age"])
    assert.equal("Origin", res.headers["vary"])
    assert.equal("1", res.headers["x-app"]) -- the outer middleware saw it too
    assert.equal("OPTIONS /api/items", res.headers["x-seen"])
    -- a path no route has: still answered (CORS runs before routing)
    assert.equal(200, preflight("/nowhere", ORIGIN, "GET").status)
  end)

  it("refuses a disallowed preflight with 400 naming what failed", function()
    local res = preflight("/api/items", "https://evil.example", "GET")
    assert.equal(400, res.status)
    assert.equal("Disallowed CORS origin", res.body)
    assert.is_nil(res.headers["access-control-allow-origin"])
    assert.equal("Disallowed CORS method", preflight("/api/items", ORIGIN, "PUT").body)
    assert.equal("Disallowed CORS headers", preflight("/api/items", ORIGIN, "GET", "X-Other").body)
    assert.equal("Disallowed CORS origin, method, headers",
      preflight("/api/items", "https://evil.example", "DELETE", "X-Other").body)
  end)

  it("adds the CORS headers to a simple request from an allowed origin", function()
    local res = req("GET", "/api/items", { Origin = ORIGIN })
    assert.equal(200, res.status)
    assert.equal(ORIGIN, res.headers["access-control-allow-origin"])
    assert.equal("Origin", res.headers["vary"])
    assert.equal("true", res.headers["access-control-allow-credentials"])
    assert.equal("X-Total", res.headers["access-control-expose-headers"])
    assert.equal("0", res.headers["x-total"])
    -- an existing Vary is extended, not replaced
    assert.equal("Accept-Encoding, Origin", req("GET", "/api/vary", { Origin = ORIGIN }).headers["vary"])
  end)

  it("does not allow another origin, and leaves requests without Origin alone", function()
    local res = req("GET", "/api/items", { Origin = "https://evil.example" })
    assert.equal(200, res.status)
    assert.is_nil(res.headers["access-control-allow-origin"])
    res = req("GET", "/api/items")
    assert.equal(200, res.status)
    assert.is_nil(res.headers["access-control-allow-origin"])
    assert.is_nil(res.headers["access-control-allow-credentials"])
    assert.equal("1", res.headers["x-app"])
  end)

  it("puts its headers on 404, 405, 422, 500 and HTTPError answers", function()
    local cases = {
      { "GET", "/nowhere", 404, { detail = "Not Found" } },
      { "DELETE", "/api/items", 405, { detail = "Method Not Allowed" } },
      { "GET", "/api/typed?n=x", 422 },
      { "GET", "/api/boom", 500 },
      { "GET", "/api/teapot", 418, { detail = "tea" } },
    }
    for _, case in ipairs(cases) do
      local res = req(case[1], case[2], { Origin = ORIGIN, ["X-Request-Id"] = "cors-" .. case[3] })
      assert.equal(case[3], res.status)
      assert.equal(ORIGIN, res.headers["access-control-allow-origin"], case[2])
      assert.equal("1", res.headers["x-app"], case[2])
      assert.equal(case[1] .. " " .. case[2]:match("^[^?]*"), res.headers["x-seen"])
      if case[4] then assert.same(case[4], cjson.decode(res.body)) end
    end
    assert.equal("GET, HEAD, POST", req("DELETE", "/api/items", { Origin = ORIGIN }).headers["allow"])
    assert.equal("1", req("GET", "/api/teapot", { Origin = ORIGIN }).headers["x-pot"])
    assert.truthy(box.srv:output():find("[cors-500] unhandled error in GET /api/boom", 1, true))
  end)

  it("decorates what an inner middleware answers or raises", function()
    local res = req("GET", "/api/items", { Origin = ORIGIN, ["X-Block"] = "1" })
    assert.equal(403, res.status)
    assert.same({ detail = "blocked" }, cjson.decode(res.body))
    assert.equal(ORIGIN, res.headers["access-control-allow-origin"])
    res = req("GET", "/api/items", { Origin = ORIGIN, ["X-Explode"] = "1", ["X-Request-Id"] = "mw-boom" })
    assert.equal(500, res.status)
    assert.equal(ORIGIN, res.headers["access-control-allow-origin"])
    assert.equal("1", res.headers["x-app"])
    assert.truthy(box.srv:output():find("[mw-boom] unhandled error in GET /api/items", 1, true))
    assert.truthy(box.srv:output():find("middleware exploded", 1, true))
  end)
end)

describe("CORS with allow_origins = { \"*\" }", function()
  local box = serve("star")

  it("answers * without credentials, echoes the origin when the request has cookies", function()
    local srv = box.srv
    local res = assert(client.request(srv.port, "GET", "/api/items", { headers = { Origin = ORIGIN } }))
    assert.equal("*", res.headers["access-control-allow-origin"])
    assert.is_nil(res.headers["vary"])
    res = assert(client.request(srv.port, "GET", "/api/items", { headers = { Origin = ORIGIN, Cookie = "a=1" } }))
    assert.equal(ORIGIN, res.headers["access-control-allow-origin"])
    assert.equal("Origin", res.headers["vary"])
    res = assert(client.request(srv.port, "OPTIONS", "/api/items", { headers = {
      Origin = "https://any.example", ["Access-Control-Request-Method"] = "PATCH",
      ["Access-Control-Request-Headers"] = "X-Anything" } }))
    assert.equal(200, res.status)
    assert.equal("*", res.headers["access-control-allow-origin"])
    assert.equal("X-Anything", res.headers["access-control-allow-headers"]) -- "*": echoed
    assert.equal("DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT", res.headers["access-control-allow-methods"])
  end)
end)

describe("CORS with allow_origin_regex", function()
  local box = serve("regex")

  it("allows the origins the pattern matches whole", function()
    local srv = box.srv
    local function acao(origin)
      return assert(client.request(srv.port, "GET", "/api/items", { headers = { Origin = origin } }))
        .headers["access-control-allow-origin"]
    end
    assert.equal("https://a-b.example.org", acao("https://a-b.example.org"))
    assert.is_nil(acao("https://a.example.org.evil.com"))
    assert.is_nil(acao("http://a.example.org"))
  end)
end)
