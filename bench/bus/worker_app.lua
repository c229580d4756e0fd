-- bench/bus/worker_app.lua - the app `jararaca worker` runs in
-- bench/bus/worker_consume.sh: one IncomingHandler that takes the decoded
-- payload (msg:payload(): the JSON body, decoded before the handler runs)
-- and returns (= ack). Not a test app; environment:
--   BENCH_APP, BENCH_HANDLER  the app's bus name and the handler's name: the
--                             handler consumes the queue "<app>.<handler>"
--   BENCH_COUNT               messages to drain; at the COUNT-th the app
--                             prints the RESULT line and stops its worker (SIGTERM)
--   JARARACA_BUS_URL          amqp://... (the broker; also sqlite:///... for the embedded one)
--   BENCH_LABEL, BENCH_KIND   the RESULT line's client name (default jararaca-worker-consume)
--                             and kind (default amqp)
-- The clock runs from the first delivery the handler gets to the COUNT-th
-- handled one, whose ack is written at the end of that turn of the loop (a
-- task started then, resumed on the next turn, stops the clock). The
-- client CPU is this process's utime + stime (/proc/self/stat) by then,
-- startup included.
local j = require "jararaca"
local sched = require "jararaca.sched"
local sys = require "jararaca.core.sys"

local COUNT = assert(tonumber(os.getenv("BENCH_COUNT")), "BENCH_COUNT not set")
local LABEL = os.getenv("BENCH_LABEL") or "jararaca-worker-consume"
local KIND = os.getenv("BENCH_KIND") or "amqp"
local HZ = 100 -- USER_HZ: /proc's clock ticks (100 on Linux for every arch we build for)

local function cpu_seconds()
  local f = assert(io.open("/proc/self/stat"))
  local stat = f:read("*a")
  f:close()
  -- fields after the command name (in parentheses, may hold spaces): utime is the 14th field
  local rest = stat:match("%) (.*)$")
  local fields = {}
  for v in rest:gmatch("%S+") do fields[#fields + 1] = v end
  return (tonumber(fields[12]) + tonumber(fields[13])) / HZ
end

-- BENCH_PROFILE=mode (jit.p's, e.g. "Fl" or "fv2"): LuaJIT's sampling
-- profiler over the drain, written to BENCH_PROFILE_OUT (stderr by default)
local PROFILE = os.getenv("BENCH_PROFILE")
local profiler
if PROFILE then
  profiler = require "jit.p"
  profiler.start(PROFILE, os.getenv("BENCH_PROFILE_OUT"))
end

local handled, t0 = 0, nil
local checked = false

local function finish()
  sched.sleep(0) -- the next turn of the loop: the last ack is written
  local secs, cpu = sched.clock() - t0, cpu_seconds()
  io.stdout:write(("RESULT %s %s msgs=%d secs=%.3f rate=%.0f cpu_s=%.2f cpu_us_per_msg=%.2f\n"):format(KIND,
    LABEL, COUNT, secs, COUNT / secs, cpu, cpu / COUNT * 1e6))
  io.stdout:flush()
  if profiler then profiler.stop() end
  assert(sys.kill(sys.pid(), "SIGTERM"))
end

local Bench = j.MessageBusController { name = "Bench" }

Bench.handle = j.IncomingHandler("bench.#", { name = os.getenv("BENCH_HANDLER") or "bench", prefetch = 200 },
  function(_, msg)
    local p = msg:payload()
    if not checked then -- the payload was decoded (once: no cost per message)
      assert(type(p) == "table" and p.id, "the payload is not the anchors' JSON")
      checked = true
    end
    if t0 == nil then t0 = sched.clock() end
    handled = handled + 1
    if handled == COUNT then sched.spawn(finish) end
  end)

return j.Microservice { name = os.getenv("BENCH_APP") or "anchors", controllers = { Bench } }
