-- luacheck: std +busted
-- bench/bus/embedded.lua - the embedded broker's throughput, by hand:
--
--   build/jararaca test bench/bus/embedded.lua
--   (env: BUS_BENCH_N=20000 messages per case, BUS_BENCH_BATCH=200 fetch size,
--    BUS_BENCH_ONLY=lua-pattern to run the matching cases only)
--
-- On a WAL file with the defaults (synchronous NORMAL, group commit), ~100
-- byte JSON bodies, one bound queue:
--   publish, one message per call, 1 task and 64 tasks (group commit)
--   publish, batches of 100 per call
--   drain: a pre-filled queue of N, fetched (BUS_BENCH_BATCH at a time) and
--     acked by 1 and by 2 consumer processes (spec/integration/apps/bus_consumer.lua
--     with BUS_RECORD=0: each delivery in a task of its own, acked alone;
--     acks of one batch commit in groups), from the first consumer's start
--     to the empty queue
--   end to end: the same consumers running while this process publishes N
--     in batches of 100: from the first publish to the empty queue
--   latency: publish -> acked by an idle consumer process (it polls)
-- Prints msgs/s; asserts only that every message went through.
local sched = require "jararaca.sched"
local bus = require "spec.support.bus"
local files = require "spec.support.files"

local N = tonumber(os.getenv("BUS_BENCH_N")) or 20000
local BATCH = os.getenv("BUS_BENCH_BATCH") or "200"
local ONLY = os.getenv("BUS_BENCH_ONLY")

local dir, fresh_path

local function body(i)
  return ('{"id":%d,"kind":"task","name":"benchmark message %08d","payload":{"a":1,"b":[1,2,3]}}'):format(i, i)
end

local function fresh()
  local path = fresh_path()
  return bus.prepare(path), path
end

local function report(label, n, seconds)
  print(("  %-52s %8d msgs in %6.2f s  %9.0f msgs/s"):format(label, n, seconds, n / seconds))
end

local function wanted(label) return not ONLY or label:find(ONLY) end

local function publish_batches(b, n, size)
  for first = 1, n, size do
    local msgs = {}
    for i = first, math.min(n, first + size - 1) do msgs[#msgs + 1] = { topic = "job.run", body = body(i) } end
    assert(b:publish(msgs))
  end
end

local function one_by_one(tasks)
  local label = ("publish, one per call, %d task%s"):format(tasks, tasks > 1 and "s" or "")
  if not wanted(label) then return end
  local b = fresh()
  local per = math.floor(N / tasks)
  local t0 = sched.clock()
  local fns = {}
  for k = 1, tasks do
    fns[k] = function()
      for i = 1, per do assert(b:publish { topic = "job.run", body = body(k * per + i) }) end
    end
  end
  sched.gather(unpack(fns))
  report(label, per * tasks, sched.clock() - t0)
  assert(b:stats().queues.jobs.total == per * tasks)
  b:close()
end

local count = bus.count

local function start_consumers(path, k)
  local ps = {}
  for i = 1, k do
    ps[i] = bus.start_consumer(path, "c" .. i, { BUS_RECORD = "0", BUS_BATCH = BATCH }, dir .. "/consumer.log")
  end
  return ps
end

local function until_empty(b)
  while count(b, "SELECT count(*) AS n FROM jr_bus_messages") > 0 do sched.sleep(0.005) end
end

local function finish(b, ps)
  bus.published(b)
  for _, p in ipairs(ps) do assert(p:wait(120) == 0, "a consumer failed: see " .. dir .. "/consumer.log") end
  b:close()
end

local function drain(k)
  local label = ("drain a pre-filled queue, %d consumer process%s"):format(k, k > 1 and "es" or "")
  if not wanted(label) then return end
  local b, path = fresh()
  publish_batches(b, N, 1000)
  local ps = start_consumers(path, k)
  while count(b, "SELECT count(*) AS n FROM consumers") == 0 do sched.sleep(0.002) end
  local t0 = sched.clock()
  until_empty(b)
  report(label, N, sched.clock() - t0)
  finish(b, ps)
end

local function end_to_end(k)
  local label = ("publish (batches of 100) -> acked, %d consumer process%s"):format(k, k > 1 and "es" or "")
  if not wanted(label) then return end
  local b, path = fresh()
  local ps = start_consumers(path, k)
  while count(b, "SELECT count(*) AS n FROM consumers") < k do sched.sleep(0.01) end
  local t0 = sched.clock()
  publish_batches(b, N, 100)
  local t1 = sched.clock()
  until_empty(b)
  report(label, N, sched.clock() - t0)
  print(("  %-52s %8d msgs in %6.2f s  %9.0f msgs/s"):format("  (its publishing alone, beside the consumers)", N,
    t1 - t0, N / (t1 - t0)))
  finish(b, ps)
end

-- An idle consumer in another process learns of a message by polling
-- (poll_interval, 50 ms by default): publish one message at a time into
-- the idle queue and time it until it is acked.
local function latency()
  local label = "latency, idle consumer process"
  if not wanted(label) then return end
  local b, path = fresh()
  local ps = start_consumers(path, 1)
  while count(b, "SELECT count(*) AS n FROM consumers") < 1 do sched.sleep(0.01) end
  local samples = {}
  for i = 1, 40 do
    sched.sleep(math.random() * 0.1) -- land at random points of the consumer's poll cycle
    local t0 = sched.clock()
    assert(b:publish { topic = "job.run", body = body(i) })
    while count(b, "SELECT count(*) AS n FROM jr_bus_messages") > 0 do sched.sleep(0.0005) end
    samples[i] = (sched.clock() - t0) * 1000
  end
  table.sort(samples)
  print(("  %-52s median %.1f ms, p90 %.1f ms, max %.1f ms (%d samples)"):format(label, samples[20], samples[36],
    samples[40], #samples))
  finish(b, ps)
end

describe("embedded broker throughput", function()
  it("publishes and drains", function()
    dir, fresh_path = files.temp_dir("bench", ".db")
    print()
    one_by_one(1)
    one_by_one(64)
    local label = "publish, batches of 100 per call"
    if wanted(label) then
      local b = fresh()
      local t0 = sched.clock()
      publish_batches(b, N, 100)
      report(label, N, sched.clock() - t0)
      b:close()
    end
    drain(1)
    drain(2)
    end_to_end(1)
    end_to_end(2)
    latency()
    files.remove_dir(dir)
  end)
end)
