-- Specs for jararaca.http.route_spec: every accepted form of every route
-- option and the description it gives, every rejected form with its
-- message, the template checks and routes() over whole controllers.
local route_spec = require "jararaca.http.route_spec"
local controller = require "jararaca.http.controller"
local j = require "jararaca"
local s = require "jararaca.schema"

local function handler() end

-- The spec of one route `C.r = j.<verb>(path, opts, handler)` under
-- RestController("/t", { name = "TController", ... }).
local function spec_of(opts, path, verb, copts)
  copts = copts or {}
  copts.name = copts.name or "TController"
  local C = j.RestController("/t", copts)
  C.r = (verb or j.Get)(path or "", opts, handler)
  local route = controller.collect(C)[1]
  return route_spec.normalize(route)
end

local function spec(opts, path, verb, copts)
  local sp, err = spec_of(opts, path, verb, copts)
  assert(sp, err)
  return sp
end

-- The message for a bad route, checked for its head (file, line, controller,
-- member, method, path) and returned without it.
local function problem(opts, path, verb, copts)
  local sp, err, code = spec_of(opts, path, verb, copts)
  assert.is_nil(sp)
  assert.equal("invalid", code)
  local method = ((verb == j.Post and "POST") or (verb == j.Put and "PUT") or "GET")
  local head = "route TController.r (" .. method .. " /t" .. (path or "") .. "): "
  local at = err:find(head, 1, true)
  assert(at, err)
  -- specs may run from another directory: the file's name, then the line
  assert(err:sub(1, at - 1):find("route_spec_spec%.lua:%d+: $"), "the message names this file and a line: " .. err)
  return err:sub(at + #head)
end

local function names(fields)
  local out = {}
  for i, f in ipairs(fields) do out[i] = f.name end
  return out
end

describe("jararaca.http.route_spec", function()
  describe("a route without options", function()
    it("is untyped, with the defaults every reader uses", function()
      local sp = spec(nil, "/{id}/{n:int}/{u:uuid}/{rest:path}")
      assert.is_false(sp.typed)
      assert.is_false(sp.validated)
      assert.is_nil(sp.params)
      assert.is_nil(sp.query)
      assert.is_nil(sp.headers)
      assert.is_nil(sp.body)
      assert.is_nil(sp.response)
      assert.is_nil(sp.status)
      assert.same({ status = 200 }, sp.success)
      assert.same({}, sp.responses)
      assert.same({}, sp.tags)
      assert.same({}, sp.middlewares)
      assert.is_true(sp.include_in_schema)
      assert.is_false(sp.deprecated)
      assert.equal("TController", sp.controller_name)
      assert.equal("r", sp.member)
      assert.equal("GET", sp.method)
      assert.same({ { name = "id", converter = "str" }, { name = "n", converter = "int" },
        { name = "u", converter = "uuid" }, { name = "rest", converter = "path" } }, sp.path_params)
    end)

    it("counts an empty options table as untyped; {} groups as typed", function()
      assert.is_false(spec({}).typed)
      local sp = spec({ query = {} })
      assert.is_true(sp.typed)
      assert.is_false(sp.validated)
      assert.same({}, sp.query.fields)
    end)
  end)

  describe("params, query and headers", function()
    it("take a field map (sorted by name) or an object schema (field order), with the same fields", function()
      local page, tag, q = s.integer { minimum = 0 }:default(0), s.array(s.string()):optional(), s.string()
      local by_map = spec({ query = { q = q, page = page, tag = tag } }).query
      local by_object = spec({ query = s.object { { "page", page }, { "q", q }, { "tag", tag } } }).query
      local by_named = spec({ query = s.object("RouteSpecQ", { { "page", page }, { "q", q }, { "tag", tag } }) }).query
      for _, g in ipairs({ by_map, by_object, by_named }) do
        assert.same({ "page", "q", "tag" }, g.names)
        assert.same({ page = true, q = true, tag = true }, g.declared)
        assert.same({ tag = true }, g.lists)
        assert.is_true(s.is_schema(g.schema))
        assert.equal("object", g.schema.kind)
        assert.is_nil(g.schema.name) -- an anonymous object: one validator per group
        assert.same({ false, true, false }, { g.fields[1].required, g.fields[2].required, g.fields[3].required })
        assert.is_true(g.fields[1].has_default)
        assert.equal(0, g.fields[1].default)
      end
      -- the object form keeps its own order
      assert.same({ "z", "a" }, spec({ query = s.object { { "z", q }, { "a", q } } }).query.names)
    end)

    it("mark query fields that take every value (arrays, nullable arrays)", function()
      local g = spec({ query = { a = s.array(s.integer()), b = s.array(s.string()):nullable(), c = s.string() } }).query
      assert.same({ a = true, b = true }, g.lists)
    end)

    it("accept scalar kinds, unions and nullables of them, refs to named enums", function()
      local Color = s.enum("RouteSpecColor", { "red", "blue" })
      local sp = spec({
        query = { a = s.uuid(), b = s.date(), c = s.datetime(), d = s.boolean(), e = s.number(), f = s.literal("x"),
          g = s.any(), h = s.one_of(s.integer(), s.string()), i = s.integer():nullable(), k = s.ref("RouteSpecColor"),
          l = s.array(Color) },
        headers = { ["x-a"] = s.integer():optional(), ["x-b"] = Color:optional() },
      })
      assert.equal(11, #sp.query.fields)
      assert.equal(2, #sp.headers.fields)
    end)

    it("lower-case header names, from a map or an object schema", function()
      assert.same({ "x-token", "x-trace" }, spec({ headers = { ["X-Trace"] = s.string(), ["x-Token"] = s.string() } }).headers.names)
      local g = spec({ headers = s.object { { "X-Trace", s.string():optional() } } }).headers
      assert.same({ "x-trace" }, g.names)
      assert.is_false(g.fields[1].required)
    end)

    it("type path parameters from params; the others keep their converter", function()
      for _, form in ipairs({ { id = s.uuid(), n = s.integer { minimum = 1 } },
        s.object { { "id", s.uuid() }, { "n", s.integer { minimum = 1 } } } }) do
        local sp = spec({ params = form }, "/{id}/{n:int}/{other}")
        assert.equal("uuid", sp.path_params[1].schema.kind)
        assert.equal("integer", sp.path_params[2].schema.kind)
        assert.is_nil(sp.path_params[3].schema)
        assert.is_true(sp.validated)
      end
    end)

    it("accept a schema per converter that can hold what it gives", function()
      assert.truthy(spec({ params = { n = s.number(), m = s.literal(3) } }, "/{n:int}/{m:int}"))
      assert.truthy(spec({ params = { u = s.string(), v = s.uuid() } }, "/{u:uuid}/{v:uuid}"))
      assert.truthy(spec({ params = { a = s.boolean(), b = s.date(), c = s.enum { "x" }, d = s.literal(true) } },
        "/{a}/{b}/{c}/{d:path}"))
    end)

    it("reject what a request cannot carry there", function()
      assert.equal("query: expected a table { name = schema } or an object schema, got 5", problem({ query = 5 }))
      assert.equal("query: expected a table { name = schema } or an object schema, got an array schema",
        problem({ query = s.array(s.string()) }))
      assert.equal("query: expected a table { name = schema } or an object schema, got the key 1",
        problem({ query = { { "page", s.integer() } } }))
      assert.equal("query.page: expected a schema, got 42", problem({ query = { page = 42 } }))
      assert.equal("params.id: expected a schema, got a table", problem({ params = { id = { kind = "string" } } }, "/{id}"))
      assert.equal('query.f: a query parameter is text: expected a string, integer, number, boolean, uuid, date, '
        .. 'datetime, enum, literal or any schema (or a nullable or one_of of those), or an array of them, got an '
        .. 'object schema', problem({ query = { f = s.object { { "a", s.string() } } } }))
      assert.matches("^query.m: a query parameter is text: .* got a map schema$", problem({ query = { m = s.map(s.string()) } }))
      assert.matches("^query.n: .* got an array schema$", problem({ query = { n = s.array(s.array(s.string())) } }))
      assert.equal("headers.x-list: a header is one text value: expected a string, integer, number, boolean, uuid, "
        .. "date, datetime, enum, literal or any schema (or a nullable or one_of of those), got an array schema",
        problem({ headers = { ["x-list"] = s.array(s.string()) } }))
      assert.equal("headers.x token: not a valid header name", problem({ headers = { ["x token"] = s.string() } }))
      assert.equal("headers.x-a: declared twice (header names are case-insensitive)",
        problem({ headers = { ["X-A"] = s.string(), ["x-a"] = s.string() } }))
    end)

    it("reject params that do not match the template", function()
      assert.equal("params.nope: the path /t/{id} has no {nope} parameter", problem({ params = { nope = s.string() } }, "/{id}"))
      assert.equal("params.id: a path parameter is always present: drop :optional() and :default()",
        problem({ params = { id = s.string():optional() } }, "/{id}"))
      assert.equal("params.id: a path parameter is always present: drop :optional() and :default()",
        problem({ params = { id = s.string():default("x") } }, "/{id}"))
      assert.equal("params.id: a path parameter is one path segment: expected a string, integer, number, boolean, "
        .. "uuid, date, datetime, enum or literal schema, got an array schema",
        problem({ params = { id = s.array(s.string()) } }, "/{id}"))
      assert.equal("params.id: a path parameter is one path segment: expected an integer, number or literal schema "
        .. "(the {id:int} converter gives a number), got a string schema", problem({ params = { id = s.string() } }, "/{id:int}"))
      assert.equal("params.id: a path parameter is one path segment: expected an integer, number or literal schema "
        .. "(the {id:int} converter gives a number), got a literal schema",
        problem({ params = { id = s.literal("a") } }, "/{id:int}"))
      assert.equal("params.id: a path parameter is one path segment: expected a uuid or string schema "
        .. "(the {id:uuid} converter gives a UUID's text), got an integer schema",
        problem({ params = { id = s.integer() } }, "/{id:uuid}"))
      assert.matches("^params.id: .* got a nullable schema$", problem({ params = { id = s.string():nullable() } }, "/{id}"))
      assert.matches("^params.id: .* got an any schema$", problem({ params = { id = s.any() } }, "/{id}"))
    end)
  end)

  describe("body and response", function()
    it("take a schema or a field map (an anonymous object)", function()
      local T = s.object { { "a", s.integer() } }
      local sp = spec({ body = T, response = s.array(T) }, "", j.Post)
      assert.equal(T, sp.body.schema)
      assert.is_true(sp.body.required)
      assert.equal("array", sp.response.kind)
      assert.is_true(sp.typed and sp.validated)
      sp = spec({ body = { b = s.string(), a = s.integer():optional() }, response = { id = s.uuid() } }, "", j.Post)
      assert.equal("object", sp.body.schema.kind)
      assert.same({ "a", "b" }, names(sp.body.schema.fields))
      assert.same({ "id" }, names(sp.response.fields))
      assert.equal(sp.response, sp.success.schema)
    end)

    it("make an :optional() body not required", function()
      assert.is_false(spec({ body = s.object { { "a", s.integer() } }:optional() }, "", j.Post).body.required)
      assert.is_false(spec({ body = s.array(s.integer()):default({}) }, "", j.Post).body.required)
    end)

    it("reject other values, and a body on a no-content status", function()
      assert.equal("body: expected a schema or a table { name = schema }, got 5", problem({ body = 5 }, "", j.Post))
      assert.equal("body.a: expected a schema, got 1", problem({ body = { a = 1 } }, "", j.Post))
      assert.equal('response: expected a schema or a table { name = schema }, got "Task"', problem({ response = "Task" }))
      assert.equal("response: a 204 answer has no body: drop response or change status",
        problem({ response = s.string(), status = 204 }))
      assert.equal("response: a 304 answer has no body: drop response or change status",
        problem({ response = s.string(), status = 304 }))
    end)

    it("reject a s.ref to no schema, wherever the option reaches it", function()
      assert.equal('body.items[]: s.ref("RouteSpecNope") names no schema (declare it with s.object("RouteSpecNope", ...) '
        .. 'or s.enum("RouteSpecNope", ...))',
        problem({ body = { items = s.array(s.ref("RouteSpecNope")) } }, "", j.Post))
      assert.matches('^response|2: s.ref%("RouteSpecNope"%) names no schema',
        problem({ response = s.one_of(s.string(), s.ref("RouteSpecNope")) }))
      assert.matches('^responses%[404%]{}: s.ref%("RouteSpecNope"%)', problem({ responses = { [404] = s.map(s.ref("RouteSpecNope")) } }))
      assert.matches('^query.c: s.ref%("RouteSpecNope"%)', problem({ query = { c = s.ref("RouteSpecNope"):optional() } }))
      -- recursive refs to a known schema are fine
      s.object("RouteSpecTree", { { "children", s.array(s.ref("RouteSpecTree")):default({}) } })
      assert.truthy(spec({ response = s.ref("RouteSpecTree") }))
    end)
  end)

  describe("responses", function()
    it("accept a schema, a description, { description, schema, content_type }, ranges and default, sorted", function()
      local Err = s.object { { "detail", s.string() } }
      local sp = spec({ responses = {
        default = "anything else", ["5XX"] = Err, [409] = "Conflict here",
        [404] = { description = "not found", schema = Err }, [400] = {},
        [415] = { schema = s.string(), content_type = "text/plain" },
      } })
      assert.same({ 400, 404, 409, 415, "5XX", "default" }, (function()
        local out = {}
        for i, e in ipairs(sp.responses) do out[i] = e.status end
        return out
      end)())
      assert.same({ status = 400 }, sp.responses[1])
      assert.same({ status = 404, description = "not found", schema = Err }, sp.responses[2])
      assert.same({ status = 409, description = "Conflict here" }, sp.responses[3])
      assert.equal("text/plain", sp.responses[4].content_type)
      assert.same({ status = "5XX", schema = Err }, sp.responses[5])
      assert.same({ status = 200 }, sp.success)
    end)

    it("document the success answer from responses[status] too", function()
      local T = s.object { { "a", s.integer() } }
      local sp = spec({ responses = { [200] = T } })
      assert.same({ status = 200, schema = T }, sp.success)
      assert.same({}, sp.responses)
      assert.is_nil(sp.response) -- documented, not shaped
      sp = spec({ status = 201, response = T, responses = { [201] = "Created it" } }, "", j.Post)
      assert.same({ status = 201, schema = T, description = "Created it" }, sp.success)
      sp = spec({ response = T, responses = { [200] = { description = "The thing", schema = T } } })
      assert.same({ status = 200, schema = T, description = "The thing" }, sp.success)
      sp = spec({ status = 204, responses = { [204] = "Deleted", [404] = "no such thing" } })
      assert.same({ status = 204, description = "Deleted" }, sp.success)
      assert.equal(1, #sp.responses)
    end)

    it("reject other forms", function()
      local RESP = "a schema, a description string or { description =, schema =, content_type = }"
      assert.equal("responses: expected a table { [status] = " .. RESP .. " }, got \"404\"", problem({ responses = "404" }))
      assert.equal("responses: expected a table { [status] = " .. RESP .. " }, got an object schema",
        problem({ responses = s.object {} }))
      assert.equal('responses: keys must be status codes (integers 100..599), "1XX".."5XX" or "default", got "404"',
        problem({ responses = { ["404"] = "x" } }))
      assert.matches("got 99$", problem({ responses = { [99] = "x" } }))
      assert.matches('got "6XX"$', problem({ responses = { ["6XX"] = "x" } }))
      assert.matches("got 404.5$", problem({ responses = { [404.5] = "x" } }))
      assert.equal("responses[404]: expected " .. RESP .. ", got true", problem({ responses = { [404] = true } }))
      assert.equal("responses[404]: expected " .. RESP .. ", got 5", problem({ responses = { [404] = 5 } }))
      assert.equal('responses[404]: unknown key "descripton" (expected ' .. RESP .. ")",
        problem({ responses = { [404] = { descripton = "x" } } }))
      assert.equal('responses[404]: unknown key "detail" (expected ' .. RESP .. ")",
        problem({ responses = { [404] = { detail = s.string() } } }))
      assert.equal("responses[404].description: expected a string, got 1",
        problem({ responses = { [404] = { description = 1 } } }))
      assert.equal("responses[404].schema: expected a schema, got \"Err\"",
        problem({ responses = { [404] = { schema = "Err" } } }))
      assert.equal("responses[404].content_type: expected a non-empty string, got \"\"",
        problem({ responses = { [404] = { schema = s.string(), content_type = "" } } }))
      assert.equal("responses[404].content_type: give the schema of that content too",
        problem({ responses = { [404] = { content_type = "text/plain" } } }))
      assert.equal("responses[204]: a 204 answer has no body: give a description only",
        problem({ status = 204, responses = { [204] = s.string() } }))
      assert.equal("responses[304]: a 304 answer has no body: give a description only",
        problem({ responses = { [304] = { schema = s.string() } } }))
      assert.equal("responses[200]: the route's success answer already has response = ...; give its schema once",
        problem({ response = s.integer(), responses = { [200] = s.string() } }))
      assert.equal('responses["5XX"]: expected ' .. RESP .. ", got false", problem({ responses = { ["5XX"] = false } }))
    end)
  end)

  describe("the other options", function()
    it("keep documented values and any other key", function()
      local mw = function(_, nxt) return nxt() end
      local around = { around = function(_, _, nxt) return nxt() end }
      local sp = spec({ status = 202, name = "r_name", summary = "Sum", description = "Desc", operation_id = "op",
        deprecated = true, include_in_schema = false, tags = { "a" }, middlewares = { mw, around },
        persistence = { default = "read", audit = false }, roles = { "admin" } }, "", j.Post)
      assert.equal(202, sp.status)
      assert.same({ status = 202 }, sp.success)
      assert.equal("r_name", sp.name)
      assert.equal("Sum", sp.summary)
      assert.equal("Desc", sp.description)
      assert.equal("op", sp.operation_id)
      assert.is_true(sp.deprecated)
      assert.is_false(sp.include_in_schema)
      assert.same({ "a" }, sp.tags)
      assert.same({ mw, around }, sp.middlewares)
      assert.same({ default = "read", audit = false }, sp.persistence)
      assert.same({ "admin" }, sp.opts.roles) -- for interceptors (ctx.route.opts)
      for _, v in ipairs({ true, false, "read", "write" }) do assert.equal(v, spec({ persistence = v }).persistence) end
    end)

    it("take the controller's tags and include_in_schema when the route has none", function()
      assert.same({ "ctl" }, spec({}, "", nil, { tags = { "ctl" } }).tags)
      assert.same({ "own" }, spec({ tags = { "own" } }, "", nil, { tags = { "ctl" } }).tags)
      assert.same({ "ctl" }, spec({ tags = {} }, "", nil, { tags = { "ctl" } }).tags)
      assert.is_false(spec({}, "", nil, { include_in_schema = false }).include_in_schema)
    end)

    it("reject wrong values", function()
      assert.equal("status: expected an integer in 200..599, got 99", problem({ status = 99 }))
      assert.equal('status: expected an integer in 200..599, got "200"', problem({ status = "200" }))
      assert.equal("status: expected an integer in 200..599, got 200.5", problem({ status = 200.5 }))
      assert.equal("summary: expected a string, got 1", problem({ summary = 1 }))
      assert.equal("description: expected a string, got true", problem({ description = true }))
      assert.equal('name: expected a non-empty string, got ""', problem({ name = "" }))
      assert.equal("operation_id: expected a non-empty string, got 7", problem({ operation_id = 7 }))
      assert.equal('deprecated: expected true or false, got "yes"', problem({ deprecated = "yes" }))
      assert.equal("include_in_schema: expected true or false, got 0", problem({ include_in_schema = 0 }))
      assert.equal('tags: expected a list of strings, got "t"', problem({ tags = "t" }))
      assert.equal('tags: expected a list of strings, got the key "a"', problem({ tags = { a = "x" } }))
      assert.equal("tags[1]: expected a string, got 1", problem({ tags = { 1 } }))
      assert.equal("middlewares: expected a list of middlewares, got a function",
        problem({ middlewares = handler }))
      assert.equal("middlewares[2]: expected a function(req, next) or a table with around(self, req, next), got 5",
        problem({ middlewares = { handler, 5 } }))
      assert.equal("middlewares[1]: expected a function(req, next) or a table with around(self, req, next), got a table",
        problem({ middlewares = { { enter = handler } } }))
      assert.equal('persistence: expected true, false, "read", "write" or a table { name = one of those }, got "sometimes"',
        problem({ persistence = "sometimes" }))
      assert.equal('persistence: expected true, false, "read", "write" or a table { name = one of those }, '
        .. 'got the entry ["audit"] = "no"', problem({ persistence = { audit = "no" } }))
      assert.equal("controller include_in_schema: expected true or false, got \"no\"",
        problem({}, "", nil, { include_in_schema = "no" }))
      assert.equal("controller persistence: expected true, false, \"read\", \"write\" or a table { name = one of those },"
        .. " got 5", problem({}, "", nil, { persistence = 5 }))
      assert.equal("controller middlewares[1]: expected a function(req, next) or a table with around(self, req, next),"
        .. " got \"auth\"", problem({}, "", nil, { middlewares = { "auth" } }))
    end)

    it("reject a template the router refuses, with the router's reason", function()
      assert.equal('path: bad route template "/t/{id:float}": unknown converter "float"', problem({}, "/{id:float}"))
      assert.equal('path: bad route template "/t/{a}/{a}": duplicate parameter name "a"', problem({}, "/{a}/{a}"))
      assert.equal('path: bad route template "/t/{rest:path}/x": a \'path\' parameter must be the last segment',
        problem({}, "/{rest:path}/x"))
      assert.equal('path: bad route template "/t/x{id}": a parameter must fill its whole segment', problem({}, "/x{id}"))
    end)
  end)

  describe("where", function()
    it("names the route's line, and the controller's place when the route comes from another file", function()
      local Base = assert(load([[
        local j = require "jararaca"
        local B = j.RestController("/b", { name = "BaseController" })
        B.item = j.Get("/{id}", { status = 99 }, function() end)
        return B
      ]], "@base_controller.lua"))()
      local C = j.RestController("/c", { name = "ChildController", extends = Base })
      local route = controller.collect(C)[1]
      local _, err = route_spec.normalize(route)
      assert.matches("^base_controller.lua:3: route ChildController.item %(GET /c/{id}%) of the controller declared at "
        .. ".-route_spec_spec%.lua:%d+: status: expected an integer in 200..599, got 99$", err)
      assert.matches("^base_controller.lua:3: route BaseController.item %(GET /b/{id}%): status",
        select(2, route_spec.normalize(controller.collect(Base)[1])))
    end)
  end)

  describe("routes", function()
    it("normalizes every route of every controller, in order, into one router", function()
      local A = j.RestController("/a", { name = "AController" })
      A.one = j.Get("/{id:int}", { params = { id = s.integer { minimum = 1 } } }, handler)
      A.two = j.Post("", handler)
      local B = j.RestController("/b", { name = "BController" })
      B.three = j.Get("", handler)
      local routes, router = route_spec.routes({ A, "not a controller", B })
      assert.equal(3, #routes)
      for i, r in ipairs(routes) do
        assert.equal(i, r.id)
        assert.equal(r.member, r.spec.member)
      end
      assert.same({ "one", "two", "three" }, { routes[1].member, routes[2].member, routes[3].member })
      local id, params = router:match("GET", "/a/7")
      assert.equal(1, id)
      assert.equal(7, params.id)
      assert.equal(3, (router:match("GET", "/b")))
    end)

    it("refuses the first bad route, and two routes the router cannot tell apart", function()
      local A = j.RestController("/a", { name = "AController" })
      A.one = j.Get("/{id}", handler)
      A.two = j.Get("/{key}", handler)
      local routes, err, code = route_spec.routes({ A })
      assert.is_nil(routes)
      assert.equal("invalid", code)
      assert.matches("route_spec_spec%.lua:%d+: route AController.two %(GET /a/{key}%): path: GET /a/{key} "
        .. "conflicts with GET /a/{id} %(route AController.one, declared at .-route_spec_spec%.lua:%d+%)$", err)
      local B = j.RestController("/b", { name = "BController" })
      B.bad = j.Get("", { query = 1 }, handler)
      routes, err = route_spec.routes({ B })
      assert.is_nil(routes)
      assert.matches("route BController.bad %(GET /b%): query: expected", err)
    end)

    it("raises on misuse", function()
      assert.matches("route_spec.routes%(controllers%): expected a list of controllers, got nil",
        select(2, pcall(route_spec.routes)))
      assert.matches("route_spec.normalize%(route%): expected a route from controller.collect, got string",
        select(2, pcall(route_spec.normalize, "GET /")))
    end)
  end)
end)
