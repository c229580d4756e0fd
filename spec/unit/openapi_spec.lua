-- Specs for jararaca.openapi (the OpenAPI 3.1 document) and
-- jararaca.docs_page (the /docs HTML): examples/hello, the typed test app
-- and small apps built with jararaca.schema's constructors.
local openapi = require "jararaca.openapi"
local docs_page = require "jararaca.docs_page"
local json = require "jararaca.json"
local runtime = require "jararaca.runtime"
local j = require "jararaca"
local s = require "jararaca.schema"
local controller = require "jararaca.http.controller"

local find = string.find

local function load(path)
  return assert(runtime.load_app(path))
end

local function op(doc, path, method)
  local item = doc.paths[path]
  assert(item, "no path " .. path)
  local o = item[method]
  assert(o, "no " .. method .. " " .. path)
  return o
end

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function params(o)
  local out = {}
  for i, p in ipairs(o.parameters or {}) do out[i] = p["in"] .. ":" .. p.name end
  return out
end

local function param(o, where, name)
  for _, p in ipairs(o.parameters or {}) do
    if p["in"] == where and p.name == name then return p end
  end
  error("no " .. where .. " parameter " .. name)
end

local function schema_of(content)
  return content["application/json"].schema
end

-- Every "$ref" in t, with a check that each resolves in doc.
local function check_refs(doc, t, seen)
  seen = seen or {}
  if type(t) ~= "table" then return seen end
  local ref = t["$ref"]
  if ref then
    local name = ref:match("^#/components/schemas/(.+)$")
    assert(name, "unexpected $ref " .. ref)
    assert(doc.components and doc.components.schemas[name], "dangling $ref " .. ref)
    seen[name] = true
  end
  for _, v in pairs(t) do check_refs(doc, v, seen) end
  return seen
end

local function encode(doc)
  return assert(json.encode(doc))
end

local function app_of(controllers, extra)
  local t = { controllers = controllers }
  for k, v in pairs(extra or {}) do t[k] = v end
  return j.Microservice(t)
end

local function handler() end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("jararaca.openapi", function()
  describe("examples/hello", function()
    local app, doc
    setup(function()
      s._reset_registry() -- the app declares "User"
      app = load("examples/hello/app.lua")
      doc = openapi.document(app)
    end)

    it("is an OpenAPI 3.1.0 document with info from the app", function()
      assert.equal("3.1.0", doc.openapi)
      assert.equal(app.name or "jararaca app", doc.info.title)
      assert.equal("0.1.0", doc.info.version)
      assert.is_nil(doc.info.description)
    end)

    it("has one operation per route, templates converted, docs routes excluded", function()
      local n = 0
      for _, r in ipairs(controller.collect(app.controllers[1])) do
        local o = op(doc, openapi.path_template(r.path), r.method:lower())
        assert.equal(r.member, o.operationId)
        n = n + 1
      end
      local m = 0
      for _, item in pairs(doc.paths) do for _ in pairs(item) do m = m + 1 end end
      assert.equal(n, m)
      assert.truthy(doc.paths["/items/{id}"])
      assert.is_nil(doc.paths["/items/{id:int}"])
      assert.is_nil(doc.paths["/openapi.json"])
      assert.is_nil(doc.paths["/docs"])
    end)

    it("summarises operations from opts.summary, else the member name", function()
      for _, r in ipairs(controller.collect(app.controllers[1])) do
        local o = op(doc, openapi.path_template(r.path), r.method:lower())
        local want = r.opts.summary or (r.member:gsub("_(%l)", function(c) return " " .. c:upper() end)
          :gsub("^%l", string.upper))
        assert.equal(want, o.summary)
        assert.is_nil(o.tags)
      end
    end)

    it("types path parameters from the template converter", function()
      local o = op(doc, "/items/{id}", "get")
      assert.same({ "path:id" }, params(o))
      local p = param(o, "path", "id")
      assert.is_true(p.required)
      assert.same({ type = "integer", format = "int64" }, p.schema)
      assert.is_nil(op(doc, "/hello", "get").parameters)
    end)

    it("documents untyped routes: 200 with any JSON, no body, no 422", function()
      for _, o in ipairs({ op(doc, "/hello", "get"), op(doc, "/items/{id}", "get"), op(doc, "/echo", "post") }) do
        assert.same({ "200" }, keys(o.responses))
        assert.equal("Successful Response", o.responses["200"].description)
        assert.same({}, schema_of(o.responses["200"].content))
        assert.is_nil(o.requestBody)
      end
    end)

    it("documents the typed route with its components", function()
      local o = op(doc, "/users", "post")
      assert.same({ ["$ref"] = "#/components/schemas/User" }, schema_of(o.requestBody.content))
      assert.same({ "201", "422" }, keys(o.responses))
      assert.same({ ["$ref"] = "#/components/schemas/User" }, schema_of(o.responses["201"].content))
      assert.same({ "HTTPValidationError", "Role", "User", "ValidationError" }, keys(doc.components.schemas))
      local user = doc.components.schemas.User
      assert.same({ ["$ref"] = "#/components/schemas/Role" }, user.properties.role)
      assert.same({ type = { "string", "null" } }, user.properties.nickname)
      assert.is_true(user.properties.active.default)
      assert.equal("email", user.properties.email.format)
      check_refs(doc, doc)
    end)

    it("encodes with a stable, readable key order", function()
      local text = encode(doc)
      assert.truthy(find(text, '^{"openapi":"3.1.0","info":{"title":"[^"]*","version":"0.1.0"},"paths":{'))
      local a, b, c = find(text, '"/hello"', 1, true), find(text, '"/items/{id}"', 1, true), find(text, '"/echo"', 1, true)
      assert.truthy(a < b and b < c, "paths in declaration order")
      assert.truthy(find(text, '"schema":{}', 1, true), "the any schema is an empty object")
      assert.truthy(find(text, '"tags":{"type":"array"', 1, true))
      assert.truthy(find(text, '"default":[]', 1, true), "an empty default list is []")
      assert.equal(text, encode(openapi.document(app)), "deterministic")
    end)
  end)

  describe("the typed app", function()
    local doc, text
    setup(function()
      s._reset_registry() -- the app declares "Task" etc.
      doc = openapi.document(load("spec/integration/apps/typed.lua"))
      text = encode(doc)
    end)

    it("takes title and version from app.openapi", function()
      assert.equal("Typed test app", doc.info.title)
      assert.equal("1.2.3", doc.info.version)
    end)

    it("lists every route under its converted path", function()
      assert.same({ "/misc/area", "/misc/count/{n}", "/misc/tree", "/tasks", "/tasks/{task_id}" }, keys(doc.paths))
      assert.same({ "get", "post" }, keys(doc.paths["/tasks"]))
      assert.same({ "delete", "get" }, keys(doc.paths["/tasks/{task_id}"]))
    end)

    it("documents body, status, response and 422 of POST /tasks", function()
      local o = op(doc, "/tasks", "post")
      assert.equal("Create a task", o.summary)
      assert.same({ "tasks" }, o.tags)
      assert.is_true(o.requestBody.required)
      assert.same({ ["$ref"] = "#/components/schemas/TaskCreate" }, schema_of(o.requestBody.content))
      assert.same({ "201", "422" }, keys(o.responses))
      assert.same({ ["$ref"] = "#/components/schemas/Task" }, schema_of(o.responses["201"].content))
      assert.same({ ["$ref"] = "#/components/schemas/HTTPValidationError" }, schema_of(o.responses["422"].content))
      assert.equal("Validation Error", o.responses["422"].description)
    end)

    it("documents query parameters with defaults and optionality", function()
      local o = op(doc, "/tasks", "get")
      assert.same({ "query:page", "query:page_size", "query:priority" }, params(o))
      local page = param(o, "query", "page")
      assert.is_false(page.required)
      assert.same({ type = "integer", format = "int64", minimum = 0, default = 0 }, page.schema)
      assert.same({ type = "integer", format = "int64", minimum = 1, maximum = 100, default = 10 },
        param(o, "query", "page_size").schema)
      local pr = param(o, "query", "priority")
      assert.is_false(pr.required)
      assert.same({ ["$ref"] = "#/components/schemas/Priority" }, pr.schema)
      assert.same({ ["$ref"] = "#/components/schemas/TaskPage" }, schema_of(o.responses["200"].content))
      assert.truthy(o.responses["422"])
    end)

    it("documents typed path and header parameters and extra responses", function()
      local o = op(doc, "/tasks/{task_id}", "get")
      assert.same({ "path:task_id", "header:x-trace" }, params(o))
      local id = param(o, "path", "task_id")
      assert.is_true(id.required)
      assert.same({ type = "string", format = "uuid" }, id.schema)
      local tr = param(o, "header", "x-trace")
      assert.is_false(tr.required)
      assert.same({ type = "string" }, tr.schema)
      assert.same({ "200", "404", "422" }, keys(o.responses))
      assert.equal("Not Found", o.responses["404"].description)
      assert.same({ ["$ref"] = "#/components/schemas/NotFound" }, schema_of(o.responses["404"].content))
    end)

    it("documents 204 without content", function()
      local o = op(doc, "/tasks/{task_id}", "delete")
      assert.same({ "204", "422" }, keys(o.responses))
      assert.is_nil(o.responses["204"].content)
    end)

    it("leaves 422 out when nothing is validated", function()
      local o = op(doc, "/misc/count/{n}", "get")
      assert.same({ "200" }, keys(o.responses))
      assert.same({ type = "integer", format = "int64" }, param(o, "path", "n").schema)
    end)

    it("has a component for every reachable named object and enum, and only those", function()
      assert.same({ "Circle", "HTTPValidationError", "NotFound", "Priority", "Square", "Tag", "Task",
        "TaskCreate", "TaskPage", "TreeNode", "ValidationError" }, keys(doc.components.schemas))
      local used = check_refs(doc, doc)
      for name in pairs(doc.components.schemas) do assert.is_true(used[name], name .. " is referenced") end
      assert.falsy(find(text, "TaskDoneEvent", 1, true), "exposed-only types are not in the document")
    end)

    it("has FastAPI's validation error components", function()
      local sc = doc.components.schemas
      assert.same({ ["$ref"] = "#/components/schemas/ValidationError" }, sc.HTTPValidationError.properties.detail.items)
      assert.same({ "loc", "msg", "type" }, sc.ValidationError.required)
      assert.equal("array", sc.ValidationError.properties.loc.type)
    end)

    it("maps fields: constraints, defaults, enums, dates, maps, nullable", function()
      local tc = doc.components.schemas.TaskCreate
      assert.equal("object", tc.type)
      assert.equal("TaskCreate", tc.title)
      assert.same({ "name" }, tc.required)
      local p = tc.properties
      assert.same({ type = "string", minLength = 1, maxLength = 100, description = "What to do" }, p.name)
      assert.same({ ["$ref"] = "#/components/schemas/Priority", default = "normal" }, p.priority)
      assert.same({ type = "array", items = { ["$ref"] = "#/components/schemas/Tag" }, maxItems = 5, default = {} }, p.tags)
      assert.same({ type = "string", format = "date" }, p.due)
      assert.same({ type = { "number", "null" }, minimum = 0 }, p.estimate_hours)
      assert.same({ type = "object", additionalProperties = { type = "string" } }, p.meta)
      assert.truthy(find(text, '"tags":{"type":"array","items":{"$ref":"#/components/schemas/Tag"},"maxItems":5,"default":[]}', 1, true)
        or find(text, '"default":[]', 1, true))
      assert.same({ type = "string", enum = { "low", "normal", "high" }, title = "Priority" }, doc.components.schemas.Priority)
    end)

    it("keeps object fields in declaration order", function()
      local a = find(text, '"TaskCreate":{', 1, true)
      local n, pr, t, d = find(text, '"name":', a, true), find(text, '"priority":', a, true),
        find(text, '"tags":', a, true), find(text, '"due":', a, true)
      assert.truthy(n < pr and pr < t and t < d)
    end)

    it("translates Lua patterns and keeps the original", function()
      local color = doc.components.schemas.Tag.properties.color
      assert.equal("^#[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]$", color.pattern)
      assert.equal("^#%x%x%x%x%x%x$", color["x-lua-pattern"])
    end)

    it("writes an extension as allOf [base, own fields]", function()
      local task = doc.components.schemas.Task
      assert.equal("Task", task.title)
      assert.equal(2, #task.allOf)
      assert.same({ ["$ref"] = "#/components/schemas/TaskCreate" }, task.allOf[1])
      local own = task.allOf[2]
      assert.equal("object", own.type)
      assert.same({ "big", "created_at", "done", "id", "kind" }, keys(own.properties))
      assert.same({ "id", "done", "created_at", "kind" }, own.required)
      assert.same({ type = "string", const = "task" }, own.properties.kind)
      assert.same({ type = "string", format = "date-time" }, own.properties.created_at)
      assert.same({ type = "integer", format = "int64" }, own.properties.big)
    end)

    it("references recursive objects", function()
      local node = doc.components.schemas.TreeNode
      assert.same({ ["$ref"] = "#/components/schemas/TreeNode" }, node.properties.children.items)
      assert.same({ ["$ref"] = "#/components/schemas/TreeNode" }, schema_of(op(doc, "/misc/tree", "post").requestBody.content))
    end)

    it("writes one_of as oneOf with a discriminator when the variants have a literal tag", function()
      local body = schema_of(op(doc, "/misc/area", "post").requestBody.content)
      assert.same({ { ["$ref"] = "#/components/schemas/Circle" }, { ["$ref"] = "#/components/schemas/Square" } }, body.oneOf)
      assert.same({ propertyName = "kind", mapping = {
        circle = "#/components/schemas/Circle", square = "#/components/schemas/Square" } }, body.discriminator)
      local resp = schema_of(op(doc, "/misc/area", "post").responses["200"].content)
      assert.same({ type = "object", properties = { area = { type = "number" } }, required = { "area" } }, resp)
    end)

    it("has unique operationIds", function()
      local seen = {}
      for _, item in pairs(doc.paths) do
        for _, o in pairs(item) do
          assert.is_nil(seen[o.operationId], o.operationId)
          seen[o.operationId] = true
        end
      end
    end)
  end)

  describe("schemas", function()
    before_each(function() s._reset_registry() end)

    local function one(schema)
      local out, comps = openapi.schema(schema)
      return out, comps
    end

    it("maps every scalar kind", function()
      assert.same({ type = "string", format = "email", minLength = 3 }, (one(s.string { format = "email", min_length = 3 })))
      assert.same({ type = "integer", format = "int64", exclusiveMinimum = 0, maximum = 9 },
        (one(s.integer { exclusive_minimum = 0, maximum = 9 })))
      assert.same({ type = "number", exclusiveMaximum = 1.5 }, (one(s.number { exclusive_maximum = 1.5 })))
      assert.same({ type = "boolean" }, (one(s.boolean())))
      assert.same({ type = "string", format = "uuid" }, (one(s.uuid())))
      assert.same({ type = "string", format = "date" }, (one(s.date())))
      assert.same({ type = "string", format = "date-time" }, (one(s.datetime())))
      assert.same({}, (one(s.any())))
      assert.same({ type = "integer", const = 3 }, (one(s.literal(3))))
      assert.same({ type = "number", const = 1.5 }, (one(s.literal(1.5))))
      assert.same({ type = "boolean", const = true }, (one(s.literal(true))))
      assert.same({ type = "string", enum = { "a", "b" } }, (one(s.enum({ "a", "b" }))))
      assert.same({ type = "array", items = { type = "string" }, minItems = 1 }, (one(s.array(s.string(), { min_items = 1 }))))
    end)

    it("keeps docs: title, description, examples, deprecated", function()
      local out = one(s.string { title = "T", description = "D", deprecated = true, example = "x" })
      assert.same({ type = "string", title = "T", description = "D", deprecated = true, examples = { "x" } }, out)
      assert.truthy(find(encode(out), '"examples":["x"]', 1, true))
    end)

    it("writes nullable as a type array or oneOf with null", function()
      assert.same({ type = { "string", "null" }, maxLength = 3 }, (one(s.string { max_length = 3 }:nullable())))
      assert.same({ type = { "array", "null" }, items = { type = "integer", format = "int64" } },
        (one(s.array(s.integer()):nullable())))
      local E = s.enum("Color", { "red", "green" })
      local out, comps = one(E:nullable())
      assert.same({ oneOf = { { ["$ref"] = "#/components/schemas/Color" }, { type = "null" } } }, out)
      assert.truthy(comps.Color)
      assert.same({ oneOf = { { type = "string", enum = { "x" } }, { type = "null" } } }, (one(s.enum({ "x" }):nullable())))
      assert.same({ oneOf = { { type = "string", const = "x" }, { type = "null" } } }, (one(s.literal("x"):nullable())))
      assert.same({}, (one(s.any():nullable())))
      assert.same({ type = { "string", "null" } }, (one(s.nullable(s.nullable(s.string())))))
    end)

    it("writes one_of of scalars as plain oneOf", function()
      assert.same({ oneOf = { { type = "string" }, { type = "integer", format = "int64" } } },
        (one(s.one_of(s.string(), s.integer()))))
    end)

    it("pulls in objects only reached through schema.ref, and resolves recursion", function()
      local A = s.object("A", { { "b", s.ref("B"):optional() } })
      s.object("B", { { "a", s.ref("A") }, { "self", s.array(s.ref("B")) } })
      local out, comps = one(A)
      assert.same({ ["$ref"] = "#/components/schemas/A" }, out)
      assert.same({ "A", "B" }, keys(comps))
      assert.same({ ["$ref"] = "#/components/schemas/A" }, comps.B.properties.a)
      assert.same({ ["$ref"] = "#/components/schemas/B" }, comps.B.properties.self.items)
    end)

    it("raises for a ref to an unknown name", function()
      local ok, err = pcall(openapi.schema, s.object { { "x", s.ref("Nowhere") } })
      assert.is_false(ok)
      assert.matches('schema.ref%("Nowhere"%) names no registered schema', tostring(err))
    end)

    it("flattens an extension that redeclares a base field", function()
      local Base = s.object("Base", { { "id", s.integer() }, { "name", s.string() } })
      local Ext = s.extend(Base, "Ext", { { "name", s.string { max_length = 5 } }, { "extra", s.boolean() } })
      local _, comps = one(Ext)
      local e = comps.Ext
      assert.is_nil(e.allOf)
      assert.equal("object", e.type)
      assert.same({ "extra", "id", "name" }, keys(e.properties))
      assert.same({ type = "string", maxLength = 5 }, e.properties.name)
      assert.is_nil(comps.Base, "the flattened base is not needed")
    end)

    it("uses the registered original of a modified named schema, with use-site docs on the $ref", function()
      local P = s.object("P", { { "x", s.integer() } }, { description = "a point" })
      local out, comps = one(s.object { { "p", P:describe("where") }, { "q", P:optional() } })
      assert.equal("a point", comps.P.description)
      assert.same({ ["$ref"] = "#/components/schemas/P", description = "where" }, out.properties.p)
      assert.same({ ["$ref"] = "#/components/schemas/P" }, out.properties.q)
      assert.same({ "p" }, out.required)
    end)

    it("marks additional = forbid with additionalProperties false", function()
      assert.same({ type = "object", properties = { a = { type = "string" } }, required = { "a" }, additionalProperties = false },
        (one(s.object({ { "a", s.string() } }, { additional = "forbid" }))))
    end)

    it("works on hand-built model tables with a lookup", function()
      local T = { kind = "object", name = "T", fields = {
        { name = "n", schema = { kind = "ref", name = "T" }, required = false, has_default = false },
      } }
      local out, comps = openapi.schema({ kind = "array", items = { kind = "ref", name = "T" } },
        { lookup = function(name) return name == "T" and T or nil end })
      assert.same({ type = "array", items = { ["$ref"] = "#/components/schemas/T" } }, out)
      assert.same({ ["$ref"] = "#/components/schemas/T" }, comps.T.properties.n)
    end)

    it("rejects what is not a schema", function()
      assert.has_error(function() openapi.schema("x") end)
      local ok, err = pcall(openapi.schema, { kind = "weird" })
      assert.is_false(ok)
      assert.matches('unknown schema kind "weird"', tostring(err))
    end)
  end)

  describe("Lua patterns", function()
    local re = openapi.lua_pattern_to_regex
    it("translates classes, sets, quantifiers and anchors", function()
      assert.equal("^[0-9]+$", re("^%d+$"))
      assert.equal("[A-Za-z0-9_]+", re("[%w_]+"))
      assert.equal("^[^ \\t\\n\\r\\f\\v]*", re("^%S*"))
      assert.equal("a[\\s\\S]*?b", re("a.-b"))
      assert.equal("x\\.y", re("x%.y"))
      assert.equal("[a-z]?\\$x", re("[a-z]?%$x"))
      assert.equal("(ab)+c", re("(ab)+c"))
      assert.equal("a\\^b\\$c", re("a^b$c"))
      assert.equal("[\\]a]", re("[]a]"))
    end)
    it("gives up on what has no exact equivalent", function()
      assert.is_nil(re("%b()"))
      assert.is_nil(re("%f[%w]"))
      assert.is_nil(re("(a)%1"))
      assert.is_nil(re("()"))
      assert.is_nil(re("[%S]"))
      assert.is_nil(re("[abc"))
    end)
  end)

  describe("operations", function()
    before_each(function() s._reset_registry() end)

    it("makes clashing operationIds unique with the controller name", function()
      local A = j.RestController("/a", { name = "AController" })
      A.list = j.Get("", handler)
      local B = j.RestController("/b", { name = "BController" })
      B.list = j.Get("", handler)
      B.other = j.Get("/x", { operation_id = "custom" }, handler)
      B.other2 = j.Get("/y", { operation_id = "custom" }, handler)
      local doc = openapi.document(app_of({ A, B }))
      assert.equal("AController_list", op(doc, "/a", "get").operationId)
      assert.equal("BController_list", op(doc, "/b", "get").operationId)
      assert.equal("BController_custom", op(doc, "/b/x", "get").operationId)
      assert.equal("BController_custom_2", op(doc, "/b/y", "get").operationId)
    end)

    it("takes summary, description, tags and deprecated from the route, tags else from the controller", function()
      local C = j.RestController("/c", { tags = { "ctrl" } })
      C.one = j.Get("/1", { summary = "One", description = "Long text", tags = { "mine", "two" }, deprecated = true }, handler)
      C.get_thing = j.Get("/2", handler)
      local doc = openapi.document(app_of({ C }))
      local one = op(doc, "/c/1", "get")
      assert.equal("One", one.summary)
      assert.equal("Long text", one.description)
      assert.same({ "mine", "two" }, one.tags)
      assert.is_true(one.deprecated)
      local two = op(doc, "/c/2", "get")
      assert.equal("Get Thing", two.summary)
      assert.same({ "ctrl" }, two.tags)
      assert.same({ { name = "mine" }, { name = "two" }, { name = "ctrl" } }, doc.tags)
    end)

    it("reads extra responses as schemas, descriptions or tables, and 204 without content", function()
      local Err = s.object("Err", { { "detail", s.string() } })
      local C = j.RestController("/r")
      C.x = j.Post("", {
        status = 204,
        body = s.object { { "a", s.integer() } },
        responses = { [409] = "Conflict here", [400] = { description = "Bad", schema = Err }, ["5XX"] = Err },
      }, handler)
      local doc = openapi.document(app_of({ C }))
      local o = op(doc, "/r", "post")
      assert.same({ "204", "400", "409", "422", "5XX" }, keys(o.responses))
      assert.same({ description = "Successful Response" }, o.responses["204"])
      assert.same({ description = "Conflict here" }, o.responses["409"])
      assert.equal("Bad", o.responses["400"].description)
      assert.same({ ["$ref"] = "#/components/schemas/Err" }, schema_of(o.responses["400"].content))
      assert.same({ ["$ref"] = "#/components/schemas/Err" }, schema_of(o.responses["5XX"].content))
      assert.same({ type = "object", properties = { a = { type = "integer", format = "int64" } }, required = { "a" } },
        schema_of(o.requestBody.content))
      local text = encode(doc)
      local p = { find(text, '"204"', 1, true), find(text, '"400"', 1, true), find(text, '"409"', 1, true),
        find(text, '"422"', 1, true), find(text, '"5XX"', 1, true) }
      for i = 2, #p do assert.truthy(p[i - 1] < p[i], "responses sorted") end
    end)

    it("documents path, query (sorted by name) and header parameters; an :optional() body is not required", function()
      local C = j.RestController("/p")
      C.x = j.Put("/{b}/{a:int}", {
        params = { b = s.string { min_length = 2 } },
        query = { z = s.string(), y = s.integer():default(3), tags = s.array(s.string()):optional(),
          flag = s.boolean():default(false) },
        headers = { ["X-Key"] = s.string { description = "the key" } },
        body = s.object { { "v", s.any() } }:optional(),
      }, handler)
      local doc = openapi.document(app_of({ C }))
      local o = op(doc, "/p/{b}/{a}", "put")
      assert.same({ "path:b", "path:a", "query:flag", "query:tags", "query:y", "query:z", "header:x-key" }, params(o))
      assert.same({ type = "boolean", default = false }, param(o, "query", "flag").schema)
      assert.same({ type = "string", minLength = 2 }, param(o, "path", "b").schema)
      assert.same({ type = "integer", format = "int64" }, param(o, "path", "a").schema)
      assert.is_true(param(o, "query", "z").required)
      assert.is_false(param(o, "query", "y").required)
      assert.equal(3, param(o, "query", "y").schema.default)
      assert.same({ type = "array", items = { type = "string" } }, param(o, "query", "tags").schema)
      local key = param(o, "header", "x-key")
      assert.is_true(key.required)
      assert.equal("the key", key.description)
      assert.is_false(o.requestBody.required)
      C.y = j.Post("/y", { body = s.object { { "v", s.any() } } }, handler)
      assert.is_true(op(openapi.document(app_of({ C })), "/p/y", "post").requestBody.required)
    end)

    it("also reads params/query given as an object schema, in field order", function()
      local C = j.RestController("/q")
      C.x = j.Get("", { query = s.object { { "z", s.string() }, { "y", s.integer():default(3) },
        { "f", s.boolean():default(false) } } }, handler)
      local o = op(openapi.document(app_of({ C })), "/q", "get")
      assert.same({ "query:z", "query:y", "query:f" }, params(o))
      assert.equal(false, param(o, "query", "f").schema.default)
      assert.is_true(param(o, "query", "z").required)
      assert.is_false(param(o, "query", "y").required)
    end)

    it("excludes routes with include_in_schema = false, unknown methods and the docs paths", function()
      local C = j.RestController("")
      C.hidden = j.Get("/hidden", { include_in_schema = false }, handler)
      C.purge = j.Route("PURGE", "/cache", handler)
      C.spec = j.Get("/openapi.json", handler)
      C.page = j.Get("/docs", handler)
      C.head = j.Route("HEAD", "/h", handler)
      C.shown = j.Get("/shown", handler)
      local D = j.RestController("/internal", { include_in_schema = false })
      D.x = j.Get("/x", handler)
      local doc = openapi.document(app_of({ C, D }))
      assert.same({ "/h", "/shown" }, keys(doc.paths))
      assert.truthy(doc.paths["/h"].head)
      -- with docs disabled the paths are ordinary routes again
      doc = openapi.document(app_of({ C }, { openapi = false }))
      assert.same({ "/docs", "/h", "/openapi.json", "/shown" }, keys(doc.paths))
    end)

    it("keeps the first of two routes that map to the same path and method", function()
      local C = j.RestController("/k")
      C.a = j.Get("/{id:int}", handler)
      C.b = j.Get("/{id:uuid}", handler)
      local doc = openapi.document(app_of({ C }))
      assert.equal("a", op(doc, "/k/{id}", "get").operationId)
    end)

    it("ignores controllers that are not REST controllers", function()
      local doc = openapi.document(app_of({ { __name = "BusController", handlers = {} } }))
      assert.equal("jararaca app", doc.info.title)
      assert.equal("0.1.0", doc.info.version)
      assert.is_nil(doc.components)
      assert.same({}, keys(doc.paths))
      assert.equal("{}", encode(doc.paths))
    end)

    it("names the route when a schema cannot be documented", function()
      local C = j.RestController("/bad", { name = "BadController" })
      -- a table that passes for a schema, of a kind the generator does not know
      C.x = j.Get("", { response = setmetatable({ kind = "mystery" }, getmetatable(s.string())) }, handler)
      local ok, err = pcall(openapi.document, app_of({ C }))
      assert.is_false(ok)
      assert.matches('openapi_spec%.lua:%d+: route BadController.x %(GET /bad%): openapi: unknown schema kind "mystery"$',
        tostring(err))
    end)

    it("lets opts override info and add servers", function()
      local doc = openapi.document(app_of({}, { name = "svc", openapi = { description = "About" } }),
        { version = "9", servers = { { url = "https://api.example.com", description = "prod" } } })
      assert.equal("svc", doc.info.title)
      assert.equal("About", doc.info.description)
      assert.equal("9", doc.info.version)
      assert.same({ { url = "https://api.example.com", description = "prod" } }, doc.servers)
    end)

    it("raises on misuse", function()
      assert.matches("openapi_spec.lua:%d+: openapi.document%(app%): expected a Microservice, got string",
        err_of(function() openapi.document("app") end))
      assert.matches("openapi.document%(app, opts%): opts must be a table, got number",
        err_of(openapi.document, app_of({}), 5))
    end)
  end)

  describe("config", function()
    it("defaults the paths and the title", function()
      assert.same({ path = "/openapi.json", docs_path = "/docs", title = "jararaca app", version = "0.1.0" },
        openapi.config(app_of({})))
      assert.same({ path = "/openapi.json", docs_path = "/docs", title = "svc", version = "0.1.0" },
        openapi.config(app_of({}, { name = "svc" })))
    end)

    it("reads app.openapi", function()
      local cfg = openapi.config(app_of({}, { openapi = {
        title = "T", version = "2", description = "D", path = "/api/spec.json", docs_path = "/api/docs" } }))
      assert.same({ path = "/api/spec.json", docs_path = "/api/docs", title = "T", version = "2", description = "D" }, cfg)
    end)

    it("is nil when disabled; docs_path = false disables only the page", function()
      assert.is_nil(openapi.config(app_of({}, { openapi = false })))
      local cfg = openapi.config(app_of({}, { openapi = { docs_path = false } }))
      assert.equal("/openapi.json", cfg.path)
      assert.is_nil(cfg.docs_path)
    end)
  end)
end)

describe("jararaca.docs_page", function()
  it("renders one self-contained page that loads the spec", function()
    local html = docs_page.render { spec_url = "/openapi.json", title = "My API" }
    assert.truthy(find(html, "^<!DOCTYPE html>"))
    assert.truthy(find(html, "<title>My API</title>", 1, true))
    assert.truthy(find(html, 'data-spec-url="/openapi.json"', 1, true))
    assert.truthy(find(html, "<style>", 1, true))
    assert.truthy(find(html, "fetch(config.spec_url", 1, true))
    -- nothing external
    assert.falsy(find(html, "<script src", 1, true))
    assert.falsy(find(html, "<link", 1, true))
    assert.falsy(find(html, "https?://"))
    assert.falsy(find(html, "@import", 1, true))
    assert.falsy(find(html, "{{", 1, true), "every placeholder filled")
  end)

  it("escapes the title and the spec url", function()
    local html = docs_page.render { spec_url = '/x"y.json', title = "</script><b>&" }
    assert.truthy(find(html, "<title>&lt;/script&gt;&lt;b&gt;&amp;</title>", 1, true))
    assert.truthy(find(html, 'data-spec-url="/x&quot;y.json"', 1, true))
    assert.falsy(find(html, "</script><b>", 1, true))
    assert.truthy(find(html, "\\u003c/script\\u003e", 1, true), "the JSON config cannot close its script tag")
  end)

  it("defaults the title and checks its options", function()
    assert.truthy(find(docs_page.render { spec_url = "/s" }, "<title>API documentation</title>", 1, true))
    assert.matches("expected a table", err_of(docs_page.render))
    assert.truthy(find(err_of(docs_page.render, { title = "x" }),
      "docs_page.render: spec_url must be a non-empty string, got nil", 1, true))
    assert.matches("title must be a string", err_of(docs_page.render, { spec_url = "/s", title = 1 }))
  end)
end)
