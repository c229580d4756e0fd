-- An app whose handlers hold the event loop: the watchdog's spec app.
local j = require "jararaca"
local sys = require "jararaca.core.sys"

local Stuck = j.RestController("", { name = "Stuck" })

Stuck.pid = j.Get("/pid", function(self, req)
  return { pid = sys.pid() }
end)

-- A Lua loop that never yields: compiled by the JIT within a few dozen turns.
Stuck.loop = j.Get("/loop", function(self, req)
  while true do end -- the spec looks for this line in the watchdog's traceback
end)

-- Blocked in C: os.execute waits for its child and retries when a signal
-- interrupts the wait, so no Lua hook can run until it returns.
Stuck.block = j.Get("/block", function(self, req)
  os.execute("sleep " .. (tonumber(req.query.s) or 8))
  return { slept = true }
end)

return j.Microservice { controllers = { Stuck } }
