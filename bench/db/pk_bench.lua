-- bench/db/pk_bench.lua - jararaca.db throughput, run inside the runtime:
--
--   build/jararaca test bench/db/pk_bench.lua
--   (env: DB_BENCH_SECONDS=2, DB_BENCH_POOL=4, DB_BENCH_ONLY=lua-pattern)
--
-- The shapes of the persistence benchmark's two routes, without HTTP:
--   get:  acquire; BEGIN; SELECT one row by primary key; COMMIT; release
--   post: acquire; BEGIN; INSERT one row; COMMIT; release
-- from one task and from 64 concurrent tasks, on a WAL file with the
-- defaults (pool_size 4, synchronous NORMAL). Prints ops/s; asserts nothing
-- about speed. Latencies are per operation, acquire included.
local db = require "jararaca.db"
local sched = require "jararaca.sched"

local SECONDS = tonumber(os.getenv("DB_BENCH_SECONDS")) or 2
local ROWS = 1000

local ONLY = os.getenv("DB_BENCH_ONLY") -- a Lua pattern: run the matching cases only

local function run(label, pool, tasks, op)
  if ONLY and not label:find(ONLY) then return end
  local clock = sched.clock
  local deadline = clock() + SECONDS
  local count = 0
  local lat = {}
  local function worker(seed)
    local i = seed
    while clock() < deadline do
      local t = clock()
      op(pool, i)
      lat[#lat + 1] = clock() - t
      i = i + 1
      count = count + 1
    end
  end
  local t0 = sched.clock()
  if tasks == 1 then
    worker(1)
  else
    local fns = {}
    for k = 1, tasks do fns[k] = function() worker(k * 7919) end end
    sched.gather(unpack(fns))
  end
  local dt = clock() - t0
  table.sort(lat)
  local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] * 1e3 end
  print(("%-32s %7.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms"):format(
    label, count / dt, pct(0.5), pct(0.99), lat[#lat] * 1e3))
  return count / dt
end

local function get(pool, i)
  local c = pool:acquire()
  c:begin()
  local row = c:first("SELECT id, name, done FROM tasks WHERE id = ?", { i % ROWS + 1 })
  assert(row, "no row")
  assert(c:commit())
  c:release()
end

local function post(pool, i)
  local c = pool:acquire()
  c:begin()
  assert(c:execute("INSERT INTO tasks(name, done) VALUES (?, ?)", { "task " .. i, false }))
  assert(c:commit())
  c:release()
end

local function get_no_tx(pool, i)
  local c = pool:acquire()
  assert(c:first("SELECT id, name, done FROM tasks WHERE id = ?", { i % ROWS + 1 }))
  c:release()
end

describe("jararaca.db throughput", function()
  it("BEGIN; SELECT by pk; COMMIT and BEGIN; INSERT; COMMIT", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local pool = assert(db.open { path = dir .. "/bench.db", pool_size = tonumber(os.getenv("DB_BENCH_POOL")) or 4 })
    local c = pool:acquire()
    assert(c:exec_script([[
      CREATE TABLE tasks(id INTEGER PRIMARY KEY, name TEXT NOT NULL, done BOOLEAN NOT NULL DEFAULT 0);
    ]]))
    c:begin()
    for i = 1, ROWS do assert(c:execute("INSERT INTO tasks(name) VALUES (?)", { "seed " .. i })) end
    assert(c:commit())
    c:release()
    print()
    run("get (one task)", pool, 1, get)
    run("get (64 tasks)", pool, 64, get)
    run("get, no transaction (one task)", pool, 1, get_no_tx)
    run("get, no transaction (64 tasks)", pool, 64, get_no_tx)
    run("post (one task)", pool, 1, post)
    run("post (64 tasks)", pool, 64, post)
    assert(pool:close())
    os.execute("rm -rf " .. dir)
  end)
end)
