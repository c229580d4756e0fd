-- luacheck: std +busted
-- bench/rpc/client.lua - our client (jararaca.core.http_client) doing what
-- bench/rpc/undici.mjs does: N GETs, CONCURRENCY at a time (one task each,
-- looping), over a pool of CONCURRENCY keep-alive connections. Run by
-- bench/rpc/run.sh as `jararaca test bench/rpc/client.lua` (env RPC_URL,
-- RPC_N, RPC_CONC). Prints one RESULT line; the client's CPU comes from
-- getrusage(RUSAGE_SELF) around the timed part (user + system).
local ffi = require "ffi"
local http = require "jararaca.core.http_client"
local sched = require "jararaca.sched"

ffi.cdef [[
  struct jr_bench_timeval { long tv_sec; long tv_usec; };
  struct jr_bench_rusage { struct jr_bench_timeval utime, stime; long rest[14]; };
  int getrusage(int who, struct jr_bench_rusage *usage);
]]

local URL = os.getenv("RPC_URL") or "http://127.0.0.1:8080/"
local N = tonumber(os.getenv("RPC_N")) or 100000
local CONC = tonumber(os.getenv("RPC_CONC")) or 50

local function cpu_seconds()
  local ru = ffi.new("struct jr_bench_rusage")
  assert(ffi.C.getrusage(0, ru) == 0)
  return tonumber(ru.utime.tv_sec) + tonumber(ru.utime.tv_usec) / 1e6
    + tonumber(ru.stime.tv_sec) + tonumber(ru.stime.tv_usec) / 1e6
end

local function run(client, n)
  local next_i = 0
  local req = { url = URL }
  local function worker()
    while next_i < n do
      next_i = next_i + 1
      local res, msg = client:request(req)
      if not res then error(msg) end
      if res.status ~= 200 or res.body ~= "ok" then error("unexpected " .. res.status .. " " .. res.body) end
    end
    return true
  end
  local fns = {}
  for i = 1, CONC do fns[i] = worker end
  sched.gather(unpack(fns))
end

describe("rpc client bench", function()
  it("GETs against " .. URL, function()
    local client = http.new { max_per_origin = CONC, max_idle_per_origin = CONC }
    run(client, CONC * 20) -- warm: connections open, traces compiled
    local cpu0, t0 = cpu_seconds(), sched.clock()
    run(client, N)
    local secs, cpu = sched.clock() - t0, cpu_seconds() - cpu0
    local st = client:stats()
    assert(st.connections == CONC, "expected " .. CONC .. " connections, got " .. st.connections)
    print(("RESULT client=jararaca n=%d conc=%d secs=%.3f rps=%.0f cpu_s=%.3f cpu_us_per_req=%.2f"):format(
      N, CONC, secs, N / secs, cpu, cpu * 1e6 / N))
    client:close()
  end)
end)
