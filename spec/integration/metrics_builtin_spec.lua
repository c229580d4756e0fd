-- The built-in metrics on real processes (spec/integration/apps/metrics_all.lua):
-- one scrape of `jararaca server --workers 2` shows both workers' series;
-- the admin port (JARARACA_METRICS_PORT) of a server, of `jararaca worker`
-- and of `jararaca scheduler`; the WebSocket, SQLite, bus and scheduler
-- families; every output passes `promtool check metrics`; a port in use is
-- a startup error.
local client = require "spec.support.client"
local server = require "spec.support.server"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local wsclient = require "spec.support.wsclient"
local bus_support = require "spec.support.bus"
local cjson = require "cjson"
local sys = require "jararaca.core.sys"
local line_value = require("spec.support.metrics").value

local APP = "spec/integration/apps/metrics_all.lua"

local function promtool(text)
  local path = run.temp_file(text, ".prom")
  local status, out, err = run.run({ "sh", "-c", 'exec promtool check metrics < "$0"', path }, 30)
  return status, out .. err
end

local function scrape(port)
  local res = assert(client.request(port, "GET", "/metrics"))
  assert.equal(200, res.status, res.body)
  return res.body
end

-- A temporary database path (the broker and the store go next to it).
local function db_path()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function remove_db(p)
  for _, f in ipairs { "", ".bus", ".sched" } do
    for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(p .. f .. suffix) end
  end
end

-- Wait until GET /metrics answers on port (a process without an app port).
local function wait_scrape(port, proc, log)
  return wait.until_true(function()
    local status = proc:wait(0)
    if status then error(("exited during startup (status %s):\n%s"):format(status, run.read(log) or "")) end
    local res = client.request(port, "GET", "/metrics", { timeout = 1 })
    return res and res.status == 200 and res.body
  end, "the admin port answers", 20, 0.05)
end

describe("built-in metrics", function()
  local db
  before_each(function() db = db_path() end)
  after_each(function()
    run.cleanup()
    remove_db(db)
  end)

  it("server --workers 2: one scrape on the app's port shows the requests of both workers", function()
    local srv = server.start(APP, { "--workers", "2" }, { METRICS_DB = db })
    local stopped
    finally(function()
      if stopped then sys.kill(stopped, "SIGCONT") end
      srv:stop()
    end)
    -- new connections spread over both workers once both listen (the
    -- server answers as soon as the first one does): ask until both have
    -- answered, at least 24 times
    local pids, n, distinct = {}, 0, 0
    while n < 24 or distinct < 2 do
      assert(n < 2000, "only one worker answered 2000 requests")
      local res = assert(client.request(srv.port, "GET", "/api/pid"))
      assert.equal(200, res.status)
      n = n + 1
      local pid = cjson.decode(res.body).pid
      if not pids[pid] then
        pids[pid] = true
        distinct = distinct + 1
      end
    end
    assert.equal(2, distinct)
    -- whichever worker the kernel hands each scrape to, it answers for both
    for _ = 1, 4 do
      local body = scrape(srv.port)
      assert.equal(n, line_value(body, 'jararaca_http_requests_total{method="GET",route="/api/pid",status="200"}'))
      assert.equal(n, line_value(body, 'jararaca_http_request_duration_seconds_count{method="GET",route="/api/pid"}'))
      assert.equal(0, line_value(body, "jararaca_metrics_workers_missing"))
      local status, out = promtool(body)
      assert.equal(0, status, out)
    end
    -- a worker that does not answer (stopped): the other one answers after
    -- its bound with its own series, and says one is missing (a scrape the
    -- kernel hands to the stopped one times out here: ask again)
    stopped = next(pids)
    assert(sys.kill(stopped, "SIGSTOP"))
    local body = wait.until_true(function()
      local res = client.request(srv.port, "GET", "/metrics", { timeout = 2 })
      return res and res.status == 200 and res.body
    end, "the running worker answers a scrape", 30, 0)
    assert.equal(1, line_value(body, "jararaca_metrics_workers_missing"))
    local alone = line_value(body, 'jararaca_http_requests_total{method="GET",route="/api/pid",status="200"}')
    assert.truthy(alone > 0 and alone < n, alone)
  end)

  it("the admin port: /metrics there and not on the app's port; WebSocket and SQLite series", function()
    local mport = client.free_port()
    local srv = server.start(APP, {}, { METRICS_DB = db, JARARACA_METRICS_PORT = tostring(mport) })
    local ws
    finally(function()
      if ws then ws.conn:close() end
      srv:stop()
    end)
    assert.equal(404, assert(client.request(srv.port, "GET", "/metrics")).status)
    assert.equal(404, assert(client.request(mport, "GET", "/api/pid")).status) -- only /metrics there
    for i = 1, 3 do assert.equal(201, assert(client.request(srv.port, "POST", "/api/notes/n" .. i)).status) end
    ws = assert(wsclient.connect(srv.port, "/ws/lobby"))
    for _, m in ipairs { "a", "b" } do
      assert(ws:send_text(m))
      assert.equal(m, (ws:receive(5)))
    end
    local body = scrape(mport)
    assert.equal(1, line_value(body, "jararaca_ws_connections"))
    assert.equal(1, line_value(body, "jararaca_ws_connections_total"))
    assert.equal(1, line_value(body, "jararaca_ws_rooms"))
    assert.equal(2, line_value(body, "jararaca_ws_messages_received_total"))
    assert.equal(2, line_value(body, "jararaca_ws_messages_sent_total"))
    assert.equal(0, line_value(body, "jararaca_ws_slow_readers_closed_total"))
    -- three write transactions, each its own group commit (one at a time)
    assert.equal(3, line_value(body, 'jararaca_db_commit_batch_size_count{database="default"}'))
    assert.equal(3, line_value(body, 'jararaca_db_commit_batch_size_sum{database="default"}'))
    assert.equal(3, line_value(body, 'jararaca_db_writer_wait_seconds_count{database="default"}'))
    assert.truthy(line_value(body, 'jararaca_db_statements_total{database="default"}') >= 3)
    assert.equal(3, line_value(body, 'jararaca_http_requests_total{method="POST",route="/api/notes/{what}",status="201"}'))
    local status, out = promtool(body)
    assert.equal(0, status, out)
    ws:close(1000, "bye")
    wait.until_true(function() return line_value(scrape(mport), "jararaca_ws_connections") == 0 end,
      "the closed connection is no longer open")
  end)

  it("jararaca worker serves the bus series on its admin port (--workers 2: one scrape for both)", function()
    local srv = server.start(APP, {}, { METRICS_DB = db })
    local mport = client.free_port()
    local log = os.tmpname()
    local w
    finally(function() -- (busted keeps one finally per test)
      if w then run.stop(w.proc) end
      os.remove(log)
      srv:stop()
    end)
    w = bus_support.start_worker(APP, log, { "--workers", "2" },
      { METRICS_DB = db, JARARACA_METRICS_PORT = tostring(mport) })
    wait_scrape(mport, w.proc, log)
    for _, t in ipairs { "ok.a", "ok.b", "ok.c", "fail.a" } do
      assert.equal(202, assert(client.request(srv.port, "POST", "/api/publish/" .. t)).status)
    end
    local body = scrape(srv.port)
    assert.equal(1, line_value(body, 'jararaca_bus_messages_sent_total{topic="ok.a"}'))
    assert.equal(1, line_value(body, 'jararaca_bus_messages_sent_total{topic="fail.a"}'))
    -- fail: raised, retried once, raised again: dead-lettered
    body = wait.until_true(function()
      local b = scrape(mport)
      return line_value(b, 'jararaca_bus_messages_processed_total{handler="fail",outcome="dead"}') == 1
        and line_value(b, 'jararaca_bus_messages_processed_total{handler="ok",outcome="ack"}') == 3 and b
    end, "the worker's scrape shows every delivery settled", 20, 0.05)
    assert.equal(1, line_value(body, 'jararaca_bus_messages_processed_total{handler="fail",outcome="retry"}'))
    assert.equal(2, line_value(body, 'jararaca_bus_handler_failures_total{handler="fail"}'))
    assert.is_nil(line_value(body, 'jararaca_bus_handler_failures_total{handler="ok"}'))
    assert.equal(3, line_value(body, 'jararaca_bus_handler_duration_seconds_count{handler="ok"}'))
    assert.equal(0, line_value(body, 'jararaca_bus_messages_in_flight{handler="ok"}'))
    assert.equal(0, line_value(body, "jararaca_metrics_workers_missing"))
    assert.is_nil(body:find("jararaca_http_requests_total", 1, true)) -- a worker serves no HTTP
    local status, out = promtool(body)
    assert.equal(0, status, out)
  end)

  it("jararaca scheduler serves runs, skips, failures and lateness on its admin port", function()
    local srv = server.start(APP, {}, { METRICS_DB = db }) -- (migrates the database)
    local mport = client.free_port()
    local log = os.tmpname()
    local proc
    finally(function()
      if proc then run.stop(proc) end
      os.remove(log)
      srv:stop()
    end)
    proc = assert(require("jararaca.core.process").spawn {
      server.bin, "scheduler", APP, env = { METRICS_DB = db, JARARACA_METRICS_PORT = tostring(mport) },
      stdout = log, stderr = log,
    })
    wait_scrape(mport, proc, log)
    local body = wait.until_true(function()
      local b = scrape(mport)
      local function v(s) return line_value(b, s) or 0 end
      return v('jararaca_scheduler_runs_total{action="tick",outcome="ok"}') >= 2
        and v('jararaca_scheduler_runs_total{action="boom",outcome="error"}') >= 1
        and v('jararaca_scheduler_skips_total{action="busy",reason="busy"}') >= 1 and b
    end, "two ticks, a failure and a skip", 20, 0.1)
    assert.truthy(line_value(body, 'jararaca_scheduler_failures_total{action="boom"}') >= 1)
    assert.is_nil(line_value(body, 'jararaca_scheduler_failures_total{action="tick"}'))
    assert.truthy(line_value(body, 'jararaca_scheduler_lateness_seconds_count{action="tick"}') >= 2)
    assert.truthy(line_value(body, 'jararaca_scheduler_lateness_seconds_bucket{action="tick",le="+Inf"}') >= 2)
    local status, out = promtool(body)
    assert.equal(0, status, out)
  end)

  it("a port in use or a bad JARARACA_METRICS_PORT is a startup error naming it", function()
    local srv = server.start(APP, {}, { METRICS_DB = db })
    finally(function() srv:stop() end)
    local status, out, err = run.run({ server.bin, "worker", APP,
      env = { METRICS_DB = db, JARARACA_METRICS_PORT = tostring(srv.port) } }, 30)
    assert.equal(1, status, out .. err)
    assert.matches("metrics admin port 127.0.0.1:" .. srv.port .. ": .*address already in use", out .. err)
    status, out, err = run.run({ server.bin, "scheduler", APP,
      env = { METRICS_DB = db, JARARACA_METRICS_PORT = "http" } }, 30)
    assert.equal(1, status, out .. err)
    assert.matches('JARARACA_METRICS_PORT must be an integer in 0..65535, got "http"', out .. err, 1, true)
  end)
end)
