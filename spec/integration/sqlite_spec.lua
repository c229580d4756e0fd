-- SQLite under HTTP: quick statements run on the event loop, slow ones on
-- the connections' threads, and several worker processes share one file.
local client = require "spec.support.client"
local server = require "spec.support.server"
local cjson = require "cjson"

local APP = "spec/integration/apps/sqlite_load.lua"

local function fresh_db()
  local path = os.tmpname()
  os.remove(path)
  return path .. ".db"
end

local function remove_db(path)
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(path .. suffix) end
end

local function get_json(port, target)
  local res = assert(client.request(port, "GET", target))
  assert.equal(200, res.status, res.body)
  return cjson.decode(res.body)
end

describe("SQLite under HTTP", function()
  it("answers other requests while a known-quick query turns slow", function()
    local db = fresh_db()
    local srv = server.start(APP, {}, { LOAD_DB = db })
    -- the statement is cached and known as a quick query on the connection
    -- the next request gets (the pool hands out the warm one)
    assert.equal(10, get_json(srv.port, "/count-to/10").n)
    local slow = assert(client.connect(srv.port, 60))
    assert(slow:send(client.format("GET", "/count-to/10000000")))
    -- started on the loop, stopped after inline_us, running on a thread now:
    -- other requests, with or without the database, are answered meanwhile
    for _ = 1, 5 do assert.equal(10, get_json(srv.port, "/count-to/10").n) end
    assert.equal(0, get_json(srv.port, "/items/count").n)
    slow:settimeout(0.05)
    assert.is_nil((slow:read_response())) -- still running
    slow:settimeout(60)
    local res = assert(slow:read_response())
    assert.equal(200, res.status)
    assert.equal(10000000, cjson.decode(res.body).n)
    slow:close()
    assert.equal(0, srv:stop("SIGTERM", 20))
    remove_db(db)
  end)

  it("two worker processes insert into one file: every insert answered and kept", function()
    local db = fresh_db()
    local srv = server.start(APP, { "--workers", "2" }, { LOAD_DB = db })
    -- 8 connections with 40 pipelined inserts each: the kernel spreads the
    -- connections over both workers, whose writes meet at SQLite's lock
    local conns, per_conn = {}, 40
    local request = client.format("POST", "/items", { body = "" })
    for i = 1, 8 do
      conns[i] = assert(client.connect(srv.port, 30))
      assert(conns[i]:send(request:rep(per_conn)))
    end
    local ids, pids, created = {}, {}, 0
    for i = 1, 8 do
      for _ = 1, per_conn do
        local res = assert(conns[i]:read_response())
        assert.equal(201, res.status, res.body)
        local body = cjson.decode(res.body)
        assert.is_nil(ids[body.id])
        ids[body.id] = true
        pids[body.pid] = true
        created = created + 1
      end
      conns[i]:close()
    end
    assert.equal(8 * per_conn, created)
    local count = get_json(srv.port, "/items/count")
    assert.equal(8 * per_conn, count.n)
    local answered_by = 0
    for _ in pairs(pids) do answered_by = answered_by + 1 end
    assert.equal(answered_by, count.pids) -- each row has the pid that answered it
    assert.equal(0, srv:stop("SIGTERM", 20))
    remove_db(db)
  end)
end)
