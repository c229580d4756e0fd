-- luacheck: std +busted
-- Not a spec of the suite (no _spec suffix): spec/integration/schedule_store_spec.lua
-- runs it as `jararaca test <this file>`, one scheduler-like process racing
-- others for the ticks of one action in the scheduler store:
--
--   STORE_URL, STORE_APP   the store (jararaca.schedule.store.open)
--   CLAIMER                this process's name (the holder; output lines name it)
--   ACTION, BASE, TICKS    claim ticks BASE .. BASE + TICKS - 1 of ACTION, in order
--   CONCURRENCY            tasks claiming each tick at once (default 4)
--   OUT                    a file: "ready" once open, then "won <tick> <token>" per claim won
--   GO                     a file the spec creates to start the race
--   DIE                    "1": claim tick BASE, write "claimed <token>", then hang
--                          without finishing (the spec SIGKILLs the process)
local store = require "jararaca.schedule.store"
local sched = require "jararaca.sched"

local function env(name) return (assert(os.getenv(name), name .. " is not set")) end

describe("schedule claimer", function()
  it("claims its ticks", function()
    local name, action = env("CLAIMER"), env("ACTION")
    local base, ticks = tonumber(env("BASE")), tonumber(os.getenv("TICKS") or "1")
    local concurrency = tonumber(os.getenv("CONCURRENCY") or "4")
    local s = assert(store.open(env("STORE_URL"), env("STORE_APP")))
    local out = assert(io.open(env("OUT"), "w"))
    out:setvbuf("line")
    if os.getenv("DIE") == "1" then
      local token = assert(s:claim(action, base, name))
      out:write("claimed ", token, "\n")
      while true do sched.sleep(1) end
    end
    out:write("ready\n")
    local go = env("GO")
    while true do
      local f = io.open(go)
      if f then f:close(); break end
      sched.sleep(0.005)
    end
    for tick = base, base + ticks - 1 do
      local fns = {}
      for i = 1, concurrency do
        fns[i] = function()
          local token, msg = s:claim(action, tick, name)
          assert(token ~= nil, msg)
          if token then
            out:write("won ", tick, " ", token, "\n")
            assert(s:finish(action, tick, token, "ok"))
          end
          return true
        end
      end
      sched.gather(unpack(fns))
    end
    out:close()
    s:close()
  end)
end)
