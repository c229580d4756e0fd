--- jararaca.db.fifo: tasks waiting in turn for something (a free reader, the
-- writer), first come, first served. An entry whose task stopped waiting (a
-- timeout, a cancellation) is skipped.
-- @module jararaca.db.fifo
local csched = require "jararaca.core.sched"

local setmetatable = setmetatable
local c_wake = csched.wake

local M = {}

local Fifo = {}
Fifo.__index = Fifo

function M.new()
  -- n: entries still waiting; total: entries ever queued
  return setmetatable({ q = {}, head = 1, tail = 0, n = 0, total = 0 }, Fifo)
end

--- Queue the task (h, g) with data; returns its entry.
function Fifo:push(h, g, data)
  local w = { h, g, data = data }
  local t = self.tail + 1
  self.tail = t
  self.q[t] = w
  self.n = self.n + 1
  self.total = self.total + 1
  return w
end

--- w's task does not wait any more: skip it. False when it was already
--- taken out (woken meanwhile).
function Fifo:leave(w)
  if w.done then return false end
  w.dead = true
  self.n = self.n - 1
  return true
end

--- The next entry still waiting, taken out of the queue; nil when none.
function Fifo:pop()
  local q = self.q
  while self.head <= self.tail do
    local i = self.head
    local w = q[i]
    q[i] = nil
    self.head = i + 1
    if not w.dead then
      w.done = true
      self.n = self.n - 1
      return w
    end
  end
  self.head, self.tail = 1, 0
  return nil
end

--- Wake the next waiting task with ... (the values its wait returns), after
--- claim(w, true) gave it what it waited for; claim(w, false) takes that
--- back when the task turns out not to be waiting any more (its timeout or
--- cancellation is being delivered), and the next one is tried. State is
--- brought up to date before each wake: outside a task the woken one runs
--- at once. Returns the entry woken, or nil.
function Fifo:wake_next(claim, ...)
  while true do
    local w = self:pop()
    if not w then return nil end
    claim(w, true)
    if c_wake(w[1], w[2], ...) then return w end
    claim(w, false)
  end
end

--- Wake every waiting task with ... (closing).
function Fifo:wake_all(...)
  while true do
    local w = self:pop()
    if not w then return end
    c_wake(w[1], w[2], ...)
  end
end

return M
