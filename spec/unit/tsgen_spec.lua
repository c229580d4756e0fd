-- Specs for jararaca.tsgen: the TypeScript text generated for apps (hand-built
-- schema models, examples/hello and the typed test app).
local tsgen = require "jararaca.tsgen"
local j = require "jararaca"
local runtime = require "jararaca.runtime"

local find = string.find

local function has(text, snippet)
  if not find(text, snippet, 1, true) then
    error(("expected the output to contain:\n%s\n--- output ---\n%s"):format(snippet, text), 2)
  end
end

local function hasnt(text, snippet)
  if find(text, snippet, 1, true) then
    error(("expected the output NOT to contain:\n%s\n--- output ---\n%s"):format(snippet, text), 2)
  end
end

-- Position of snippet (asserting it is there).
local function pos(text, snippet)
  local p = find(text, snippet, 1, true)
  assert(p, "missing: " .. snippet)
  return p
end

local s = require "jararaca.schema"

---------------------------------------------------------------------------
-- Hand-built model tables (docs/schema-model.md) for what the constructors
-- refuse to build (unknown kinds, bad names, ...), with their own registry.
---------------------------------------------------------------------------

local function field(name, schema, optional)
  return { name = name, schema = schema, required = not optional, has_default = false }
end

local function obj(name, fields)
  return { kind = "object", name = name, fields = fields, own_fields = fields, additional = "drop" }
end

-- A hand-built table that passes for a schema in route options (which
-- take only jararaca.schema values): the generator still meets its insides.
local function as_schema(t)
  return setmetatable(t, getmetatable(s.string()))
end

local function registry(named, exposed)
  local by_name = {}
  for _, sc in ipairs(named or {}) do by_name[sc.name] = sc end
  return {
    lookup = function(name) return by_name[name] end,
    exposed = function() return exposed or {} end,
  }
end

local function app_of(controllers)
  return j.Microservice { controllers = controllers }
end

local function handler() end

---------------------------------------------------------------------------
-- An app built with jararaca.schema's constructors
---------------------------------------------------------------------------

local function model_app()
  local Priority = s.enum("Priority", { "low", "normal", "high" })
  local Tag = s.object("Tag", {
    { "name", s.string { min_length = 1, description = "The tag's label" } },
    { "color", s.string():optional() },
  })
  local TaskCreate = s.object("TaskCreate", {
    { "name", s.string() },
    { "priority", Priority:default("normal") },
    { "tags", s.array(Tag):default({}) },
    { "due", s.date():optional() },
    { "estimate_hours", s.number():nullable():optional() },
    { "meta", s.map(s.string()):optional() },
    { "extra", s.any():optional() },
  }, { description = "What a client sends\nto create a task." })
  local Task = s.extend(TaskCreate, "Task", {
    { "id", s.uuid() },
    { "done", s.boolean() },
    { "created_at", s.datetime() },
    { "big", s.integer():optional() },
    { "kind", s.literal("task") },
  })
  local TreeNode = s.object("TreeNode", {
    { "label", s.string() },
    { "children", s.array(s.ref("TreeNode")):default({}) },
    { "parent", s.ref("TreeNode"):nullable():optional() },
  })
  local Shape = s.one_of(
    s.object("Circle", { { "kind", s.literal("circle") }, { "radius", s.number() } }),
    s.object("Square", { { "kind", s.literal("square") }, { "side", s.number() } }))
  local NotFound = s.object("NotFound", { { "detail", s.string() } })
  s.expose(s.object("TaskDoneEvent", { { "task_id", s.uuid() }, { "at", s.datetime() } }))
  s.expose(s.enum("Color", { "red", "dark-blue", "2d", "Red" }))
  s.object("Unused", { { "x", s.integer() } })

  local Tasks = j.RestController("/tasks", { name = "TasksController" })
  Tasks.create = j.Post("", { body = TaskCreate, response = Task, status = 201, summary = "Create a task" }, handler)
  Tasks.list = j.Get("", {
    query = {
      page = s.integer { minimum = 0 }:default(0),
      priority = Priority:optional(),
      tag = s.array(s.string()):optional(),
    },
    response = s.object { { "items", s.array(Task) }, { "total", s.integer() } },
  }, handler)
  Tasks.get_one = j.Get("/{task_id}", {
    params = { task_id = s.uuid() },
    headers = { ["x-trace"] = s.string():optional() },
    response = Task,
    responses = { [404] = NotFound },
  }, handler)
  Tasks.remove = j.Delete("/{task_id}", { params = { task_id = s.uuid() }, status = 204 }, handler)
  Tasks.need_header = j.Get("/{task_id}/h", {
    query = { q = s.string():optional() },
    headers = { ["x-token"] = s.string() },
  }, handler)

  local Misc = j.RestController("/misc", { name = "MiscController" })
  Misc.tree = j.Post("/tree", { body = TreeNode, response = TreeNode }, handler)
  Misc.area = j.Post("/area", { body = Shape, response = s.object { { "area", s.number() } } }, handler)
  Misc.count = j.Get("/count/{n:int}", {}, handler)
  Misc.files = j.Get("/files/{rest:path}", { response = s.array(s.one_of(s.string(), s.integer())) }, handler)
  Misc.untyped = j.Put("/u/{id}", handler)
  return app_of({ Tasks, Misc })
end

describe("jararaca.tsgen", function()
  describe("an app with every schema kind", function()
    local text, app
    setup(function()
      s._reset_registry()
      app = model_app()
      local err
      text, err = tsgen.generate(app, { command = "jararaca gen-tsi model.lua out.ts" })
      assert(text, err)
    end)

    it("starts with a header comment naming the command", function()
      assert.equal(1, pos(text, "// Generated by `jararaca gen-tsi model.lua out.ts`. Do not edit"))
    end)

    it("emits the pluggable backend runtime", function()
      has(text, "export interface HttpBackendRequest {")
      has(text, "  pathParams: Record<string, string | number>;")
      has(text, "  query: Record<string, unknown>;")
      has(text, "  headers: Record<string, string>;")
      has(text, "  body?: unknown;")
      has(text, "export interface HttpBackend {\n  request<T>(req: HttpBackendRequest): Promise<T>;\n}")
      has(text, "export class HttpError extends Error {")
      has(text, "export function fetchBackend(baseUrl: string, init?: RequestInit")
      has(text, "export function requestUrl(baseUrl: string, req: HttpBackendRequest): string")
    end)

    it("emits an interface per named object, keeping wire names and declaration order", function()
      has(text, [[
/**
 * What a client sends
 * to create a task.
 */
export interface TaskCreate {
  name: string;
  priority?: Priority;
  tags?: Tag[];
  due?: string;
  estimate_hours?: number | null;
  meta?: { [key: string]: string };
  extra?: unknown;
}]])
      has(text, [[
export interface Tag {
  /** The tag's label */
  name: string;
  color?: string;
}]])
    end)

    it("emits named enums as a string-literal union plus a const object", function()
      has(text, [[
export type Priority = "low" | "normal" | "high";
export const Priority = {
  LOW: "low",
  NORMAL: "normal",
  HIGH: "high",
} as const;]])
    end)

    it("makes enum member names valid and unique", function()
      has(text, [[
export type Color = "red" | "dark-blue" | "2d" | "Red";
export const Color = {
  RED: "red",
  DARK_BLUE: "dark-blue",
  _2D: "2d",
  RED_2: "Red",
} as const;]])
    end)

    it("emits extensions as `extends Base` with the own fields only", function()
      has(text, [[
export interface Task extends TaskCreate {
  id: string;
  done: boolean;
  created_at: string;
  big?: number;
  kind: "task";
}]])
    end)

    it("supports recursive types through refs", function()
      has(text, [[
export interface TreeNode {
  label: string;
  children?: TreeNode[];
  parent?: TreeNode | null;
}]])
    end)

    it("emits unions of variants and literals", function()
      has(text, "export interface Circle {\n  kind: \"circle\";\n  radius: number;\n}")
      has(text, "export interface Square {\n  kind: \"square\";\n  side: number;\n}")
      has(text, "  async area(body: Circle | Square): Promise<{ area: number }> {")
      has(text, "  async files(params: { rest: string }): Promise<Array<string | number>> {")
    end)

    it("emits exposed types even when no route uses them, and skips unused ones", function()
      has(text, "export interface TaskDoneEvent {\n  task_id: string;\n  at: string;\n}")
      has(text, "export type Color =")
      hasnt(text, "Unused")
    end)

    it("emits types of extra documented responses", function()
      has(text, "export interface NotFound {\n  detail: string;\n}")
    end)

    it("sorts the types by name", function()
      local order = { "Circle", "Color", "NotFound", "Priority", "Square", "Tag", "Task", "TaskCreate",
        "TaskDoneEvent", "TreeNode" }
      local last = 0
      for _, name in ipairs(order) do
        local p = text:find("\nexport [%a]+ " .. name .. "[ <=]")
        assert(p, "missing type " .. name)
        assert(p > last, name .. " is out of order")
        last = p
      end
    end)

    it("emits one client class per controller, sorted by name", function()
      local ctor = " {\n  private readonly backend: HttpBackend;\n\n  constructor(backend: HttpBackend) {\n"
        .. "    this.backend = backend;\n  }\n"
      local m = pos(text, "export class MiscController" .. ctor)
      local t = pos(text, "export class TasksController" .. ctor)
      assert.is_true(m < t)
    end)

    it("types the body and the response of a route", function()
      has(text, [[
  /**
   * Create a task
   *
   * `POST /tasks`
   */
  async create(body: TaskCreate): Promise<Task> {
    return this.backend.request<Task>({
      method: "POST",
      path: "/tasks",
      pathParams: {},
      query: {},
      headers: {},
      body,
    });
  }]])
    end)

    it("types query parameters (optional when all are, defaulting to {})", function()
      has(text, "  async list(query: { page?: number; priority?: Priority; tag?: string[] } = {}): "
        .. "Promise<{ items: Task[]; total: number }> {")
      has(text, "      query: { ...query },")
    end)

    it("types path parameters and headers; keeps member names as written", function()
      has(text, [[
  async get_one(params: { task_id: string }, headers: { "x-trace"?: string } = {}): Promise<Task> {
    return this.backend.request<Task>({
      method: "GET",
      path: "/tasks/{task_id}",
      pathParams: { task_id: params.task_id },
      query: {},
      headers: jrHeaders(headers),
    });
  }]])
      has(text, "function jrHeaders(headers: Record<string, unknown>): Record<string, string> {")
    end)

    it("only makes an argument optional when every later one is", function()
      has(text, "  async need_header(params: { task_id: string }, query: { q?: string }, "
        .. "headers: { \"x-token\": string }): Promise<unknown> {")
    end)

    it("returns void for 204 routes and unknown without a response schema", function()
      has(text, "  async remove(params: { task_id: string }): Promise<void> {")
      has(text, "    return this.backend.request<void>({\n      method: \"DELETE\",")
    end)

    it("takes path parameter types from the template converters", function()
      has(text, "  async count(params: { n: number }, query: Record<string, unknown> = {}): Promise<unknown> {")
      has(text, "      path: \"/misc/count/{n}\",")
      has(text, "      path: \"/misc/files/{rest:path}\",")
    end)

    it("gives untyped routes a loose query and (for POST/PUT/PATCH) an optional body", function()
      has(text, "  async untyped(params: { id: string }, body?: unknown, query: Record<string, unknown> = {}): "
        .. "Promise<unknown> {")
    end)

    it("is deterministic", function()
      for _ = 1, 3 do
        assert.equal(text, (tsgen.generate(app, { command = "jararaca gen-tsi model.lua out.ts" })))
      end
    end)
  end)

  describe("schema shapes", function()
    before_each(function() s._reset_registry() end)

    -- The text for the exposed schemas (real registry).
    local function exposed(...)
      for _, sc in ipairs({ ... }) do s.expose(sc) end
      return assert(tsgen.generate(app_of({})))
    end

    it("uses Omit<> when an extension redeclares a base field", function()
      local Base = s.object("Base", { { "a", s.string() }, { "b", s.integer() } })
      local Derived = s.extend(Base, "Derived", { { "b", s.string() }, { "c", s.boolean() } })
      local text = exposed(Derived)
      has(text, "export interface Derived extends Omit<Base, \"b\"> {\n  b: string;\n  c: boolean;\n}")
      has(text, "export interface Base {\n  a: string;\n  b: number;\n}")
    end)

    it("inlines every field when the base of an extension is anonymous", function()
      local Derived = s.extend(s.object { { "a", s.string() } }, "Derived", { { "c", s.boolean() } })
      has(exposed(Derived), "export interface Derived {\n  a: string;\n  c: boolean;\n}")
    end)

    it("writes an anonymous extension of a named base as an intersection", function()
      local Base = s.object("Base", { { "a", s.string() } })
      local R = s.object("R", { { "x", s.extend(Base, { { "c", s.boolean() } }) } })
      has(exposed(R), "  x: Base & { c: boolean };")
    end)

    it("writes anonymous objects, enums and maps inline and quotes odd keys", function()
      local Odd = s.object("Odd", {
        { "content-type", s.string() },
        { "nested", s.object { { "x", s.integer() }, { "y", s.array(s.map(s.integer():nullable())):optional() } } },
        { "level", s.enum { "a", "b\"c" } },
        { "empty", s.object {} },
        { "lits", s.one_of(s.literal(1), s.literal(2.5), s.literal(true), s.literal("x\n")) },
        { "nn", s.one_of(s.string(), s.integer()):nullable() },
      })
      has(exposed(Odd), [[
export interface Odd {
  "content-type": string;
  nested: { x: number; y?: Array<{ [key: string]: number | null }> };
  level: "a" | "b\"c";
  empty: {};
  lits: 1 | 2.5 | true | "x\n";
  nn: string | number | null;
}]])
    end)

    it("writes titles, descriptions and deprecation as doc comments", function()
      local D = s.object("D", { { "a", s.string { deprecated = true, description = "old; use */ b" } } },
        { title = "A title", description = "Longer text." })
      local text = exposed(D)
      has(text, "/**\n * A title\n *\n * Longer text.\n */\nexport interface D {")
      has(text, "  /**\n   * old; use *\\/ b\n   * @deprecated\n   */\n  a: string;")
    end)

    it("emits a named type once though modifiers copy it", function()
      local Level = s.enum("Level", { "x" })
      local O = s.object("O", { { "a", Level }, { "b", Level:default("x") }, { "c", Level:nullable():optional() } })
      local text = exposed(O)
      has(text, "export interface O {\n  a: Level;\n  b?: Level;\n  c?: Level | null;\n}")
      local _, n = text:gsub("export type Level =", "")
      assert.equal(1, n)
    end)

    it("emits exposed enums and objects with no controllers at all", function()
      local text = exposed(s.enum("Solo", { "a" }))
      has(text, "export type Solo = \"a\";")
      hasnt(text, "// ---- Clients ----")
    end)
  end)

  describe("errors", function()
    before_each(function() s._reset_registry() end)

    local function gen(route_opts, reg, member)
      local C = j.RestController("/x", { name = "XController" })
      C[member or "r"] = j.Post("/{id}", route_opts, handler)
      return tsgen.generate(app_of({ C }), { registry = reg })
    end

    it("rejects an unsupported schema kind, naming the place", function()
      local B = as_schema(obj("B", { field("t", { kind = "tuple" }) }))
      local text, err, code = gen({ body = B }, registry({ B }))
      assert.is_nil(text)
      assert.equal("B.t: unsupported schema kind \"tuple\"", err)
      assert.equal("invalid", code)
      text, err = gen({ response = s.array(setmetatable({ kind = "time" }, getmetatable(s.string()))) })
      assert.is_nil(text)
      assert.matches("tsgen_spec%.lua:%d+: route XController.r %(POST /x/{id}%) response%[%]: "
        .. "unsupported schema kind \"time\"$", err)
    end)

    it("rejects values that are not schemas (route_spec's messages, as the server gives them)", function()
      local _, err = gen({ query = { page = 42 } })
      assert.matches("tsgen_spec%.lua:%d+: route XController.r %(POST /x/{id}%): query.page: expected a schema, got 42$", err)
      _, err = gen({ body = { fields = {} } })
      assert.matches("route XController.r %(POST /x/{id}%): body.fields: expected a schema, got a table$", err)
    end)

    it("rejects a reference to an unknown schema", function()
      local _, err = gen({ body = s.array(s.ref("Nope")) })
      assert.matches("route XController.r %(POST /x/{id}%): body%[%]: s.ref%(\"Nope\"%) names no schema", err)
      -- in a schema no route option reaches directly, found by the generator
      _, err = tsgen.generate(app_of({}), { registry = registry({}, { as_schema(obj("E", {
        field("x", s.ref("Nope")) })) }) })
      assert.equal("E.x: reference to unknown schema \"Nope\" (no object of that name was declared)", err)
    end)

    it("rejects names that cannot be TypeScript types, or clash", function()
      local _, err = gen({ body = as_schema(obj("my-type", {})) }, registry())
      assert.matches("route XController.r %(POST /x/{id}%) body: schema name \"my%-type\" is not a valid TypeScript type name$",
        err)
      _, err = gen({ body = s.object("Promise", {}) })
      assert.matches("schema name \"Promise\" clashes with a name the generated file uses", err, 1, true)
      _, err = gen({ body = s.object("XController", {}) })
      assert.equal("schema \"XController\" has the same name as a controller; rename one of them", err)
      local A = as_schema(obj("A", { field("x", { kind = "enum", name = "A", values = { "a" } }) }))
      _, err = gen({ body = A }, registry({ A }))
      assert.matches("two schemas are named \"A\"", err, 1, true)
      _, err = gen({ body = s.enum("Object", { "a" }) }) -- its const would shadow the global Object
      assert.matches("schema name \"Object\" clashes with a name the generated file uses", err, 1, true)
      assert.truthy(gen({ body = s.object("Error", { { "detail", s.string() } }) })) -- only a type: fine
      _, err = gen({ body = s.object("class", {}) })
      assert.matches("schema name \"class\" is not a valid TypeScript type name", err, 1, true)
    end)

    it("rejects route members that would clash with the client class", function()
      local _, err = gen({}, nil, "constructor")
      assert.matches("route XController.constructor (POST /x/{id}): a route named \"constructor\" cannot be a client method",
        err, 1, true)
      _, err = gen({}, nil, "backend")
      assert.matches("cannot be a client method", err, 1, true)
    end)

    it("rejects non-scalar path parameters", function()
      local _, err = gen({ params = { id = s.array(s.string()) } })
      assert.matches("params.id: a path parameter is one path segment: expected a string, integer, number, "
        .. "boolean, uuid, date, datetime, enum or literal schema, got an array schema", err, 1, true)
    end)

    it("rejects exposed schemas without a name", function()
      local _, err = tsgen.generate(app_of({}), { registry = registry({}, { obj(nil, {}) }) })
      assert.equal("exposed[1]: only named objects and enums can be exposed (got an anonymous object schema)", err)
    end)

    it("rejects two controllers with one name, and invalid controller names", function()
      local A = j.RestController("/a", { name = "Same" })
      local B = j.RestController("/b", { name = "Same" })
      local _, err = tsgen.generate(app_of({ A, B }))
      assert.equal("two controllers are named Same; give one another name", err)
      local C = j.RestController("/c", { name = "my controller" })
      _, err = tsgen.generate(app_of({ C }))
      assert.matches("controller \"my controller\": its name is not a valid TypeScript class name", err, 1, true)
    end)

    it("raises on misuse", function()
      assert.has_error(function() tsgen.generate(app_of({}), "x") end,
        "tsgen.generate(app, opts): opts must be a table, got string")
      assert.has_error(function() tsgen.generate(42, {}) end,
        "tsgen.generate(app, opts): expected an app (jararaca.Microservice{...}), got a number")
    end)
  end)

  describe("routes left out of the schema (include_in_schema = false), as in OpenAPI", function()
    before_each(function() s._reset_registry() end)

    it("get no client method, and a controller left with none gets no class", function()
      local Secret = s.object("SecretOnly", { { "x", s.string() } })
      local Api = j.RestController("/api", { name = "ApiController" })
      Api.shown = j.Get("/shown", handler)
      Api.hidden = j.Get("/hidden", { include_in_schema = false, response = Secret }, handler)
      local Page = j.RestController("", { name = "PageController", include_in_schema = false })
      Page.page = j.Get("/", handler)
      local text = assert(tsgen.generate(app_of({ Api, Page })))
      has(text, "  async shown(")
      hasnt(text, "hidden")
      hasnt(text, "SecretOnly") -- its types are not emitted for it either
      hasnt(text, "PageController")
    end)

    it("agree with the OpenAPI document on the tasks app (no client for the live page GET /)", function()
      local app = assert(runtime.load_app("examples/tasks/app.lua"))
      local text = assert(tsgen.generate(app))
      local doc = require("jararaca.openapi").document(app)
      assert.is_nil(doc.paths["/"])
      hasnt(text, "LiveController")
      hasnt(text, 'path: "/",')
      has(text, "export class TasksController {")
    end)
  end)

  describe("examples/hello", function()
    local text
    setup(function()
      local app = assert(runtime.load_app("examples/hello/app.lua"))
      text = assert(tsgen.generate(app, { command = "jararaca gen-tsi examples/hello/app.lua hello.ts" }))
    end)

    it("has the header and one client class with loosely typed methods for untyped routes", function()
      assert.equal(1, pos(text, "// Generated by `jararaca gen-tsi examples/hello/app.lua hello.ts`."))
      has(text, "export class HelloController {")
      has(text, "  async hello(query: Record<string, unknown> = {}): Promise<unknown> {")
      has(text, "  async item(params: { id: number }, query: Record<string, unknown> = {}): Promise<unknown> {")
      has(text, "  async echo(body?: unknown, query: Record<string, unknown> = {}): Promise<unknown> {")
      has(text, "      path: \"/items/{id}\",")
      hasnt(text, "jrHeaders(") -- no typed headers: the helper is not emitted
    end)
  end)

  describe("the typed test app (jararaca.schema)", function()
    local text, app
    setup(function()
      s._reset_registry() -- the app declares "Task" etc. again
      app = assert(runtime.load_app("spec/integration/apps/typed.lua"))
      local err
      text, err = tsgen.generate(app, { command = "jararaca gen-tsi typed.lua typed.ts" })
      assert(text, err)
    end)

    it("emits the enum, interfaces, extension, recursion and exposed types", function()
      has(text, "export type Priority = \"low\" | \"normal\" | \"high\";")
      has(text, "export const Priority = {\n  LOW: \"low\",\n  NORMAL: \"normal\",\n  HIGH: \"high\",\n} as const;")
      has(text, "export interface Tag {\n  name: string;\n  color?: string;\n}")
      has(text, [[
export interface TaskCreate {
  /** What to do */
  name: string;
  priority?: Priority;
  tags?: Tag[];
  due?: string;
  estimate_hours?: number | null;
  meta?: { [key: string]: string };
}]])
      has(text, [[
export interface Task extends TaskCreate {
  id: string;
  done: boolean;
  created_at: string;
  big?: number;
  kind: "task";
}]])
      has(text, "export interface TreeNode {\n  label: string;\n  children?: TreeNode[];\n}")
      has(text, "export interface TaskPage {\n  items: Task[];\n  total: number;\n}")
      has(text, "export interface TaskDoneEvent {\n  task_id: string;\n  at: string;\n}")
      has(text, "export interface NotFound {\n  detail: string;\n}")
      has(text, "export interface Circle {")
      has(text, "export interface Square {")
    end)

    it("emits both clients with typed methods", function()
      has(text, "export class TasksController {")
      has(text, "export class MiscController {")
      has(text, "  async create(body: TaskCreate): Promise<Task> {")
      has(text, "  async list(query: { page?: number; page_size?: number; priority?: Priority } = {}): "
        .. "Promise<TaskPage> {")
      has(text, "  async get(params: { task_id: string }, headers: { \"x-trace\"?: string } = {}): Promise<Task> {")
      has(text, "  async remove(params: { task_id: string }): Promise<void> {")
      has(text, "  async tree(body: TreeNode): Promise<TreeNode> {")
      has(text, "  async area(body: Circle | Square): Promise<{ area: number }> {")
      has(text, "  async count(params: { n: number }, query: Record<string, unknown> = {}): Promise<unknown> {")
    end)

    it("is deterministic", function()
      assert.equal(text, (tsgen.generate(app, { command = "jararaca gen-tsi typed.lua typed.ts" })))
    end)
  end)
end)
