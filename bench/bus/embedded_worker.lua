-- luacheck: std +busted
-- bench/bus/embedded_worker.lua - the embedded broker through `jararaca
-- worker` (bench/bus/worker_app.lua: decode, ack), by hand:
--
--   build/jararaca test bench/bus/embedded_worker.lua     (env: BUS_BENCH_N, default 100000)
--
-- On a fresh WAL file, queue "anchors.bench" bound to "bench.#", ~95-byte
-- JSON bodies like the anchors':
--   drain: N published first (batches of 1000), then the worker started:
--     its RESULT line (first delivery -> N-th handled, its CPU)
--   publish -> handled: the worker running and idle (a first message went
--     through), this process publishes N in batches of 100 (as the outbox
--     relay would): from the first publish to the worker's N-th handled
--     message (it exits then)
-- Prints RESULT lines; asserts only that every message went through.
local embedded = require "jararaca.bus.embedded"
local process = require "jararaca.core.process"
local sched = require "jararaca.sched"
local files = require "spec.support.files"
local run = require "spec.support.run"
local server = require "spec.support.server"
local bus = require "spec.support.bus"

local N = tonumber(os.getenv("BUS_BENCH_N")) or 100000
local APP = server.root .. "/bench/bus/worker_app.lua"
local QUEUE = "anchors.bench"

local function body(i)
  return ('{"id":%d,"type":"user.created","data":{"name":"user-%d","email":"user-%d@example.com"}}'):format(i, i, i)
end

local function publish(b, first, last, size)
  for s = first, last, size do
    local msgs = {}
    for i = s, math.min(last, s + size - 1) do
      msgs[#msgs + 1] = { topic = "bench.created", body = body(i), headers = { ["content-type"] = "application/json" } }
    end
    assert(b:publish(msgs))
  end
end

local function start_worker(path, count, label, out)
  return assert(process.spawn { server.bin, "worker", APP, "--prefetch", "200", "--log-level", "warn",
    env = { JARARACA_BUS_URL = "sqlite:///" .. path, BENCH_APP = "anchors", BENCH_HANDLER = "bench",
      BENCH_COUNT = tostring(count), BENCH_LABEL = label, BENCH_KIND = "bus" }, stdout = out, stderr = out .. ".err" })
end

local function result(out)
  local text = assert(run.read(out))
  return (assert(text:match("RESULT[^\n]*"), "no RESULT line from the worker: " .. text))
end

local function queued(b)
  return bus.count(b, "SELECT count(*) AS n FROM jr_bus_messages")
end

describe("the embedded broker through jararaca worker", function()
  it("drains and carries messages", function()
    local dir, fresh = files.temp_dir("bench", ".db")
    -- drain a pre-filled queue
    local path = fresh()
    local b = assert(embedded.open(path))
    assert(b:bind(QUEUE, "bench.#"))
    publish(b, 1, N, 1000)
    local w = start_worker(path, N, "jararaca-worker-embedded-drain", dir .. "/drain.out")
    assert.equal(0, w:wait(600))
    print(result(dir .. "/drain.out"))
    assert.equal(0, queued(b))
    b:close()
    -- publish -> handled
    path = fresh()
    b = assert(embedded.open(path))
    assert(b:bind(QUEUE, "bench.#"))
    w = start_worker(path, N + 1, "jararaca-worker-embedded-e2e", dir .. "/e2e.out")
    publish(b, 0, 0, 1)
    while queued(b) > 0 do sched.sleep(0.01) end
    local t0 = sched.clock()
    publish(b, 1, N, 100)
    local t1 = sched.clock()
    assert.equal(0, w:wait(600))
    local secs = sched.clock() - t0
    print(("RESULT bus jararaca-embedded-publish-to-handled msgs=%d secs=%.3f rate=%.0f (publishing alone: %.0f msgs/s)")
      :format(N, secs, N / secs, N / (t1 - t0)))
    print("  worker: " .. result(dir .. "/e2e.out"))
    assert.equal(0, queued(b))
    b:close()
    files.remove_dir(dir)
  end)
end)
