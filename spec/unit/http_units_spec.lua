-- Units of the HTTP layer that need the runtime's C modules: the router
-- binding, query parsing, response building and CLI option parsing.
local router_core = require "jararaca.core.router"
local http = require "jararaca.core.http"
local response = require "jararaca.http.response"
local cli = require "jararaca.cli"
local cjson = require "cjson"

describe("router binding", function()
  it("matches with converted params, 404 and 405", function()
    local r = router_core.new()
    assert.is_true(r:add("GET", "/items/{id:int}", 1))
    assert.is_true(r:add("GET", "/items/{name}", 2))
    assert.is_true(r:add("POST", "/items", 3))
    assert.is_true(r:add("GET", "/files/{rest:path}", 4))
    local id, params = r:match("GET", "/items/42")
    assert.equal(1, id)
    assert.same({ id = 42 }, params)
    assert.equal("number", type(params.id))
    id, params = r:match("GET", "/items/abc")
    assert.equal(2, id)
    assert.same({ name = "abc" }, params)
    assert.same({ 4, { rest = "a/b/c.txt" } }, { r:match("GET", "/files/a/b/c.txt") })
    assert.same({ 3 }, { r:match("POST", "/items") })
    assert.same({ nil, "no route matches the path", "not_found" }, { r:match("GET", "/nothing") })
    assert.same({ nil, "the path has no route for this method", "not_allowed", "POST" }, { r:match("GET", "/items") })
  end)

  it("keeps ints beyond 2^53 as strings instead of rounding them", function()
    local r = router_core.new()
    r:add("GET", "/n/{v:int}", 1)
    local _, p = r:match("GET", "/n/123456789012345678")
    assert.equal("123456789012345678", p.v)
    _, p = r:match("GET", "/n/9999999999999999")
    assert.equal("9999999999999999", p.v)
    _, p = r:match("GET", "/n/-999999999999999")
    assert.equal(-999999999999999, p.v)
  end)

  it("reports bad templates and duplicates as nil, err", function()
    local r = router_core.new()
    local ok, err = r:add("GET", "/x/{id:float}", 1)
    assert.is_nil(ok)
    assert.matches("unknown converter", err)
    assert.is_true(r:add("GET", "/y/{a}", 1))
    ok, err = r:add("GET", "/y/{b}", 2)
    assert.is_nil(ok)
    assert.matches("conflicts", err)
  end)

  it("raises on misuse", function()
    assert.has_error(function() router_core.new().add(nil, "GET", "/", 1) end)
  end)
end)

describe("parse_query", function()
  it("decodes names and values, keeps every value, first wins in the flat table", function()
    assert.same({ { a = "1" } }, { http.parse_query("a=1&a=2") })
    local q, all = http.parse_query("a=1&b=x+y&a=2&c=%C3%A9&empty=&flag&&=nokey", true)
    assert.same({ a = "1", b = "x y", c = "é", empty = "", flag = "" }, q)
    assert.same({ a = { "1", "2" }, b = { "x y" }, c = { "é" }, empty = { "" }, flag = { "" } }, all)
  end)

  it("survives malformed escapes", function()
    local q = http.parse_query("a=%zz&b=%4")
    assert.same({ a = "", b = "" }, q)
    assert.same({}, (http.parse_query("")))
  end)

  it("url_decode reports malformed input", function()
    assert.equal("a b", http.url_decode("a%20b"))
    assert.equal("a+b", http.url_decode("a+b"))
    assert.equal("a b", http.url_decode("a+b", true))
    local v, msg, code = http.url_decode("%g0")
    assert.is_nil(v)
    assert.truthy(msg:find("malformed", 1, true))
    assert.equal("invalid", code)
  end)
end)

describe("response.build", function()
  local req = {}
  it("tables are JSON, strings text, nil 204", function()
    local st, body, ct = response.build(req, nil, { a = 1 })
    assert.same({ 200, { a = 1 }, "application/json" }, { st, cjson.decode(body), ct })
    assert.same({ 200, "hi", "text/plain; charset=utf-8" }, { (response.build(req, nil, "hi")) ,
      select(2, response.build(req, nil, "hi")) })
    assert.equal(204, (response.build(req, nil, nil)))
  end)

  it("status precedence: returned > req.response > route option > default", function()
    local r = { response = { status = 202, headers = { A = "1" } } }
    assert.equal(203, (response.build(r, 201, { }, 203)))
    assert.equal(202, (response.build(r, 201, { })))
    assert.equal(201, (response.build({}, 201, { })))
    local _, _, _, headers = response.build(r, nil, {}, nil, { B = "2" })
    assert.same({ A = "1", B = "2" }, headers)
  end)

  it("Response{} is sent as given", function()
    local st, body, ct, h = response.build(req, nil, response.Response {
      status = 201, body = "<p>x</p>", content_type = "text/html", headers = { X = "y" } })
    assert.same({ 201, "<p>x</p>", "text/html", { X = "y" } }, { st, body, ct, h })
  end)

  it("refuses a function result with a clear message", function()
    assert.has_error(function() response.build(req, nil, function() end) end,
      "handler returned a function; return a table (JSON), a string, nil or Response{}")
  end)
end)

describe("cli.parse_options", function()
  local specs = {
    { "port", "int", 8000, "" }, { "workers", "workers", 1, "" }, { "access-log", "flag", false, "" },
    { "log-format", "choice", "text", "", { "text", "json" } }, { "grace-period", "number", 30, "" },
  }
  local noenv = function() return nil end
  it("reads defaults, flags, --x=y and --x y", function()
    local o, pos = cli.parse_options({ "app.lua", "--port=9000", "--access-log", "--grace-period", "2.5" }, specs, noenv)
    assert.same({ "app.lua" }, pos)
    assert.same({ port = 9000, workers = 1, ["access-log"] = true, ["log-format"] = "text", ["grace-period"] = 2.5 }, o)
  end)
  it("takes the environment when the option is not given", function()
    local env = { JARARACA_PORT = "7000", JARARACA_WORKERS = "auto", JARARACA_LOG_FORMAT = "json" }
    local o = cli.parse_options({ "--port", "1" }, specs, function(k) return env[k] end)
    assert.equal(1, o.port)
    assert.is_true(o.workers >= 1)
    assert.equal("json", o["log-format"])
  end)
  it("rejects bad values naming the option or variable", function()
    assert.same({ nil, nil, "--port: expected a non-negative integer, got '1.5'" },
      { cli.parse_options({ "--port", "1.5" }, specs, noenv) })
    assert.same({ nil, nil, "--log-format: expected one of text, json, got 'xml'" },
      { cli.parse_options({ "--log-format", "xml" }, specs, noenv) })
    assert.same({ nil, nil, "unknown option --nope (see jararaca --help)" },
      { cli.parse_options({ "--nope" }, specs, noenv) })
    assert.same({ nil, nil, "option --port needs a value" }, { cli.parse_options({ "--port" }, specs, noenv) })
    local o, _, err = cli.parse_options({}, specs, function(k) return k == "JARARACA_WORKERS" and "0" or nil end)
    assert.is_nil(o)
    assert.equal("JARARACA_WORKERS: expected at least 1 worker", err)
  end)
end)
