-- bench/db/pk_bench.lua - jararaca.db throughput, run inside the runtime:
--
--   build/jararaca test bench/db/pk_bench.lua
--   (env: DB_BENCH_SECONDS=2, DB_BENCH_READERS=4, DB_BENCH_ONLY=lua-pattern,
--    DB_BENCH_READ_DEADLINE_US=100 (0: reads on the readers' threads),
--    DB_BENCH_SYNC=NORMAL)
--
-- The shapes of the persistence benchmark's two routes, without HTTP:
--   get:  a read transaction: SELECT one row by primary key; COMMIT
--   post: a write transaction: INSERT one row; COMMIT
-- from one task and from 64 concurrent tasks, on a WAL file with the
-- defaults (4 readers, synchronous NORMAL, group commit). "post, one
-- commit each" turns group commit off. Prints ops/s; asserts nothing about
-- speed. Latencies are per transaction, waits included.
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

local function get(d, i)
  local tx = d:begin("read")
  local row = tx:first("SELECT id, name, done FROM tasks WHERE id = ?", { i % ROWS + 1 })
  assert(row, "no row")
  assert(tx:commit())
end

local function post(d, i)
  local tx = d:begin("write")
  assert(tx:execute("INSERT INTO tasks(name, done) VALUES (?, ?)", { "task " .. i, false }))
  assert(tx:commit())
end

local function open(dir, name, group_commit)
  return assert(db.open {
    path = dir .. "/" .. name, readers = tonumber(os.getenv("DB_BENCH_READERS")) or 4,
    read_deadline_us = tonumber(os.getenv("DB_BENCH_READ_DEADLINE_US")) or 100,
    synchronous = os.getenv("DB_BENCH_SYNC") or "NORMAL", group_commit = group_commit,
  })
end

describe("jararaca.db throughput", function()
  it("BEGIN; SELECT by pk; COMMIT and BEGIN; INSERT; COMMIT", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local d = open(dir, "bench.db", true)
    local tx = d:begin("write")
    assert(tx:exec_script([[
      CREATE TABLE tasks(id INTEGER PRIMARY KEY, name TEXT NOT NULL, done BOOLEAN NOT NULL DEFAULT 0);
    ]]))
    for i = 1, ROWS do assert(tx:execute("INSERT INTO tasks(name) VALUES (?)", { "seed " .. i })) end
    assert(tx:commit())
    print()
    run("get (one task)", d, 1, get)
    run("get (64 tasks)", d, 64, get)
    run("post (one task)", d, 1, post)
    run("post (64 tasks)", d, 64, post)
    local w = d:stats().writer
    print(("  groups %d, committed %d, largest group %d"):format(w.groups, w.committed, w.largest_group))
    assert(d:close())
    local d2 = open(dir, "bench.db", false)
    run("post, one commit each (64 tasks)", d2, 64, post)
    assert(d2:close())
    os.execute("rm -rf " .. dir)
  end)
end)
