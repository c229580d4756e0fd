--- jararaca.bus.embedded_wake: this process's consumers waiting for a queue
-- of an embedded broker, woken when this process publishes to it.
--
--   wake.park(path, queue, seconds) -> true (woken) | false (the time passed)
--   wake.notify(path, queue)        wake the queue's waiters (queue nil: every queue of path)
--   wake.generation(path, queue)    a number that changes at each notify
--
-- Keyed by the database file, so two brokers of one process on one file
-- (a publisher and a consumer) wake each other. Other processes are not
-- reached: they find new messages by polling (broker:wait).
-- @module jararaca.bus.embedded_wake
local csched = require "jararaca.core.sched"
local sched = require "jararaca.sched"

local c_current, c_wait, c_wake = csched.current, csched.wait, csched.wake
local CANCELLED = sched.CANCELLED

local M = {}

-- path -> queue -> { waiters = { [w] = true }, gen = n }
local files = {}

local function slot(path, queue)
  local f = files[path]
  if f == nil then f = {}; files[path] = f end
  local s = f[queue]
  if s == nil then s = { waiters = {}, gen = 0 }; f[queue] = s end
  return s
end

function M.generation(path, queue)
  return slot(path, queue).gen
end

local function wake_slot(s)
  s.gen = s.gen + 1
  for w in pairs(s.waiters) do
    s.waiters[w] = nil
    c_wake(w[1], w[2])
  end
end

function M.notify(path, queue)
  local f = files[path]
  if f == nil then return end
  if queue == nil then
    for _, s in pairs(f) do wake_slot(s) end
  elseif f[queue] then
    wake_slot(f[queue])
  end
end

--- Park the running task for up to seconds, or until notify. The waiter
--- is registered only while parked in c_wait (nothing yields in between),
--- so a notify never resumes the task from another wait. Raises
--- sched.CANCELLED when the task is cancelled.
function M.park(path, queue, seconds)
  local h, g = c_current()
  if not h then error("broker:wait() must be called inside a task", 3) end
  local s = slot(path, queue)
  local w = { h, g }
  s.waiters[w] = true
  local ok, _, code = c_wait(seconds)
  s.waiters[w] = nil
  if code == "cancelled" then error(CANCELLED, 0) end
  return ok == true
end

return M
