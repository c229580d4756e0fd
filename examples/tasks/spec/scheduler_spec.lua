-- The tasks app's scheduled routine, real processes on real files: under
-- `jararaca scheduler`, TaskWorker.routine creates a task with a random
-- name at every tick of "* * * * * */3" (seconds divisible by 3) and
-- publishes it to "task" once its transaction committed; two schedulers
-- still create one task per tick; TASKS_SCHEDULER=off leaves it out.
local process = require "jararaca.core.process"
local embedded = require "jararaca.bus.embedded"
local dbmod = require "jararaca.db"
local json = require "jararaca.json"
local server = require "spec.support.server"
local run = require "spec.support.run"
local wait = require "spec.support.wait"
local files = require "spec.support.files"

local APP = server.root .. "/examples/tasks/app.lua"
local SPY = "spec.task" -- the spec's own queue, bound to "task"
local T = 30 -- seconds any awaited state may take (a loaded machine)

local dir, env, procs, broker, db

local function start(name, extra)
  local log = dir .. "/" .. name .. ".log"
  local e = {}
  for k, v in pairs(env) do e[k] = v end
  for k, v in pairs(extra or {}) do e[k] = v end
  local p = { proc = assert(process.spawn { server.bin, "scheduler", APP, env = e, stdout = log, stderr = log }),
    log = log }
  procs[#procs + 1] = p
  return p
end

local function output(p) return run.read(p.log) or "" end

local function scheduled()
  local tx = db:begin("read")
  local rows = assert(tx:query("SELECT id, name, created_at FROM tasks WHERE name LIKE 'scheduled %' "
    .. "ORDER BY created_at"))
  tx:commit()
  return rows
end

before_each(function()
  dir = files.temp_dir("tasks-sched")
  env = { TASKS_DB = dir .. "/tasks.db", JARARACA_LOG_LEVEL = "info" }
  procs = {}
  broker = assert(embedded.open(dir .. "/tasks.bus.db"))
  assert(broker:bind(SPY, "task"))
end)

after_each(function()
  for _, p in ipairs(procs) do
    if not p.done then p.proc:kill("SIGKILL"); p.proc:wait(5) end
  end
  if db then db:close(); db = nil end
  broker:close()
  files.remove_dir(dir)
end)

describe("the tasks app's scheduled routine", function()
  it("two schedulers: one task per 3-second tick, each published to 'task' after its commit", function()
    local a, b = start("a"), start("b")
    for _, p in ipairs { a, b } do
      wait.until_true(function() return output(p):find("scheduler started", 1, true) end, "started:\n" .. output(p), T)
    end
    db = assert(dbmod.open { path = dir .. "/tasks.db" })
    wait.until_true(function() return #scheduled() >= 3 end, "three scheduled tasks", T)
    for _, p in ipairs { a, b } do
      p.proc:kill("SIGTERM")
      assert.equal(0, p.proc:wait(T), output(p))
      p.done = true
    end
    local tasks = scheduled()
    local ticks, names = {}, {}
    for _, p in ipairs { a, b } do
      for id, name, tick in output(p):gmatch("routine: created task (%S+) %((scheduled %x+)%) for tick (%d+)") do
        tick = tonumber(tick)
        assert.is_nil(ticks[tick], "tick " .. tick .. " created two tasks")
        assert.equal(0, tick % 3)
        ticks[tick] = id
        names[id] = name
      end
    end
    local n = 0
    for _, t in ipairs(tasks) do
      assert.equal(t.name, names[t.id])
      n = n + 1
    end
    local logged = 0
    for _ in pairs(names) do logged = logged + 1 end
    assert.equal(logged, n)
    -- each committed task was published to "task" with its id and name
    local seen = {}
    for _, d in ipairs(assert(broker:fetch(SPY, 100, 30))) do
      local body = assert(json.decode(d.body))
      seen[body.id] = body.name
      assert(broker:ack(d))
    end
    for _, t in ipairs(tasks) do assert.equal(t.name, seen[t.id]) end
  end)

  it("TASKS_SCHEDULER=off leaves the routine out: the scheduler has nothing to run", function()
    local p = start("off", { TASKS_SCHEDULER = "off" })
    assert.equal(2, p.proc:wait(T), output(p))
    p.done = true
    assert.is_truthy(output(p):find("the app has no scheduled action to run", 1, true), output(p))
  end)
end)
