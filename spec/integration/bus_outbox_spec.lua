-- The outbox, end to end with real processes and files
-- (spec/integration/apps/bus_app.lua): a request that writes and publishes
-- puts its message in the app database's jr_outbox table in its own
-- transaction; the server relays it to the broker after the commit; a
-- rollback leaves neither; a server killed (-9) before it could relay leaves
-- the row, and the next start relays it for the worker. With the broker on
-- the app's own file the message goes straight into the broker's tables in
-- the request's transaction.
local process = require "jararaca.core.process"
local dbmod = require "jararaca.db"
local json = require "jararaca.json"
local server = require "spec.support.server"
local client = require "spec.support.client"
local wait = require "spec.support.wait"
local files = require "spec.support.files"

local APP = server.root .. "/spec/integration/apps/bus_app.lua"

-- (timeout: a request whose relay waits for a locked broker file answers
-- after the file's busy timeout, later still on a loaded machine)
local function post(srv, path, body, timeout)
  return assert(client.request(srv.port, "POST", path,
    { headers = { ["Content-Type"] = "application/json" }, body = assert(json.encode(body)), timeout = timeout }))
end

local function query(database, sql, params)
  local tx = database:begin("read")
  local rows = assert(tx:query(sql, params))
  tx:commit()
  return rows
end

local function count(database, sql, params)
  return query(database, sql, params)[1].n
end

local function start_worker(dir, env, name)
  local log = ("%s/%s.log"):format(dir, name)
  return { proc = assert(process.spawn { server.bin, "worker", APP, env = env, stdout = log, stderr = log }), log = log }
end

local function stop_worker(w)
  w.proc:kill("SIGTERM")
  if not w.proc:wait(20) then w.proc:kill("SIGKILL"); w.proc:wait(5) end
end

local function job_status(database, id)
  local r = query(database, "SELECT status FROM jobs WHERE id = ?", { id })[1]
  return r and r.status
end

-- Hold the write lock of a SQLite file (another process's writes there fail
-- after their busy timeout) until release().
local function hold_lock(path)
  local d = assert(dbmod.open { path = path })
  local tx = d:begin("write")
  assert(tx:execute("INSERT OR REPLACE INTO jr_bus_meta (key, value) VALUES ('spec_lock', 1)"))
  return function()
    tx:rollback()
    d:close()
  end
end

describe("the outbox (bus on its own file)", function()
  local dir, env, appdb, busdb

  before_each(function()
    dir = files.temp_dir("outbox")
    env = { BUS_APP_DB = dir .. "/app.db", JARARACA_LOG_LEVEL = "info" }
  end)

  after_each(function()
    if appdb then appdb:close(); appdb = nil end
    if busdb then busdb:close(); busdb = nil end
    files.remove_dir(dir)
  end)

  it("the message commits with the request's row, is relayed after the commit and handled; a rollback leaves neither",
    function()
      local srv = server.start(APP, { "--worker-timeout", "0" }, env)
      local w = start_worker(dir, env, "worker")
      appdb = assert(dbmod.open { path = dir .. "/app.db" })
      busdb = assert(dbmod.open { path = dir .. "/busapp.bus.db" })
      assert.equal(201, post(srv, "/jobs", { id = "ob-1", kind = "ok" }).status)
      -- the outbox exists in the app's database (created by the request's transaction) and is empty once relayed
      assert.equal(1, count(appdb, "SELECT count(*) AS n FROM sqlite_master WHERE name = 'jr_outbox'"))
      -- (the worker's handler publishes job.done through the outbox too: only the request's message counts here)
      local left = count(appdb, "SELECT count(*) AS n FROM jr_outbox WHERE topic = 'job.ok'")
      assert(left == 0, left .. " row(s) in the outbox after the response:\n" .. srv:output())
      wait.until_true(function() return job_status(appdb, "ob-1") == "done" end, "the worker handled ob-1", 15)
      -- a request that fails after writing and publishing: no job row, no outbox row, no message
      assert.equal(409, post(srv, "/jobs/fail-after-publish", { id = "ob-never" }).status)
      assert.equal(0, count(appdb, "SELECT count(*) AS n FROM jobs WHERE id = 'ob-never'"))
      assert.equal(0, count(appdb, "SELECT count(*) AS n FROM jr_outbox WHERE topic = 'job.ok'"))
      assert.equal(201, post(srv, "/jobs", { id = "ob-2", kind = "ok" }).status)
      wait.until_true(function() return job_status(appdb, "ob-2") == "done" end, "the worker handled ob-2", 15)
      assert.equal(0, count(busdb, "SELECT count(*) AS n FROM jr_bus_messages WHERE CAST(body AS TEXT) LIKE '%ob-never%'"))
      assert.equal(0, count(appdb, "SELECT count(*) AS n FROM runs WHERE id = 'ob-never'"))
      stop_worker(w)
      assert.equal(0, srv:stop())
    end)

  it("a server killed (-9) before it could relay: the row stays; the next start relays it (same id), the worker "
    .. "handles it", function()
    local srv = server.start(APP, { "--worker-timeout", "0" }, env)
    appdb = assert(dbmod.open { path = dir .. "/app.db" })
    busdb = assert(dbmod.open { path = dir .. "/busapp.bus.db" })
    -- the broker's file is locked: the relay after the commit fails (after its busy timeout)
    local release = hold_lock(dir .. "/busapp.bus.db")
    local res = post(srv, "/jobs", { id = "crash-1", kind = "ok" }, 30)
    assert.equal(201, res.status, res.body)
    -- committed together: the job and its message in the outbox
    assert.equal("new", job_status(appdb, "crash-1"))
    local rows = query(appdb, "SELECT id, topic, body FROM jr_outbox")
    assert.equal(1, #rows)
    assert.equal("job.ok", rows[1].topic)
    assert.same({ id = "crash-1", kind = "ok" }, json.decode(rows[1].body))
    local id = rows[1].id
    srv.proc:kill("SIGKILL")
    srv.proc:wait(5)
    release()
    assert.equal(0, count(busdb, "SELECT count(*) AS n FROM jr_bus_messages"))
    -- the next start relays the row left behind (its owner is gone) before any worker runs
    local srv2 = server.start(APP, { "--worker-timeout", "0" }, env)
    local ok = pcall(wait.until_true, function() return count(appdb, "SELECT count(*) AS n FROM jr_outbox") == 0 end,
      "the outbox is relayed", 15)
    assert(ok, "the outbox was not relayed:\n" .. srv2:output())
    local msgs = query(busdb, "SELECT id, queue FROM jr_bus_messages")
    assert.equal(1, #msgs)
    assert.same({ id = id, queue = "busapp.process" }, { id = msgs[1].id, queue = msgs[1].queue })
    local w = start_worker(dir, env, "worker2")
    wait.until_true(function() return job_status(appdb, "crash-1") == "done" end, "the worker handled crash-1", 15)
    stop_worker(w)
    assert.equal(0, srv2:stop())
  end)

  it("the bus on the app's own file: the message is written into the broker's tables by the request's transaction",
    function()
      env.JARARACA_BUS_URL = "sqlite:///" .. dir .. "/app.db"
      local srv = server.start(APP, { "--worker-timeout", "0" }, env)
      appdb = assert(dbmod.open { path = dir .. "/app.db" })
      assert.equal(201, post(srv, "/jobs", { id = "same-1", kind = "ok" }).status)
      -- no outbox: the message is in the broker's queue of the same file, committed with the job
      assert.equal(0, count(appdb, "SELECT count(*) AS n FROM sqlite_master WHERE name = 'jr_outbox'"))
      assert.equal(1, count(appdb, "SELECT count(*) AS n FROM jr_bus_messages WHERE CAST(body AS TEXT) LIKE '%same-1%'"))
      assert.equal(409, post(srv, "/jobs/fail-after-publish", { id = "same-never" }).status)
      assert.equal(0, count(appdb, "SELECT count(*) AS n FROM jobs WHERE id = 'same-never'"))
      assert.equal(0, count(appdb, "SELECT count(*) AS n FROM jr_bus_messages WHERE CAST(body AS TEXT) LIKE '%same-never%'"))
      local w = start_worker(dir, env, "worker")
      wait.until_true(function() return job_status(appdb, "same-1") == "done" end, "the worker handled same-1", 15)
      stop_worker(w)
      assert.equal(0, srv:stop())
    end)
end)
