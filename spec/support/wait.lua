-- spec/support/wait.lua: wait for a state instead of guessing a delay.
--
--   wait.until_true(function() return srv:stats().connections == 0 end, "every connection is closed")
local sched = require "jararaca.sched"

local M = {}

--- Let the loop run until cond() holds; raise "timed out waiting until
--- <what>" after `seconds` (default 5).
function M.until_true(cond, what, seconds)
  local deadline = sched.clock() + (seconds or 5)
  while not cond() do
    assert(sched.clock() < deadline, "timed out waiting until " .. what)
    sched.sleep(0.01)
  end
end

return M
