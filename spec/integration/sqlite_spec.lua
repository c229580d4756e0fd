-- SQLite under HTTP, with the real binary: reads on the event loop under a
-- deadline or on the readers' threads, the writer's queue and group commit,
-- several worker processes on one file, and faults (kill -9, a commit that
-- cannot be written).
local client = require "spec.support.client"
local server = require "spec.support.server"
local sched = require "jararaca.sched"
local db = require "jararaca.db"
local cjson = require "cjson"
local ffi = require "ffi"

pcall(ffi.cdef, [[
  struct jr_spec_rlim { unsigned long cur, max; };
  int prlimit(int pid, int resource, const struct jr_spec_rlim *new_limit, struct jr_spec_rlim *old_limit);
  int kill(int pid, int sig);
]])
local RLIMIT_FSIZE, SIGKILL = 1, 9

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

local size_of = require("spec.support.files").size_of

-- n requests over `conns` connections, pipelined; returns the responses in
-- order per connection (a list of lists).
local function pipelined(port, conns, per_conn, request)
  local out, cs = {}, {}
  for i = 1, conns do
    cs[i] = assert(client.connect(port, 30))
    assert(cs[i]:send(request:rep(per_conn)))
  end
  for i = 1, conns do
    out[i] = {}
    for k = 1, per_conn do out[i][k] = assert(cs[i]:read_response()) end
    cs[i]:close()
  end
  return out
end

describe("SQLite under HTTP", function()
  it("a slow read never holds up other requests: stopped at the deadline, it finishes on a reader's thread", function()
    local path = fresh_db()
    local srv = server.start(APP, {}, { LOAD_DB = path })
    assert.equal(10, get_json(srv.port, "/count-to/10").n)
    local slow = assert(client.connect(srv.port, 60))
    assert(slow:send(client.format("GET", "/count-to/10000000")))
    -- other requests, with or without the database, are answered meanwhile,
    -- each at once (the loop is never held for more than the deadline)
    local worst = 0
    for _ = 1, 20 do
      local t0 = sched.clock()
      assert.equal(10, get_json(srv.port, "/count-to/10").n)
      assert.equal(0, get_json(srv.port, "/items/count").n)
      worst = math.max(worst, sched.clock() - t0)
    end
    assert.is_true(worst < 0.25, "slowest answer meanwhile: " .. worst .. " s")
    slow:settimeout(0.05)
    assert.is_nil((slow:read_response())) -- still running
    slow:settimeout(60)
    local res = assert(slow:read_response())
    assert.equal(200, res.status)
    assert.equal(10000000, cjson.decode(res.body).n)
    slow:close()
    assert.equal(0, srv:stop("SIGTERM", 20))
    remove_db(path)
  end)

  for _, workers in ipairs { 1, 2 } do
    it(("200 concurrent read-modify-write increments (POST, the default mode) give 200 (--workers %d)"):format(workers),
      function()
        local path = fresh_db()
        local srv = server.start(APP, { "--workers", tostring(workers) }, { LOAD_DB = path })
        local responses = pipelined(srv.port, 20, 10, client.format("POST", "/counter/increment", { body = "" }))
        local seen = {}
        for _, list in ipairs(responses) do
          for _, res in ipairs(list) do
            assert.equal(200, res.status, res.body)
            local n = cjson.decode(res.body).n
            assert.is_nil(seen[n], "two increments saw the same value " .. n)
            seen[n] = true
          end
        end
        assert.equal(200, get_json(srv.port, "/counter").n)
        assert.equal(0, srv:stop("SIGTERM", 20))
        remove_db(path)
      end)
  end

  it("two worker processes insert into one file: every insert answered and kept", function()
    local path = fresh_db()
    local srv = server.start(APP, { "--workers", "2" }, { LOAD_DB = path })
    -- 8 connections with 40 pipelined inserts each: the kernel spreads the
    -- connections over both workers, whose writers meet at SQLite's lock
    local ids, pids, created = {}, {}, 0
    for _, list in ipairs(pipelined(srv.port, 8, 40, client.format("POST", "/items", { body = "" }))) do
      for _, res in ipairs(list) do
        assert.equal(201, res.status, res.body)
        local body = cjson.decode(res.body)
        assert.is_nil(ids[body.id])
        ids[body.id] = true
        pids[body.pid] = true
        created = created + 1
      end
    end
    assert.equal(320, created)
    local count = get_json(srv.port, "/items/count")
    assert.equal(320, count.n)
    local answered_by = 0
    for _ in pairs(pids) do answered_by = answered_by + 1 end
    assert.equal(answered_by, count.pids) -- each row has the pid that answered it
    assert.equal(0, srv:stop("SIGTERM", 20))
    remove_db(path)
  end)

  for _, workers in ipairs { 1, 2 } do
    it(("kill -9 during a stream of inserts loses no row that was answered 201 (--workers %d)"):format(workers),
      function()
        local path = fresh_db()
        local srv = server.start(APP, { "--workers", tostring(workers) }, { LOAD_DB = path })
        local request = client.format("POST", "/items", { body = "" })
        local conns = {}
        for i = 1, 8 do
          conns[i] = assert(client.connect(srv.port, 10))
          assert(conns[i]:send(request:rep(200)))
        end
        -- read answers round-robin; after 300, kill every process at once
        local answered, pids, n, killed = {}, {}, 0, false
        local open = 8
        while open > 0 do
          for i = 1, 8 do
            local c = conns[i]
            if c then
              local res = c:read_response()
              if not res then
                c:close()
                conns[i] = nil
                open = open - 1
              else
                assert.equal(201, res.status, res.body)
                local body = cjson.decode(res.body)
                answered[#answered + 1] = body.id
                pids[body.pid] = true
                n = n + 1
              end
            end
          end
          if n >= 300 and not killed then
            killed = true
            for pid in pairs(pids) do ffi.C.kill(pid, SIGKILL) end
            ffi.C.kill(srv.pid, SIGKILL)
          end
        end
        assert.is_true(killed)
        srv:wait(10)
        assert.is_true(#answered >= 300)
        assert.is_true(#answered < 1600, "the kill came before the stream ended")
        -- every answered row is in the file
        local d = assert(db.open { path = path, readers = 1 })
        local tx = d:begin("read")
        local kept = {}
        for _, row in ipairs(assert(tx:query("SELECT id FROM items"))) do kept[row.id] = true end
        assert(tx:commit())
        assert(d:close())
        local lost = 0
        for _, id in ipairs(answered) do if not kept[id] then lost = lost + 1 end end
        assert.equal(0, lost)
        remove_db(path)
      end)
  end

  it("a group whose COMMIT fails (the file cannot grow) fails every member: no 201 without its row", function()
    local path = fresh_db()
    local srv = server.start(APP, {}, { LOAD_DB = path })
    local pid = get_json(srv.port, "/db-stats").pid
    for _ = 1, 3 do assert.equal(201, assert(client.request(srv.port, "POST", "/blobs", { body = "" })).status) end
    -- from now on the WAL may grow by ~10 frames: the first commits fit,
    -- then a group's COMMIT fails to append its pages (EFBIG)
    local limit = math.max(size_of(path .. "-wal"), size_of(path)) + 40 * 1024
    local new, old = ffi.new("struct jr_spec_rlim", { limit, limit }), ffi.new("struct jr_spec_rlim")
    assert.equal(0, ffi.C.prlimit(pid, RLIMIT_FSIZE, nil, old))
    new.max = old.max
    assert.equal(0, ffi.C.prlimit(pid, RLIMIT_FSIZE, new, nil))
    local ok_n, failed_n = 0, 0
    for _, list in ipairs(pipelined(srv.port, 16, 3, client.format("POST", "/blobs", { body = "" }))) do
      for _, res in ipairs(list) do
        if res.status == 201 then ok_n = ok_n + 1
        else
          assert.equal(500, res.status, res.body)
          failed_n = failed_n + 1
        end
      end
    end
    assert.equal(0, ffi.C.prlimit(pid, RLIMIT_FSIZE, old, nil))
    assert.is_true(failed_n >= 2, ("%d answered 201, %d failed"):format(ok_n, failed_n))
    -- every 201 has its row, and no failed one has
    assert.equal(3 + ok_n, get_json(srv.port, "/blobs/count").n)
    local w = get_json(srv.port, "/db-stats").writer
    assert.is_true(w.failed_groups >= 1)
    -- and the server goes on
    assert.equal(201, assert(client.request(srv.port, "POST", "/blobs", { body = "" })).status)
    local out = srv:output()
    assert.truthy(out:find('database "default": commit failed', 1, true), out)
    assert.equal(0, srv:stop("SIGTERM", 20))
    remove_db(path)
  end)
end)
