-- One route spec, end to end (jararaca.http.route_spec): the real server,
-- its OpenAPI document (node spec/js/validate_openapi.js) and `jararaca
-- gen-tsi` (tsc --strict) read route options the same way. For each of
-- params, query, headers and body, a route declared with a field map and
-- one declared with an object schema validate alike, are documented alike
-- and get the same client method, and the document and the client agree;
-- every `responses` form works in all three. A bad app gets the same
-- message from `server` and `gen-tsi`, exit 1, and no framework traceback.
-- Needs node and spec/js/node_modules (npm ci in spec/js): a missing one
-- fails with a message, nothing is skipped.
local client = require "spec.support.client"
local server = require "spec.support.server"
local run = require "spec.support.run"
local json = require "jararaca.json"

local APP = "spec/integration/apps/route_forms.lua"
local JS = server.root .. "/spec/js"
local TSC = JS .. "/node_modules/typescript/bin/tsc"

local function need_node()
  local status = run.run({ "node", "--version" }, 30)
  assert(status == 0, "node is not installed (apt-get install nodejs): these specs need it")
  assert(run.read(TSC) and run.read(JS .. "/node_modules/@seriousme/openapi-schema-validator/package.json"),
    "spec/js/node_modules is missing: run `npm ci` in spec/js")
end

local function request(port, method, target, headers, body)
  return assert(client.request(port, method, target, { headers = headers, body = body }))
end

local JSON_HEADERS = { ["Content-Type"] = "application/json" }

describe("one route spec (server, OpenAPI, gen-tsi)", function()
  local srv, doc, ts
  setup(function()
    need_node()
    srv = server.start(APP)
    local res = request(srv.port, "GET", "/openapi.json")
    assert.equal(200, res.status)
    doc = assert(json.decode(res.body))
    local file = run.temp_file(res.body, ".json")
    local status, out, err = run.run({ "node", JS .. "/validate_openapi.js", file })
    assert(status == 0, "validate_openapi.js failed:\n" .. out .. err)
    local ts_file = run.temp_path(".ts")
    local gstatus, _, gerr = run.run({ server.bin, "gen-tsi", APP, ts_file }, 30)
    assert(gstatus == 0, gerr)
    local tstatus, tout, terr = run.run({ "node", TSC, "--strict", "--noEmit", "--target", "ES2020",
      "--lib", "ES2020,DOM", ts_file }, 180)
    assert(tstatus == 0, "tsc failed:\n" .. tout .. terr)
    ts = run.read(ts_file)
  end)
  teardown(function()
    if srv then assert.equal(0, (srv:stop())) end
    run.cleanup()
  end)

  -- The same request to /map and /object: the same answer; returns it.
  local function both(method, target, headers, body)
    local a = request(srv.port, method, "/map" .. target, headers, body)
    local b = request(srv.port, method, "/object" .. target, headers, body)
    assert.equal(a.status, b.status, target)
    assert.equal(a.body, b.body, target)
    return a.status, assert(json.decode(a.body))
  end

  local function locs(detail)
    local out = {}
    for _, e in ipairs(detail) do out[#out + 1] = table.concat(e.loc, ".") .. ":" .. e.type end
    table.sort(out)
    return out
  end

  describe("the server validates a field map and an object schema alike", function()
    it("params", function()
      local status, v = both("GET", "/p/0E0E0E0E-0000-4000-8000-00000000000A/3")
      assert.equal(200, status)
      assert.same({ id = "0e0e0e0e-0000-4000-8000-00000000000a", n = 3 }, v)
      status, v = both("GET", "/p/not-a-uuid/0")
      assert.equal(422, status)
      assert.same({ "path.id:uuid_parsing", "path.n:greater_than_equal" }, locs(v.detail))
    end)

    it("query", function()
      local status, v = both("GET", "/q?q=ab&tag=x&tag=y")
      assert.equal(200, status)
      assert.same({ page = 0, q = "ab", tag = { "x", "y" } }, v)
      status, v = both("GET", "/q?page=2&q=abc")
      assert.equal(200, status)
      assert.same({ page = 2, q = "abc" }, v)
      status, v = both("GET", "/q?page=-1&q=a")
      assert.equal(422, status)
      assert.same({ "query.page:greater_than_equal", "query.q:string_too_short" }, locs(v.detail))
      status, v = both("GET", "/q")
      assert.equal(422, status)
      assert.same({ "query.q:missing" }, locs(v.detail))
    end)

    it("headers", function()
      local status, v = both("GET", "/h", { ["X-Count"] = "5" })
      assert.equal(200, status)
      assert.same({ ["x-count"] = 5 }, v)
      status, v = both("GET", "/h", { ["x-count"] = "7", ["X-NOTE"] = "hi" })
      assert.equal(200, status)
      assert.same({ ["x-count"] = 7, ["x-note"] = "hi" }, v)
      status, v = both("GET", "/h", { ["X-Count"] = "many" })
      assert.equal(422, status)
      assert.same({ "header.x-count:int_parsing" }, locs(v.detail))
      status, v = both("GET", "/h")
      assert.equal(422, status)
      assert.same({ "header.x-count:missing" }, locs(v.detail))
    end)

    it("body", function()
      local status, v = both("POST", "/b", JSON_HEADERS, '{"label":"a","extra":1}')
      assert.equal(200, status)
      assert.same({ label = "a", size = 1 }, v)
      status, v = both("POST", "/b", JSON_HEADERS, '{"label":"","size":"x"}')
      assert.equal(422, status)
      assert.same({ "body.label:string_too_short", "body.size:int_type" }, locs(v.detail))
      status, v = both("POST", "/b", JSON_HEADERS, "")
      assert.equal(422, status)
      assert.same({ "body:missing" }, locs(v.detail))
      status, v = both("POST", "/b", JSON_HEADERS, "{bad")
      assert.equal(422, status)
      assert.same({ "body:json_invalid" }, locs(v.detail))
    end)

    it("an :optional() body may be absent; a :default() one takes its default", function()
      local res = request(srv.port, "POST", "/extra/maybe", JSON_HEADERS, "")
      assert.equal(200, res.status)
      assert.same({ got = false }, json.decode(res.body))
      res = request(srv.port, "POST", "/extra/maybe", JSON_HEADERS, '{"label":"x"}')
      assert.same({ got = true, label = "x" }, json.decode(res.body))
      res = request(srv.port, "POST", "/extra/maybe", JSON_HEADERS, '{"label":1}')
      assert.equal(422, res.status)
      res = request(srv.port, "POST", "/extra/defaulted", JSON_HEADERS, "")
      assert.equal(200, res.status)
      assert.same({ label = "none" }, json.decode(res.body))
    end)
  end)

  local function op(path, method)
    local item = assert(doc.paths[path], "no path " .. path)
    return assert(item[method], "no " .. method .. " " .. path)
  end

  -- An operation without what differs by controller (its id, summary).
  local function comparable(o)
    return { parameters = o.parameters, requestBody = o.requestBody, responses = o.responses }
  end

  -- "async name(<args>): Promise<T> {" of a class in the generated file.
  local function method_line(class, member)
    local body = assert(ts:match("\nexport class " .. class .. " {\n(.-)\n}\n"), "no class " .. class)
    return assert(body:match("\n  (async " .. member .. "%(.-%): Promise<.->) {\n"), "no method " .. member)
  end

  -- { name = optional? } of an inline object type "{ a?: T; "b": U }".
  local function ts_fields(text)
    local out = {}
    for entry in (text:match("^{ (.*) }$") or ""):gmatch("[^;]+") do
      local name, opt = entry:match('^%s*"?([%w_%-]+)"?(%??):')
      out[name] = opt == "?"
    end
    return out
  end

  -- The TS argument `name: { ... }` of a method line (or nil).
  local function ts_arg(line, name)
    return line:match("[(,] ?" .. name .. "%??: ({.-})[,)= ]")
  end

  local function openapi_fields(o, where)
    local out = {}
    for _, p in ipairs(o.parameters or {}) do
      if p["in"] == where then out[p.name] = not p.required end
    end
    return out
  end

  describe("OpenAPI and gen-tsi", function()
    local GROUPS = {
      { member = "by_params", path = "/p/{id}/{n}", method = "get", arg = "params", where = "path" },
      { member = "by_query", path = "/q", method = "get", arg = "query", where = "query" },
      { member = "by_headers", path = "/h", method = "get", arg = "headers", where = "header" },
    }

    it("document a field map and an object schema alike", function()
      for _, g in ipairs(GROUPS) do
        assert.same(comparable(op("/map" .. g.path, g.method)), comparable(op("/object" .. g.path, g.method)), g.member)
      end
      assert.same(comparable(op("/map/b", "post")), comparable(op("/object/b", "post")))
      -- the query's object schema is spread into parameters: no component of its own
      assert.is_nil(doc.components.schemas.FormsQuery)
      assert.same({ "page", "q", "tag" }, (function()
        local out = {}
        for i, p in ipairs(op("/object/q", "get").parameters) do out[i] = p.name end
        return out
      end)())
    end)

    it("give a field map and an object schema the same client method", function()
      for _, member in ipairs({ "by_params", "by_query", "by_headers", "by_body" }) do
        assert.equal(method_line("MapController", member), method_line("ObjectController", member))
      end
      assert.equal("async by_query(query: { page?: number; q: string; tag?: string[] }): Promise<unknown>",
        method_line("MapController", "by_query"))
    end)

    it("agree on every parameter's name and whether it is required", function()
      for _, class in ipairs({ "MapController", "ObjectController" }) do
        local prefix = class == "MapController" and "/map" or "/object"
        for _, g in ipairs(GROUPS) do
          local line = method_line(class, g.member)
          local from_ts = ts_fields(assert(ts_arg(line, g.arg), line))
          assert.same(openapi_fields(op(prefix .. g.path, g.method), g.where), from_ts, class .. "." .. g.member)
        end
        local body = op(prefix .. "/b", "post").requestBody
        assert.is_true(body.required)
        local line = method_line(class, "by_body")
        assert.truthy(line:find("(body: {", 1, true), line)
        local props = body.content["application/json"].schema
        local from_ts = ts_fields(assert(ts_arg(line, "body"), line))
        local from_doc = {}
        for name in pairs(props.properties) do from_doc[name] = true end
        for _, name in ipairs(props.required or {}) do from_doc[name] = false end
        assert.same(from_doc, from_ts)
      end
    end)

    it("agree on optional bodies", function()
      assert.is_false(op("/extra/maybe", "post").requestBody.required)
      assert.is_false(op("/extra/defaulted", "post").requestBody.required)
      assert.equal("async maybe(body?: { label: string }): Promise<unknown>", method_line("ExtraController", "maybe"))
      assert.equal("async defaulted(body?: { label: string }): Promise<unknown>",
        method_line("ExtraController", "defaulted"))
    end)

    it("document every responses form, and the client returns the success schema", function()
      local r = op("/extra/a/{id}", "get").responses
      assert.same({ "200", "404", "409", "5XX" }, (function()
        local out = {}
        for k in pairs(r) do out[#out + 1] = k end
        table.sort(out)
        return out
      end)())
      assert.equal("#/components/schemas/FormsThing", r["200"].content["application/json"].schema["$ref"])
      assert.same({ description = "no such thing" }, r["404"])
      assert.equal("already taken", r["409"].description)
      assert.equal("#/components/schemas/FormsProblem", r["409"].content["application/json"].schema["$ref"])
      assert.same({ description = "server trouble" }, r["5XX"])
      local answers = method_line("ExtraController", "answers")
      assert.equal("): Promise<FormsThing>", answers:sub(-#"): Promise<FormsThing>"), answers)
      assert.truthy(ts:find("\nexport interface FormsProblem {\n", 1, true))
      assert.truthy(doc.components.schemas.FormsProblem)
      -- and the server answers them
      local res = request(srv.port, "GET", "/extra/a/7")
      assert.equal(200, res.status)
      assert.same({ id = 7, label = "thing 7" }, json.decode(res.body))
      res = request(srv.port, "GET", "/extra/a/404")
      assert.equal(404, res.status)
      assert.same({ detail = "no such thing" }, json.decode(res.body))
    end)
  end)
end)

describe("a bad route stops server and gen-tsi alike", function()
  teardown(run.cleanup)

  local function app(route_line)
    return run.temp_file(([[
local j = require "jararaca"
local s = j.schema
local C = j.RestController("/items", { name = "ItemsController" })
%s
return j.Microservice { controllers = { C } }
]]):format(route_line), ".lua")
  end

  -- Both commands on the app: each exits 1, and the message after their
  -- own prefix is the same; neither shows a traceback. Returns it.
  local function same_failure(path)
    local status, stdout, stderr = run.run({ server.bin, "server", path, "--port", "0", "--host", "127.0.0.1" }, 20)
    assert.equal(1, status, stderr)
    assert.equal("", stdout)
    local from_server = stderr:match("ERROR %[%d+%] startup failed for " .. path:gsub("%p", "%%%0") .. ": ([^\n]*)\n")
    assert(from_server, "server: " .. stderr)
    local gstatus, gout, gerr = run.run({ server.bin, "gen-tsi", path, "--stdout" }, 20)
    assert.equal(1, gstatus, gerr)
    assert.equal("", gout)
    assert.equal("jararaca gen-tsi: cannot generate TypeScript for " .. path .. ": " .. from_server .. "\n", gerr)
    for _, text in ipairs({ stderr, gerr }) do
      assert.falsy(text:find("traceback", 1, true), text)
      assert.falsy(text:find("internal error", 1, true), text)
    end
    return from_server
  end

  local CASES = {
    { 'C.list = j.Get("", { query = { page = 42 } }, function() end)',
      'route ItemsController.list (GET /items): query.page: expected a schema, got 42' },
    { 'C.get = j.Get("/{id:int}", { params = { id = s.uuid() } }, function() end)',
      "route ItemsController.get (GET /items/{id:int}): params.id: a path parameter is one path segment: expected an"
        .. " integer, number or literal schema (the {id:int} converter gives a number), got a uuid schema" },
    { 'C.get = j.Get("/{id}", { responses = { [404] = { descripton = "gone" } } }, function() end)',
      'route ItemsController.get (GET /items/{id}): responses[404]: unknown key "descripton" (expected a schema,'
        .. ' a description string or { description =, schema =, content_type = })' },
    { 'C.get = j.Get("", { response = s.array(s.ref("Itme")) }, function() end)',
      'route ItemsController.get (GET /items): response[]: s.ref("Itme") names no schema (declare it with'
        .. ' s.object("Itme", ...) or s.enum("Itme", ...))' },
    { 'C.get = j.Get("/{id:float}", function() end)',
      'route ItemsController.get (GET /items/{id:float}): path: bad route template "/items/{id:float}": unknown'
        .. ' converter "float"' },
    { 'C.a = j.Get("/{id}", function() end); C.b = j.Get("/{key}", function() end)',
      'route ItemsController.b (GET /items/{key}): path: GET /items/{key} conflicts with GET /items/{id} (route'
        .. ' ItemsController.a, declared at %s:4)' },
  }

  for _, case in ipairs(CASES) do
    it("names the file, the route and the option: " .. case[2]:sub(1, 60), function()
      local path = app(case[1])
      local expected = path .. ":4: " .. case[2]:gsub("%%s", path)
      assert.equal(expected, same_failure(path))
    end)
  end

  it("an app file's misuse of a route helper shows the app's frames only", function()
    local path = app('C.list = j.Get("/x")')
    for _, argv in ipairs({ { server.bin, "server", path, "--port", "0" }, { server.bin, "gen-tsi", path, "--stdout" } }) do
      local status, _, stderr = run.run(argv, 20)
      assert.equal(1, status, stderr)
      assert.truthy(stderr:find("error while running app file " .. path .. ": " .. path
        .. ":4: Get: expected a handler function as the last argument, got nil\nstack traceback:\n\t" .. path
        .. ":4: in main chunk\n", 1, true), stderr)
      assert.falsy(stderr:find("jararaca/", 1, true), stderr)
      assert.falsy(stderr:find("[C]", 1, true), stderr)
    end
  end)

  it("the object-schema query the server used to die on now serves", function()
    local path = app('C.list = j.Get("", { query = s.object("Q", { { "page", s.integer():default(0) } }) },'
      .. ' function(_, req) return { page = req.query.page } end)')
    local srv = server.start(path)
    local res = request(srv.port, "GET", "/items?page=3")
    local res2 = request(srv.port, "GET", "/items?page=x")
    assert.equal(0, (srv:stop()))
    assert.equal(200, res.status)
    assert.same({ page = 3 }, json.decode(res.body))
    assert.equal(422, res2.status)
    local status, _, stderr = run.run({ server.bin, "gen-tsi", path, "--stdout" }, 20)
    assert.equal(0, status, stderr)
  end)
end)
