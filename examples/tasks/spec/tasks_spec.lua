-- The tasks example's own specs: `jararaca test examples/tasks/spec`.
-- The HTTP API is tested with the in-process test client (no socket) and a
-- temporary database; the WebSocket room /ws on the real server (the
-- jararaca binary, spec/support/server.lua) with real WebSocket clients
-- (spec/support/wsclient.lua). live_page_spec.lua drives the page in Chromium.
local testing = require "jararaca.testing"
local json = require "jararaca.json"
local json_null = json.null

local APP = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "examples/tasks") .. "/app.lua"

local function with_client(env_db)
  -- the app reads TASKS_DB from the environment through its config interceptor
  local db = env_db or testing.temp_database("tasks.db")
  testing.setenv("TASKS_DB", db) -- testing.cleanup() puts the previous value back
  local client = testing.client(APP)
  return client, db
end

describe("tasks app", function()
  local client
  before_each(function() client = with_client() end)
  after_each(function()
    client:close()
    testing.cleanup()
  end)

  it("creates a task (201, five fields, done false); GET adds processed, false until a worker ran", function()
    local res = client:post("/tasks", { json = { name = "write docs" } })
    assert.equal(201, res.status)
    local t = res.json
    assert.truthy(t.id:match("^%x+%-%x+%-4%x+%-%x+%-%x+$"))
    assert.equal("write docs", t.name)
    assert.is_false(t.done)
    assert.equal(t.created_at, t.updated_at)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "created_at", "done", "id", "name", "updated_at" }, keys) -- the bench's interface (bench/tasks)
    local got = client:get("/tasks/" .. t.id).json
    assert.is_false(got.processed) -- set by the worker (worker_spec.lua)
    got.processed = nil
    assert.same(t, got)
  end)

  it("gets, updates and deletes, with 404 for unknown ids", function()
    local id = client:post("/tasks", { json = { name = "a" } }).json.id
    assert.equal("a", client:get("/tasks/" .. id).json.name)
    local res = client:patch("/tasks/" .. id, { json = { done = true, name = "b" } })
    assert.equal(200, res.status)
    assert.is_true(res.json.done)
    assert.equal("b", res.json.name)
    assert.equal(204, client:delete("/tasks/" .. id).status)
    assert.equal(404, client:get("/tasks/" .. id).status)
    assert.equal(404, client:delete("/tasks/" .. id).status)
    assert.equal(404, client:patch("/tasks/" .. id, { json = { done = true } }).status)
  end)

  it("lists with pagination, newest first", function()
    for i = 1, 12 do client:post("/tasks", { json = { name = "t" .. i } }) end
    local res = client:get("/tasks", { query = { page = 0, page_size = 5 } })
    assert.equal(200, res.status)
    assert.equal(5, #res.json.items)
    assert.equal(5, res.json.total)
    assert.equal(12, res.json.unpaginated_total)
    assert.equal(3, res.json.total_pages)
    res = client:get("/tasks", { query = { page = 2, page_size = 5 } })
    assert.equal(2, #res.json.items)
    assert.equal(json_null, res.json.next_cursor)
  end)

  it("lists page after page by cursor, every task once, newest first", function()
    local made = {}
    for i = 1, 7 do made[i] = client:post("/tasks", { json = { name = "t" .. i } }).json.id end
    local seen, after = {}, nil
    repeat
      local res = client:get("/tasks", { query = { page_size = 3, after = after } })
      assert.equal(200, res.status)
      for _, t in ipairs(res.json.items) do seen[#seen + 1] = t.id end
      assert.equal(7, res.json.unpaginated_total)
      after = res.json.next_cursor ~= json_null and res.json.next_cursor or nil
    until not after
    -- the same order as one page of all (newest first; equal times by id)
    local all = client:get("/tasks", { query = { page_size = 100 } }).json.items
    assert.equal(7, #seen)
    for i = 1, 7 do assert.equal(all[i].id, seen[i]) end
    for i = 2, 7 do assert.is_true(all[i - 1].created_at >= all[i].created_at) end
    local ids = {}
    for _, id in ipairs(made) do ids[id] = true end
    for _, id in ipairs(seen) do assert.is_true(ids[id]); ids[id] = nil end
  end)

  it("answers 422 for invalid input", function()
    assert.equal(422, client:post("/tasks", { json = { name = "" } }).status)
    assert.equal(422, client:post("/tasks", { json = {} }).status)
    assert.equal(422, client:get("/tasks/not-a-uuid").status)
    assert.equal(422, client:get("/tasks", { query = { page_size = 1000 } }).status)
    -- deep offsets go by cursor; a page number that would overflow is a 422, not a 500
    assert.equal(422, client:get("/tasks", { query = { page = "922337203685477580" } }).status)
    assert.equal(422, client:get("/tasks", { query = { page = 1001, page_size = 10 } }).status)
    assert.equal(422, client:get("/tasks", { query = { after = "garbage" } }).status)
    assert.equal(422, client:patch("/tasks/00000000-0000-4000-8000-000000000000", { json = { done = "yes" } }).status)
  end)

  it("keeps data across a restart", function()
    local db = testing.temp_database("restart.db")
    local c1 = with_client(db)
    local id = c1:post("/tasks", { json = { name = "survives" } }).json.id
    c1:close()
    local c2 = with_client(db)
    assert.equal("survives", c2:get("/tasks/" .. id).json.name)
    c2:close()
  end)

  it("serves the live page at / as HTML; neither / nor /ws is in the OpenAPI document", function()
    local res = client:get("/")
    assert.equal(200, res.status)
    assert.equal("text/html; charset=utf-8", res.headers["content-type"])
    assert.truthy(res.body:find("<title>Tasks (live)</title>", 1, true))
    assert.truthy(res.body:find('"/ws"', 1, true))
    local doc = client:get("/openapi.json").json
    assert.truthy(doc.paths["/tasks"])
    assert.is_nil(doc.paths["/"])
    assert.is_nil(doc.paths["/ws"])
  end)

  it("serves its metrics at /metrics in Prometheus text, by route template", function()
    local id = client:post("/tasks", { json = { name = "counted" } }).json.id
    assert.equal(200, client:get("/tasks/" .. id).status)
    local res = client:get("/metrics")
    assert.equal(200, res.status)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", res.headers["content-type"])
    assert.matches('jararaca_http_requests_total{method="GET",route="/tasks/{task_id}",status="200"} %d+\n', res.body)
    assert.matches('jararaca_http_requests_total{method="POST",route="/tasks",status="201"} %d+\n', res.body)
    assert.is_nil(res.body:find(id, 1, true)) -- a template, never the raw path
  end)

  it("answers a plain GET /ws with 426 (it is a WebSocket endpoint)", function()
    local res = client:get("/ws")
    assert.equal(426, res.status)
    assert.equal("websocket", res.headers["upgrade"])
  end)
end)

describe("tasks app: the WebSocket room on the real server", function()
  local server = require "spec.support.server"
  local http = require "spec.support.client"
  local wsclient = require "spec.support.wsclient"
  local HOST = require("jararaca.core.sys").hostname()
  local T = 5 -- seconds any awaited message may take

  local srv, sockets
  before_each(function()
    -- a fresh server per spec: its connection count starts at 0
    srv = server.start(APP, {}, { TASKS_DB = testing.temp_database("ws.db") })
    sockets = {}
  end)
  after_each(function()
    for _, ws in ipairs(sockets) do ws:shutdown() end
    local status = srv:stop()
    testing.cleanup()
    assert.equal(0, status)
  end)

  local function connect()
    local ws, res = wsclient.connect(srv.port, "/ws")
    assert(ws, "WebSocket upgrade failed: " .. tostring(type(res) == "table" and res.status or res))
    sockets[#sockets + 1] = ws
    return ws
  end

  -- The next message ws receives, which must be text.
  local function next_message(ws)
    local msg, kind = ws:receive(T)
    assert(msg, "no message: " .. tostring(kind) .. "\n--- server log ---\n" .. srv:output())
    assert.equal("text", kind)
    return msg
  end

  local function request(method, target, body)
    local res = assert(http.request(srv.port, method, target, body and {
      headers = { ["Content-Type"] = "application/json" }, body = assert(json.encode(body)),
    } or nil))
    return res
  end

  it("announces a connection to the room, itself included, with the count and the host name", function()
    local a = connect()
    assert.equal("New Connection (1) from " .. HOST, next_message(a))
  end)

  it("counts a second connection for both; a client leaving is announced to the other", function()
    local a = connect()
    assert.equal("New Connection (1) from " .. HOST, next_message(a))
    local b = connect()
    assert.equal("New Connection (2) from " .. HOST, next_message(a))
    assert.equal("New Connection (2) from " .. HOST, next_message(b))
    b:close(1000, "bye") -- a closing handshake
    assert.equal(1000, b:expect_close(T))
    assert.equal("Connection Closed (1) from " .. HOST, next_message(a))
    local c = connect()
    assert.equal("New Connection (2) from " .. HOST, next_message(a))
    c:shutdown() -- gone without a close frame: the disconnect path runs too
    assert.equal("Connection Closed (1) from " .. HOST, next_message(a))
  end)

  it("announces a created task and, after the 204, a deleted one to every client", function()
    local a, b = connect(), connect()
    next_message(a); next_message(a); next_message(b) -- the two connections
    local res = request("POST", "/tasks", { name = "watched" })
    assert.equal(201, res.status)
    local id = assert(json.decode(res.body)).id
    assert.equal("Task " .. id .. " created", next_message(a))
    assert.equal("Task " .. id .. " created", next_message(b))
    res = request("DELETE", "/tasks/" .. id)
    assert.equal(204, res.status)
    assert.equal("Task " .. id .. " deleted", next_message(a))
    assert.equal("Task " .. id .. " deleted", next_message(b))
  end)

  it("announces nothing for a failed delete (404: its staged message is dropped)", function()
    local a = connect()
    next_message(a)
    local missing = "00000000-0000-4000-8000-000000000000"
    assert.equal(404, request("DELETE", "/tasks/" .. missing).status)
    -- a later event arrives first: nothing was sent for the failed delete
    local res = request("POST", "/tasks", { name = "marker" })
    assert.equal(201, res.status)
    local id = assert(json.decode(res.body)).id
    assert.equal("Task " .. id .. " created", next_message(a))
  end)
end)
