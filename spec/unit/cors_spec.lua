-- j.cors: option checking, and app-wide middlewares through the in-process
-- test client (the server-level behaviour is in spec/integration/cors_spec.lua).
local j = require "jararaca"
local testing = require "jararaca.testing"

describe("j.cors options", function()
  it("refuses bad options at the caller's line, naming the option", function()
    local cases = {
      { { allow_origin = { "x" } }, 'cors: unknown option "allow_origin"' },
      { { allow_origins = "https://a" }, "cors: allow_origins must be a list of strings, got a string" },
      { { allow_headers = { 1 } }, "cors: allow_headers%[1%] must be a non%-empty string" },
      { { allow_credentials = "yes" }, "cors: allow_credentials must be a boolean" },
      { { max_age = -1 }, "cors: max_age must be a non%-negative integer" },
      { { allow_origin_regex = "https://[" }, "cors: allow_origin_regex is not a valid Lua pattern" },
      { { allow_origin_regex = "https://(x%.example" }, "cors: allow_origin_regex is not a valid Lua pattern.*unfinished capture" },
      { { allow_origin_regex = "https://x)" }, "cors: allow_origin_regex is not a valid Lua pattern.*closes no capture" },
      { { allow_origin_regex = "https://%1" }, "cors: allow_origin_regex is not a valid Lua pattern.*back%-reference" },
      { { allow_origin_regex = "(a%1)" }, "cors: allow_origin_regex is not a valid Lua pattern.*back%-reference" },
      { "x", "cors{...}: expects a table of options, got a string" },
    }
    -- accepted: a closed capture referenced later
    assert.is_function(j.cors { allow_origin_regex = "^https://(%w+)%.%1%.example$" })
    for _, case in ipairs(cases) do
      local ok, e = pcall(function() j.cors(case[1]) end)
      assert.is_false(ok)
      assert.matches("cors_spec.lua:%d+: " .. case[2], e)
    end
  end)
end)

describe("app-wide middlewares in the test client", function()
  local C = j.RestController("/m", { name = "MwUnit" })
  C.get = j.Get("/x", function(_, req) return { trail = req.trail } end)
  local function tag(req, next)
    req.trail = (req.trail or "") .. "t"
    local res = next()
    res.headers["X-Tag"] = res.status .. ""
    return res
  end
  local Around = { around = function(_, req, next)
    if req.path == "/m/stop" then return "stopped", 409 end
    return next()
  end }
  local client
  setup(function()
    client = testing.client(j.Microservice { controllers = { C }, middlewares = { tag, Around }, openapi = false })
  end)
  teardown(function() assert.is_true((client:close())) end)

  it("run before routing, for routed and unrouted requests alike", function()
    local res = client:get("/m/x")
    assert.equal(200, res.status)
    assert.same({ trail = "t" }, res.json)
    assert.equal("200", res.headers["x-tag"])
    assert.equal("404", client:get("/nope").headers["x-tag"])
    res = client:post("/m/x")
    assert.equal(405, res.status)
    assert.equal("405", res.headers["x-tag"])
    assert.equal("GET, HEAD", res.headers["allow"])
    res = client:get("/m/stop")
    assert.equal(409, res.status)
    assert.equal("stopped", res.body)
    assert.equal("409", res.headers["x-tag"])
  end)
end)

describe("j.cors and a Vary header set as a list", function()
  it("adds Origin to the list instead of replacing it", function()
    local C = j.RestController("/v", { name = "VaryUnit" })
    C.get = j.Get("/a", function() return "x", 200, { Vary = { "Accept-Encoding", "Cookie" } } end)
    local client = testing.client(j.Microservice {
      controllers = { C }, middlewares = { j.cors { allow_origins = { "https://o.example" } } }, openapi = false,
    })
    local res = client:get("/v/a", { headers = { Origin = "https://o.example" } })
    assert.equal(200, res.status)
    assert.equal("Accept-Encoding, Cookie, Origin", res.headers["vary"])
    assert.equal("https://o.example", res.headers["access-control-allow-origin"])
    client:close()
  end)
end)

describe("an app-wide middleware's unsendable answer", function()
  it("becomes the logged 500 inside the chain, so the middlewares around it add their headers", function()
    local C = j.RestController("/u", { name = "UnsendableUnit" })
    C.get = j.Get("/a", function() return "fine" end)
    local function outer(_, next)
      local res = next()
      res.headers["X-Outer"] = tostring(res.status)
      return res
    end
    local function bad() return "x", "Created" end
    local client = testing.client(j.Microservice {
      controllers = { C }, openapi = false,
      middlewares = { j.cors { allow_origins = { "https://o.example" } }, outer, bad },
    })
    local res = client:get("/u/a", { headers = { Origin = "https://o.example" } })
    assert.equal(500, res.status)
    assert.equal("Internal Server Error", res.json.detail)
    assert.equal("500", res.headers["x-outer"])
    assert.equal("https://o.example", res.headers["access-control-allow-origin"])
    client:close()
  end)
end)
