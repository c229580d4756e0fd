-- examples/tasks: the seed's tasks app on SQLite, with its WebSocket room,
-- a live page and a worker on the message bus.
--
--   jararaca server examples/tasks/app.lua          (TASKS_DB=tasks.db by default)
--   jararaca worker examples/tasks/app.lua          (runs TaskWorker's handlers; as many as you like)
--   jararaca scheduler examples/tasks/app.lua       (the routine: a new task every 3 s; see below)
--   open http://localhost:8000/                      the live page (below)
--   curl -d '{"name":"write docs"}' localhost:8000/tasks
--   curl 'localhost:8000/tasks?page=0&page_size=10'     (then ?after=<next_cursor> for the next page)
--   curl localhost:8000/tasks/<id>
--   curl -X PATCH -d '{"done":true}' localhost:8000/tasks/<id>
--   curl -X DELETE localhost:8000/tasks/<id>
--
-- GET /ws (WebSocket, the seed's "Distributed Websocket"): every connection
-- joins room "tasks" and gets the room's events as plain text messages:
--   "New Connection (N) from HOST"   a client connected; N: this instance's
--   "Connection Closed (N) from HOST" connections now, HOST: its host name
--   "Task <id> created"              after a POST /tasks committed
--   "Task <id> deleted"              after a DELETE /tasks/<id> committed
-- The task events are staged (j.WebSocketMessage): sent once the request's
-- transaction commits, never for a request that failed. What clients send
-- is ignored. With several instances the backplane (Redis, or the workers'
-- mesh) carries every room message to every instance's clients.
--
-- GET / (not part of the API, left out of OpenAPI): the live page,
-- examples/tasks/live.html, read at startup. It lists the tasks, adds and
-- deletes them through the API above and follows /ws: a task deleted in one
-- browser tab vanishes from the others.
--
-- The message bus (docs/bus.md): POST /tasks publishes a "task" message
-- { id, name }, staged: sent once the request's transaction has committed,
-- never for a request that failed. The server does not need a worker: the
-- messages wait in the broker until one runs. TaskWorker.process (under
-- `jararaca worker`) marks the task processed (GET /tasks/<id> then shows
-- "processed": true) and publishes "task.done" { id, name };
-- TaskWorker.done handles that one and logs "task <id> (<name>) is done".
-- A task whose name starts with "fail" makes process raise every time: it is
-- retried MAX_RETRIES (3) times after the first attempt, after 0.2, 0.4, 0.8
-- s, and then dead-lettered with the reason "failed after 4 attempt(s): ...".
--   curl -d '{"name":"fail on purpose"}' localhost:8000/tasks
-- The worker's log shows each failed attempt; the dead letters:
--   jararaca dlq list examples/tasks/app.lua --handler process
--   jararaca dlq requeue examples/tasks/app.lua --handler process --all
-- (docs/bus.md, "jararaca dlq").
-- The broker: the embedded one by default, a SQLite file "tasks.bus.db" next
-- to the database (TASKS_DB), which the server and the workers share. To use
-- another, set JARARACA_BUS_URL for every process, e.g.
-- JARARACA_BUS_URL=sqlite:////var/lib/tasks/bus.db (or add
-- `bus = { url = ... }` to the Microservice below). On RabbitMQ
-- (docs/bus-rabbitmq.md) the same code runs unchanged; declare the app's
-- topology once (the server and the workers check it at startup):
--   export JARARACA_BUS_URL=amqp://guest:guest@localhost:5672/
--   jararaca declare examples/tasks/app.lua   (exchanges tasks, tasks.retry, tasks.dlx;
--                                              queues tasks.process, tasks.done, tasks.dlq)
-- then start the server and the workers as above; a retry waits in a delay
-- queue (tasks.wait.<ms>) and the dead letters are in tasks.dlq (`jararaca
-- dlq` reads them the same way). examples/tasks/spec/worker_amqp_spec.lua
-- runs all this against a real RabbitMQ.
--
-- The scheduled routine (docs/scheduler.md; the seed's "Scheduled
-- Routine"): under `jararaca scheduler examples/tasks/app.lua`,
-- TaskWorker.routine runs every 3 seconds ("* * * * * */3": seconds 0, 3,
-- 6, ... of every minute). Each run creates a task with a random name
-- ("scheduled 1a2b3c4d") and publishes it to "task", staged: sent once the
-- run's transaction has committed, so the worker processes it like a
-- POSTed one. It is exclusive (the default): with several schedulers
-- running, each tick still creates one task (their store is the SQLite
-- file tasks.scheduler.db next to TASKS_DB). allow_overlap = false: a tick
-- that comes while the previous run still runs is skipped (and logged).
-- TASKS_SCHEDULER=off leaves the routine out (then `jararaca scheduler`
-- has nothing to run and says so); "on" (the default) keeps it.
--
-- Configuration comes from the environment (prefix TASKS_): TASKS_DB (the
-- database file), TASKS_READERS (reader connections). The schema is created
-- by the migrations in ./migrations, applied at start.
local j = require "jararaca"
local s = j.schema
local persistence = j.persistence
local sys = require "jararaca.core.sys" -- the host name (gethostname(2))

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local ROOM = "tasks"

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

-- POST's answer: a new task, never processed yet, so without that field.
-- (It is also the interface of the benchmark against FastAPI, bench/tasks:
-- exactly these five fields.) Task, everywhere else, adds "processed".
local NEW_TASK_FIELDS = {
  { "id", s.uuid() },
  { "name", s.string() },
  { "done", s.boolean() },
  { "created_at", s.datetime() },
  { "updated_at", s.datetime() },
}
local NewTask = s.object("NewTask", NEW_TASK_FIELDS)
local TASK_FIELDS = { unpack(NEW_TASK_FIELDS) }
table.insert(TASK_FIELDS, 4, { "processed", s.boolean() }) -- set by TaskWorker.process (jararaca worker)
local Task = s.object("Task", TASK_FIELDS)

-- The payload of the "task" and "task.done" messages.
local TaskMessage = s.object("TaskMessage", {
  { "id", s.uuid() },
  { "name", s.string() },
})

local TaskPage = persistence.Paginated(Task) -- items, total, unpaginated_total, total_pages, next_cursor

local Tasks = j.RestController("/tasks", {
  name = "TasksController",
  tags = { "tasks" },
  inject = { tasks = "TasksRepository", pages = "TasksQuery" },
})

local TASK_ID = { task_id = s.uuid() }

Tasks.create = j.Post("", { body = TaskCreate, response = NewTask, status = 201, summary = "Create a task" },
  function(self, req)
    local now = j.utcnow()
    local task = self.tasks:create {
      id = j.uuid4(), name = req.json.name, done = false, processed = false, created_at = now, updated_at = now,
    }
    -- both staged: sent (to the room, to the broker) once this request's transaction has committed
    j.WebSocketMessage("Task " .. task.id .. " created"):send(ROOM)
    assert(j.use_publisher():publish({ id = task.id, name = task.name }, "task"))
    return task
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
    local id = req.params.task_id
    -- Staged before the check on purpose: a 404 fails the transaction, which
    -- drops the message (the specs prove a failed delete announces nothing).
    j.WebSocketMessage("Task " .. id .. " deleted"):send(ROOM)
    if not self.tasks:delete_by_id(id) then error(j.HTTPError(404, "Task not found")) end
  end)

-- The worker's handlers (`jararaca worker examples/tasks/app.lua`). Each
-- delivery is a transaction with a write session: process's update commits
-- when it returns, and its "task.done" is published after that commit; when
-- it raises, both are undone and the message is retried after the backoff.
-- The backoff is short so that the failing path shows within seconds.
local MAX_RETRIES = 3
local BACKOFF = { initial = 0.2, factor = 2, max = 5, jitter = 0.1 }

local TaskWorker = j.MessageBusController { name = "TaskWorker", inject = { tasks = "TasksRepository" } }

TaskWorker.process = j.IncomingHandler("task", { payload = TaskMessage, max_retries = MAX_RETRIES, backoff = BACKOFF },
  function(self, msg)
    local t = msg:payload()
    if t.name:sub(1, 4) == "fail" then
      error(("task %s: its name starts with \"fail\", so it always fails"):format(t.id), 0)
    end
    local task = self.tasks:update(t.id, { processed = true, updated_at = j.utcnow() })
    if not task then -- deleted before a worker got to it: nothing to do
      j.log.info("task ", t.id, " was deleted before it was processed")
      return
    end
    assert(j.use_publisher():publish({ id = task.id, name = task.name }, "task.done"))
  end)

-- The scheduled routine (see the header): off with TASKS_SCHEDULER=off.
local SCHEDULER = os.getenv("TASKS_SCHEDULER") or "on"
if SCHEDULER ~= "on" and SCHEDULER ~= "off" then
  error(("TASKS_SCHEDULER: expected on or off, got %q"):format(SCHEDULER), 0)
end
if SCHEDULER == "on" then
  TaskWorker.routine = j.ScheduledAction("* * * * * */3", { allow_overlap = false }, function(self, run)
    local now = j.utcnow()
    local task = self.tasks:create {
      id = j.uuid4(), name = "scheduled " .. j.uuid4():sub(1, 8), done = false, processed = false,
      created_at = now, updated_at = now,
    }
    assert(j.use_publisher():publish({ id = task.id, name = task.name }, "task")) -- sent after the commit
    j.log.info(("routine: created task %s (%s) for tick %d"):format(task.id, task.name, run.tick))
  end)
end

-- A second step: every "task.done" (the place for a notification, an email).
TaskWorker.done = j.IncomingHandler("task.done", { payload = TaskMessage }, function(_, msg)
  local t = msg:payload()
  j.log.info(("task %s (%s) is done"):format(t.id, t.name))
end)

-- This instance's WebSocket connections (the seed's counter): one per
-- process, so with --workers N each worker counts its own.
local ConnectionCounter = {}
ConnectionCounter.__index = ConnectionCounter
function ConnectionCounter.new() return setmetatable({ count = 0 }, ConnectionCounter) end
function ConnectionCounter:increment() self.count = self.count + 1; return self.count end
function ConnectionCounter:decrement() self.count = self.count - 1; return self.count end

-- The page, read once at startup: a missing file fails the start, naming it.
local function read_page(name)
  local path = HERE .. "/" .. name
  local f, err = io.open(path, "rb")
  if not f then error("tasks app: cannot read its live page " .. path .. " (" .. tostring(err) .. ")", 0) end
  local html = f:read("*a")
  f:close()
  return j.Response { status = 200, body = html, content_type = "text/html; charset=utf-8" }
end
local LIVE_PAGE = read_page("live.html")

-- The page and the WebSocket: no database (persistence = false), not part
-- of the API (include_in_schema = false; a WebSocket endpoint never is).
local Live = j.RestController("", {
  name = "LiveController",
  inject = { counter = ConnectionCounter },
  persistence = false,
  include_in_schema = false,
})

Live.page = j.Get("/", { summary = "The live page" }, function()
  return LIVE_PAGE
end)

local HOST = sys.hostname()

-- The seed's endpoint: join room "tasks", announce the connection, receive
-- until the client leaves, announce the disconnection. The disconnect path
-- runs whatever ended the loop (the client left, the server stops, an error),
-- and an error is raised again afterwards (closing with 1011, logged).
Live.ws = j.WebSocketEndpoint("/ws", function(self, ws)
  if not ws:accept() then return end -- the client left before the 101: nobody to announce
  local mgr, counter = j.use_ws_manager(), self.counter
  local n = counter:increment()
  local ok, err = pcall(function()
    mgr:add_websocket(ws)
    mgr:join(ROOM, ws)
    mgr:send(ROOM, ("New Connection (%d) from %s"):format(n, HOST))
    for _ in ws:messages() do end -- what clients send is ignored
  end)
  n = counter:decrement()
  mgr:remove_websocket(ws)
  mgr:send(ROOM, ("Connection Closed (%d) from %s"):format(n, HOST))
  if not ok then error(err, 0) end
end)

return j.Microservice {
  name = "tasks",
  metrics = true, -- GET /metrics: Prometheus text (docs/metrics.md)
  providers = {
    j.ProviderSpec { provide = "TasksRepository", use_value = persistence.CRUD { table = "tasks", schema = Task } },
    j.ProviderSpec { provide = "TasksQuery", use_value = persistence.Query {
      table = "tasks", schema = Task, sortable = { "name", "created_at" },
      filterable = { name = "string", done = "boolean", created_at = "datetime" },
      default_sort = { "created_at", "desc" },
      count_sql = "SELECT n FROM tasks_count", -- the unfiltered total, kept by triggers (migration 0003)
    } },
    ConnectionCounter,
  },
  controllers = { Tasks, Live, TaskWorker },
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
