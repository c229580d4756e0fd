-- examples/tasks: the seed's tasks app on SQLite.
--
--   jararaca server examples/tasks/app.lua          (TASKS_DB=tasks.db by default)
--   curl -d '{"name":"write docs"}' localhost:8000/tasks
--   curl 'localhost:8000/tasks?page=0&page_size=10'     (then ?after=<next_cursor> for the next page)
--   curl localhost:8000/tasks/<id>
--   curl -X PATCH -d '{"done":true}' localhost:8000/tasks/<id>
--   curl -X DELETE localhost:8000/tasks/<id>
--
-- Configuration comes from the environment (prefix TASKS_): TASKS_DB (the
-- database file), TASKS_READERS (reader connections). The schema is created
-- by the migrations in ./migrations, applied at start.
local j = require "jararaca"
local s = j.schema
local persistence = j.persistence

local TasksConfig = s.object("TasksConfig", {
  { "db", s.string { min_length = 1 }:default("tasks.db") },
  { "readers", s.integer { minimum = 0, maximum = 64 }:default(4) },
})

local TaskCreate = s.object("TaskCreate", {
  { "name", s.string { min_length = 1, max_length = 200 } },
})

local TaskUpdate = s.object("TaskUpdate", {
  { "name", s.string { min_length = 1, max_length = 200 }:optional() },
  { "done", s.boolean():optional() },
})

local Task = s.object("Task", {
  { "id", s.uuid() },
  { "name", s.string() },
  { "done", s.boolean() },
  { "created_at", s.datetime() },
  { "updated_at", s.datetime() },
})

local TaskPage = persistence.Paginated(Task) -- items, total, unpaginated_total, total_pages, next_cursor

local Tasks = j.RestController("/tasks", {
  name = "TasksController",
  tags = { "tasks" },
  inject = { tasks = "TasksRepository", pages = "TasksQuery" },
})

local TASK_ID = { task_id = s.uuid() }

Tasks.create = j.Post("", { body = TaskCreate, response = Task, status = 201, summary = "Create a task" },
  function(self, req)
    local now = j.utcnow()
    return self.tasks:create {
      id = j.uuid4(), name = req.json.name, done = false, created_at = now, updated_at = now,
    }
  end)

Tasks.list = j.Get("", {
  query = persistence.PaginatedFilter, -- page, page_size, after (the cursor)
  response = TaskPage,
  summary = "List tasks, newest first",
}, function(self, req)
  local q = req.query
  local page, err = self.pages:paginate { page = q.page, page_size = q.page_size, after = q.after }
  if not page then error(j.HTTPError(422, err)) end
  return page
end)

Tasks.get = j.Get("/{task_id}", { params = TASK_ID, response = Task, summary = "Get a task" },
  function(self, req)
    local task = self.tasks:get(req.params.task_id)
    if not task then error(j.HTTPError(404, "Task not found")) end
    return task
  end)

Tasks.update = j.Patch("/{task_id}", { params = TASK_ID, body = TaskUpdate, response = Task, summary = "Rename or complete a task" },
  function(self, req)
    local changes = { updated_at = j.utcnow() }
    if req.json.name ~= nil then changes.name = req.json.name end
    if req.json.done ~= nil then changes.done = req.json.done end
    local task = self.tasks:update(req.params.task_id, changes)
    if not task then error(j.HTTPError(404, "Task not found")) end
    return task
  end)

Tasks.delete = j.Delete("/{task_id}", { params = TASK_ID, status = 204, summary = "Delete a task" },
  function(self, req)
    if not self.tasks:delete_by_id(req.params.task_id) then error(j.HTTPError(404, "Task not found")) end
  end)

return j.Microservice {
  name = "tasks",
  providers = {
    j.ProviderSpec { provide = "TasksRepository", use_value = persistence.CRUD { table = "tasks", schema = Task } },
    j.ProviderSpec { provide = "TasksQuery", use_value = persistence.Query {
      table = "tasks", schema = Task, sortable = { "name", "created_at" },
      filterable = { name = "string", done = "boolean", created_at = "datetime" },
      default_sort = { "created_at", "desc" },
      count_sql = "SELECT n FROM tasks_count", -- the unfiltered total, kept by triggers (migration 0003)
    } },
  },
  controllers = { Tasks },
  interceptors = {
    j.config.AppConfigurationInterceptor { token = "TasksConfig", schema = TasksConfig, prefix = "TASKS_" },
    -- built after the configuration is registered, so it can read it
    function(container)
      local cfg = container:get("TasksConfig")
      return persistence.SessionInterceptor {
        url = "sqlite:///" .. cfg.db, readers = cfg.readers,
        migrations = "migrations", migrate_on_start = true,   -- relative to this file
      }
    end,
  },
  openapi = { title = "Tasks", version = "1.0.0", description = "The seed's tasks app on SQLite" },
}
