--- jararaca.db.readers: the pool of a database's reader connections
-- (opened readonly, each on a thread of its own). A read transaction holds
-- one from its first statement to its end; transactions that find none
-- free wait in FIFO order.
-- @module jararaca.db.readers
local csched = require "jararaca.core.sched"
local core = require "jararaca.core.db"
local fifo = require "jararaca.db.fifo"

local setmetatable, error = setmetatable, error
local c_current, c_wait, c_wake = csched.current, csched.wait, csched.wake
local c_close = core.close

local M = {}

local CLOSED = "the database is closed"

local Readers = {}
Readers.__index = Readers

--- A pool over the open connections `conns`.
function M.new(conns)
  local idle = {}
  for i = #conns, 1, -1 do idle[#idle + 1] = conns[i] end -- conns[1] first out
  local self = setmetatable({
    size = #conns, _idle = idle, _nidle = #conns, _out = 0, _fifo = fifo.new(), _promised = 0,
    _closed = false, _closer = nil, _returned = nil,
  }, Readers)
  -- a woken waiter is promised an idle connection (see acquire)
  self._claim = function(_, yes) self._promised = self._promised + (yes and 1 or -1) end
  return self
end

local function take_idle(self)
  local n = self._nidle
  local c = self._idle[n]
  self._idle[n] = nil
  self._nidle = n - 1
  self._out = self._out + 1
  return c
end

--- A connection: at once if one is free, else after the transactions that
--- asked before (FIFO). timeout in seconds (nil: as long as it takes).
--- Returns conn | nil, message, code: "timeout" | "closed" | "cancelled".
---
--- A released connection goes back on top of the idle stack and the first
--- waiter is woken with the promise of one (_promised): it takes the top one
--- when it runs. Under load the warm connection then serves everybody: in
--- WAL mode a connection that was idle while others committed finds its page
--- cache stale and reads its pages again.
function Readers:acquire(timeout)
  local h, g = c_current()
  if not h then error("a database read must run inside a task", 3) end
  if self._closed then return nil, CLOSED, "closed" end
  if self._nidle > self._promised then return take_idle(self) end
  if timeout and timeout <= 0 then return nil, "no reader is free", "timeout" end
  local w = self._fifo:push(h, g)
  local ok, r, code = c_wait(timeout)
  if ok and r == true then -- woken by release(): an idle connection is ours
    self._promised = self._promised - 1
    if self._closed then return nil, CLOSED, "closed" end
    return take_idle(self)
  end
  self._fifo:leave(w)
  if ok then return nil, CLOSED, "closed" end -- woken by close()
  return nil, r, code                        -- timeout | cancelled
end

--- A connection comes back, with no transaction open.
function Readers:release(c)
  self._out = self._out - 1
  if self._closed then
    local closer = self._closer
    if closer then
      local r = self._returned
      r[#r + 1] = c
      if self._out == 0 then c_wake(closer[1], closer[2]) end
    else
      c_close(c, false)
    end
    return
  end
  local n = self._nidle + 1
  self._idle[n] = c
  self._nidle = n
  self._fifo:wake_next(self._claim, true)
end

--- Close: waiting transactions get nil, message, "closed"; idle
--- connections close now, acquired ones when released. Inside a task it
--- waits for all of that (up to timeout seconds: then nil, message,
--- "timeout").
function Readers:close(timeout)
  if self._closed then return true end
  self._closed = true
  self._fifo:wake_all(false)
  local in_task = c_current() ~= nil
  local idle = self._idle
  for i = 1, self._nidle do
    c_close(idle[i], in_task)
    idle[i] = nil
  end
  self._nidle = 0
  if self._out > 0 then
    if not in_task then return true end
    self._closer, self._returned = { c_current() }, {}
    local ok, err, code = c_wait(timeout)
    local returned = self._returned
    self._closer, self._returned = nil, nil
    for i = 1, #returned do c_close(returned[i], true) end
    if not ok then return nil, "readers still in use: " .. err, code end
  end
  return true
end

function Readers:stats()
  return { size = self.size, idle = self._nidle, waiting = self._fifo.n, waits = self._fifo.total }
end

--- Every idle connection (for counters; they are not in use).
function Readers:idle_connections()
  local out = {}
  for i = 1, self._nidle do out[i] = self._idle[i] end
  return out
end

M.Readers = Readers
return M
