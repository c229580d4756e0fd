-- spec/support/wait.lua: wait for a state instead of guessing a delay.
--
--   wait.until_true(function() return srv:stats().connections == 0 end, "every connection is closed")
local sched = require "jararaca.sched"

local M = {}

--- Let the loop run until cond() holds and return its value; raise "timed
--- out waiting until <what>" after `seconds` (default 5). step: the pause between checks
--- (default 0.01 s; 0 lets only the other ready tasks run, for states other
--- tasks of this process reach, e.g. queued for a database writer).
function M.until_true(cond, what, seconds, step)
  local deadline = sched.clock() + (seconds or 5)
  step = step or 0.01
  while true do
    local v = cond()
    if v then return v end
    assert(sched.clock() < deadline, "timed out waiting until " .. what)
    sched.sleep(step)
  end
end

return M
