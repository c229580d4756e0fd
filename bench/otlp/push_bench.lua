-- luacheck: std +busted
-- bench/otlp/push_bench.lua - the cost of handing one encoded item to the
-- OTLP exporter (e:push: a copy into the bounded queue under a mutex), the
-- price every finished span, log line and metric pays on the event loop:
--
--   build/jararaca test bench/otlp/push_bench.lua
--   (env: OTLP_BENCH_N=100000 pushes per round, OTLP_BENCH_ROUNDS=3,
--    OTLP_BENCH_SIZE=300 bytes per item, about a span with a few attributes)
--
-- The queue and the batch are larger than N and the schedule delay is an
-- hour, so the exporter thread sleeps throughout: what is measured is the
-- push alone. Prints the median ns per push (wall and CPU); asserts nothing
-- about speed, only that every push was accepted.
local otlp = require "jararaca.core.otlp"
local sys = require "jararaca.core.sys"

local N = tonumber(os.getenv("OTLP_BENCH_N")) or 100000
local ROUNDS = tonumber(os.getenv("OTLP_BENCH_ROUNDS")) or 3
local SIZE = tonumber(os.getenv("OTLP_BENCH_SIZE")) or 300

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

describe("otlp push", function()
  it(("%d pushes of %d bytes, %d rounds"):format(N, SIZE, ROUNDS), function()
    local item = string.rep("s", SIZE)
    local wall, cpu = {}, {}
    for r = 1, ROUNDS do
      local e = assert(otlp.new { traces = { url = "http://127.0.0.1:9/v1/traces", max_queue = N + 1,
        max_batch = N + 1, schedule_delay_ms = 3600000 } })
      local push = e.push
      local t0, c0 = sys.time(), os.clock()
      for _ = 1, N do
        if not push(e, "traces", item) then error("push refused") end
      end
      wall[r] = (sys.time() - t0) / N * 1e9
      cpu[r] = (os.clock() - c0) / N * 1e9
      assert.equal(N, e:stats("traces").queued)
      e:close(0)
    end
    print(("\notlp push: median %.0f ns wall, %.0f ns CPU per push (rounds wall: %s)"):format(median(wall),
      median(cpu), table.concat((function()
        local s = {}
        for i, w in ipairs(wall) do s[i] = ("%.0f"):format(w) end
        return s
      end)(), ", ")))
  end)
end)
