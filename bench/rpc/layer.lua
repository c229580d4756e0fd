-- luacheck: std +busted
-- bench/rpc/layer.lua - the RPC client's Lua layer alone (jararaca.rpc:
-- the request from the arguments, the answer's decoding and validation),
-- over a transport that answers at once (no socket). docs/rpc.md "Cost".
--   jararaca test bench/rpc/layer.lua     (env RPC_N: calls per route, default 200000)
-- Prints one RESULT line per route: microseconds per call (wall clock, the
-- median of 5 runs after a warm-up).
local j = require "jararaca"
local sched = require "jararaca.sched"
local s = j.schema

local N = tonumber(os.getenv("RPC_N")) or 200000

local Item = s.object("LayerBenchItem", { { "id", s.integer() }, { "name", s.string() } })
local Client = j.RestClient("/items", {
  raw = j.rpc.Get("/all", { raw = true }),
  typed = j.rpc.Get("/{id:int}", { params = { id = s.integer { minimum = 1 } }, response = Item }),
})
local RES = { status = 200, headers = { ["content-type"] = "application/json" }, body = '{"id":7,"name":"widget"}' }
local c = j.rpc.build(Client, { base_url = "http://127.0.0.1:9", transport = function() return RES end })

local function per_call_us(fn)
  for _ = 1, math.floor(N / 10) do fn() end -- warm: traces compiled
  local runs = {}
  for r = 1, 5 do
    local t0 = sched.clock()
    for _ = 1, N do fn() end
    runs[r] = (sched.clock() - t0) * 1e6 / N
  end
  table.sort(runs)
  return runs[3]
end

describe("rpc layer bench", function()
  it("calls over an instant transport", function()
    local raw = per_call_us(function() assert(c:raw()) end)
    local typed = per_call_us(function() assert(c:typed({ id = 7 })) end)
    print(("RESULT n=%d raw_us=%.2f typed_us=%.2f"):format(N, raw, typed))
  end)
end)
