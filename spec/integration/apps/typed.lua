-- A typed app that uses every schema kind: the OpenAPI, /docs and gen-tsi
-- specs run against it (and the typed-route integration specs).
local j = require "jararaca"
local s = require "jararaca.schema"

local Priority = s.enum("Priority", { "low", "normal", "high" })

local Tag = s.object("Tag", {
  { "name", s.string { min_length = 1, max_length = 20 } },
  { "color", s.string { pattern = "^#%x%x%x%x%x%x$" }:optional() },
})

local TaskCreate = s.object("TaskCreate", {
  { "name", s.string { min_length = 1, max_length = 100, description = "What to do" } },
  { "priority", Priority:default("normal") },
  { "tags", s.array(Tag, { max_items = 5 }):default({}) },
  { "due", s.date():optional() },
  { "estimate_hours", s.number { minimum = 0 }:nullable():optional() },
  { "meta", s.map(s.string()):optional() },
})

local Task = s.extend(TaskCreate, "Task", {
  { "id", s.uuid() },
  { "done", s.boolean() },
  { "created_at", s.datetime() },
  { "big", s.integer():optional() },
  { "kind", s.literal("task") },
})

local Node = s.object("TreeNode", {
  { "label", s.string() },
  { "children", s.array(s.ref("TreeNode")):default({}) },
})

local Page = s.object("TaskPage", {
  { "items", s.array(Task) },
  { "total", s.integer { minimum = 0 } },
})

local Shape = s.one_of(
  s.object("Circle", { { "kind", s.literal("circle") }, { "radius", s.number { minimum = 0 } } }),
  s.object("Square", { { "kind", s.literal("square") }, { "side", s.number { minimum = 0 } } }))

-- A type only WebSocket/bus code uses: exposed for gen-tsi.
s.expose(s.object("TaskDoneEvent", { { "task_id", s.uuid() }, { "at", s.datetime() } }))

local store = {}

local Tasks = j.RestController("/tasks", { name = "TasksController", tags = { "tasks" } })

Tasks.create = j.Post("", { body = TaskCreate, response = Task, status = 201, summary = "Create a task" },
  function(self, req)
    local t = req.json
    t.id = "6f1c6b7e-8a8b-4c5d-9e0f-112233445566"
    t.done = false
    t.created_at = "2026-11-27T21:00:00Z"
    t.kind = "task"
    t.secret = "must not leak"
    store[t.id] = t
    return t
  end)

Tasks.list = j.Get("", {
  query = {
    page = s.integer { minimum = 0 }:default(0),
    page_size = s.integer { minimum = 1, maximum = 100 }:default(10),
    priority = Priority:optional(),
  },
  response = Page,
}, function(self, req)
  local items = {}
  for _, t in pairs(store) do items[#items + 1] = t end
  return { items = items, total = #items, page = req.query.page }
end)

Tasks.get = j.Get("/{task_id}", {
  params = { task_id = s.uuid() },
  headers = { ["x-trace"] = s.string():optional() },
  response = Task,
  responses = { [404] = s.object("NotFound", { { "detail", s.string() } }) },
}, function(self, req)
  local t = store[req.params.task_id]
  if not t then error(j.HTTPError(404, "no such task")) end
  return t
end)

Tasks.remove = j.Delete("/{task_id}", { params = { task_id = s.uuid() }, status = 204 },
  function(self, req) store[req.params.task_id] = nil end)

local Misc = j.RestController("/misc", { name = "MiscController" })

Misc.tree = j.Post("/tree", { body = Node, response = Node }, function(self, req) return req.json end)

Misc.area = j.Post("/area", { body = Shape, response = s.object { { "area", s.number() } } },
  function(self, req)
    local sh = req.json
    return { area = sh.kind == "circle" and math.pi * sh.radius ^ 2 or sh.side ^ 2 }
  end)

Misc.count = j.Get("/count/{n:int}", {}, function(self, req) return { n = req.params.n } end)

return j.Microservice {
  name = "typed",
  controllers = { Tasks, Misc },
  openapi = { title = "Typed test app", version = "1.2.3" },
}
