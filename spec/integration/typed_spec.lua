-- Typed routes on the real server: input validation (422 with every error),
-- converted values, response shaping, middlewares.
local client = require "spec.support.client"
local server = require "spec.support.server"
local json = require "jararaca.json"

local function post(port, path, body, headers)
  return assert(client.request(port, "POST", path, {
    headers = headers or { ["Content-Type"] = "application/json" }, body = body }))
end

local function decode(res) return assert(json.decode(res.body)) end

describe("typed routes", function()
  local srv
  setup(function() srv = server.start("spec/integration/apps/typed.lua") end)
  teardown(function() assert.equal(0, (srv:stop())) end)

  it("validates the body, applies defaults, shapes the response", function()
    local res = post(srv.port, "/tasks", '{"name":"write specs","tags":[{"name":"a"}],"unknown":1}')
    assert.equal(201, res.status)
    local t = decode(res)
    assert.equal("write specs", t.name)
    assert.equal("normal", t.priority)       -- default
    assert.equal("task", t.kind)
    assert.is_nil(t.secret)                   -- not in the response schema: not leaked
    assert.is_nil(t.unknown)
    -- field order follows the schema (base fields first, then the extension's)
    local order = {}
    for k in res.body:gsub('"tags":%b[]', '"tags":0'):gmatch('"([%w_]+)":') do order[#order + 1] = k end
    assert.same({ "name", "priority", "tags", "id", "done", "created_at", "kind" }, order)
  end)

  it("answers 422 listing every error in FastAPI's shape", function()
    local res = post(srv.port, "/tasks", '{"name":"","priority":"urgent","tags":[{"name":"x","color":"red"}],"due":"2026-02-30"}')
    assert.equal(422, res.status)
    local d = decode(res).detail
    -- FastAPI's key order in each error
    assert.truthy(res.body:find('^{"detail":%[{"loc":%[[^%]]*%],"msg":"[^"]*","type":'), res.body)
    local by = {}
    for _, e in ipairs(d) do
      assert.is_string(e.msg)
      assert.is_string(e.type)
      by[table.concat(e.loc, ".")] = e.type
    end
    assert.equal("string_too_short", by["body.name"])
    assert.equal("enum", by["body.priority"])
    assert.is_not_nil(by["body.tags.1.color"])
    assert.is_not_nil(by["body.due"])
  end)

  it("422 for a missing or malformed body", function()
    local res = post(srv.port, "/tasks", "")
    assert.equal(422, res.status)
    assert.same({ "body" }, decode(res).detail[1].loc)
    res = post(srv.port, "/tasks", "{bad")
    assert.equal(422, res.status)
    assert.equal("json_invalid", decode(res).detail[1].type)
  end)

  it("converts and validates path, query and header values", function()
    local created = decode(post(srv.port, "/tasks", '{"name":"x"}'))
    local res = assert(client.request(srv.port, "GET", "/tasks/" .. created.id:upper(), {
      headers = { ["X-Trace"] = "t1" } }))
    assert.equal(200, res.status)
    assert.equal(created.id, decode(res).id)
    res = assert(client.request(srv.port, "GET", "/tasks/not-a-uuid"))
    assert.equal(422, res.status)
    assert.same({ "path", "task_id" }, decode(res).detail[1].loc)
    res = assert(client.request(srv.port, "GET", "/tasks?page=-1&page_size=abc&priority=nope"))
    assert.equal(422, res.status)
    local locs = {}
    for _, e in ipairs(decode(res).detail) do locs[#locs + 1] = table.concat(e.loc, ".") end
    table.sort(locs)
    assert.same({ "query.page", "query.page_size", "query.priority" }, locs)
    res = assert(client.request(srv.port, "GET", "/tasks?page=2"))
    assert.equal(200, res.status)
    assert.is_nil(decode(res).page) -- not in TaskPage: dropped
  end)

  it("404 from the handler with an HTTPError", function()
    local res = assert(client.request(srv.port, "GET", "/tasks/00000000-0000-0000-0000-000000000000"))
    assert.equal(404, res.status)
    assert.same({ detail = "no such task" }, decode(res))
  end)

  it("recursive and union bodies", function()
    local res = post(srv.port, "/misc/tree", '{"label":"root","children":[{"label":"a","children":[{"label":"b"}]}]}')
    assert.equal(200, res.status)
    local t = decode(res)
    assert.equal("b", t.children[1].children[1].label)
    assert.equal(0, #t.children[1].children[1].children) -- default [] encoded as []
    assert.truthy(res.body:find('"children":[]', 1, true))
    res = post(srv.port, "/misc/area", '{"kind":"square","side":3}')
    assert.equal(9, decode(res).area)
    res = post(srv.port, "/misc/area", '{"kind":"triangle"}')
    assert.equal(422, res.status)
  end)

end)

describe("middlewares", function()
  local srv
  setup(function() srv = server.start("spec/integration/apps/middleware.lua") end)
  teardown(function() assert.equal(0, (srv:stop())) end)

  it("run controller ones then route ones, in order, around the handler", function()
    local res = assert(client.request(srv.port, "GET", "/mw/open"))
    assert.equal(200, res.status)
    assert.equal(">c1>c2>r1", decode(res).trail)
    assert.equal(">c1>c2>r1", res.headers["x-after-c1"])
    assert.equal("1", res.headers["x-class-middleware"])
  end)

  it("can short-circuit before input validation", function()
    local res = post(srv.port, "/mw/secured", '{"n":0}')
    assert.equal(401, res.status)
    assert.same({ detail = "not authenticated" }, decode(res))
    res = post(srv.port, "/mw/secured", '{"n":0}', { Authorization = "Bearer ok" })
    assert.equal(422, res.status)
    res = post(srv.port, "/mw/secured", '{"n":5}', { Authorization = "Bearer ok" })
    assert.equal(200, res.status)
    assert.same({ n = 5, trail = ">c1>c2" }, decode(res))
  end)

  it("keeps integers beyond 2^53 exact through validation and encoding", function()
    local body = '{"v":9007199254740993,"list":[-9223372036854775808,9223372036854775807,1]}'
    local res = post(srv.port, "/num/echo", body)
    assert.equal(200, res.status)
    assert.equal(body, res.body)
    res = post(srv.port, "/num/echo", '{"v":1.5}')
    assert.equal(422, res.status)
    res = post(srv.port, "/num/echo", '{"v":92233720368547758070}')
    assert.equal(422, res.status)
  end)
end)
