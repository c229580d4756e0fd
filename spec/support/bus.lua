-- spec/support/bus.lua: an embedded broker's file with consumer processes
-- (spec/integration/apps/bus_consumer.lua), for the specs and bench/bus/.
--
--   local b = bus.prepare(path)                 -- queue "jobs" bound to "job.#", the consumers' tables
--   local c = bus.start_consumer(path, "a", { BUS_BATCH = "20" }, log_path)
--   bus.count(b, "SELECT count(*) AS n FROM handled")
--   bus.published(b)                            -- the consumers stop once the queue is empty
--   local w = bus.start_worker(app, log_path, { "--workers", "2" }, env)   -- w.proc, w.log
local embedded = require "jararaca.bus.embedded"
local process = require "jararaca.core.process"
local server = require "spec.support.server"

local M = {}

M.CONSUMER = server.root .. "/spec/integration/apps/bus_consumer.lua"

--- A broker on path with the queue "jobs" bound to "job.#" and the tables
--- the consumers write: handled, consumers, control.
function M.prepare(path)
  local b = assert(embedded.open(path))
  assert(b:bind("jobs", "job.#"))
  local tx = b.db:begin("write")
  assert(tx:exec_script([[
    CREATE TABLE handled (id TEXT NOT NULL, consumer TEXT NOT NULL, deliveries INTEGER NOT NULL);
    CREATE TABLE consumers (name TEXT NOT NULL, pid INTEGER NOT NULL);
    CREATE TABLE control (key TEXT PRIMARY KEY);
  ]]))
  assert(tx:commit())
  return b
end

--- Start a consumer process of "jobs" on path (env: more BUS_* variables;
--- log: where its output goes). Returns its process.
function M.start_consumer(path, name, env, log)
  local e = { BUS_DB = path, BUS_QUEUE = "jobs", BUS_NAME = name, JARARACA_LOG_LEVEL = "warn" }
  for k, v in pairs(env or {}) do e[k] = v end
  return assert(process.spawn { server.bin, "test", M.CONSUMER, env = e, stdout = log, stderr = log })
end

--- Start `jararaca worker app args...` with env added to the environment,
--- its output into the file log: { proc, log }.
function M.start_worker(app, log, args, env)
  local argv = { server.bin, "worker", app, env = env, stdout = log, stderr = log }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return { proc = assert(process.spawn(argv)), log = log }
end

--- The rows of a read query.
function M.query(b, sql, params)
  local tx = b.db:begin("read")
  local rows = assert(tx:query(sql, params))
  tx:commit()
  return rows
end

--- The column n of a one-row query.
function M.count(b, sql, params)
  return M.query(b, sql, params)[1].n
end

--- Tell the consumers that everything is published: they stop once the
--- queue is empty.
function M.published(b)
  local tx = b.db:begin("write")
  assert(tx:execute("INSERT OR IGNORE INTO control (key) VALUES ('published')"))
  assert(tx:commit())
end

--- Start app (its bus on a temporary file, set by make_app(url)) in a task
--- of its own, and run the caller in a "startup" context of it (no
--- transaction): returns a handle { rt, broker, stop = fn }.
function M.start_app(make_app)
  local runtime = require "jararaca.runtime"
  local context = require "jararaca.context"
  local sched = require "jararaca.sched"
  local path = os.tmpname()
  local _, rt = assert(sched.spawn(runtime.start, make_app("sqlite:///" .. path), "worker"):wait())
  local outer = context.current()
  context.bind(context.new("startup", rt.container))
  return {
    rt = rt, broker = rt.bus.broker,
    stop = function()
      context.bind(outer)
      assert(sched.spawn(rt.stop, rt):wait())
      for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(path .. suffix) end
    end,
  }
end

return M
