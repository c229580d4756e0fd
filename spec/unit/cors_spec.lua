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
      { "x", "cors{...}: expects a table of options, got a string" },
    }
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
