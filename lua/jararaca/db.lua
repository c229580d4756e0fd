-- jararaca.db: SQLite for the framework, over jararaca.core.db
-- (bindings/l_db.c over core/db.c: one worker thread per connection).
--
--   local db = require "jararaca.db"
--   db.null                      SQL NULL in parameters and results (== json.null)
--   db.blob(s)                   mark a string parameter as a BLOB
--   local pool, err, code = db.open{ path = "app.db", pool_size = 4, busy_timeout = 5,
--       journal_mode = "WAL", synchronous = "NORMAL", foreign_keys = true,
--       statement_cache = 64, inline_us = 100, pragmas = { cache_size = -20000 } }
--   local conn, err = pool:acquire([timeout])  conn | nil, "timeout" | "closed" | "cancelled"
--   conn:execute(sql, params)    { changes =, last_insert_id = } | nil, err, code
--   conn:query(sql, params)      rows, columns | nil, err, code
--   conn:first(sql, params)      row | nil (no row) | nil, err, code
--   conn:exec_script(sql)        true | nil, err, code
--   conn:begin([mode])           true (BEGIN is sent with the next statement)
--   conn:commit() / rollback()   true | nil, err, code
--   conn:in_transaction()        boolean
--   conn:interrupt()             stop this connection's statement in flight
--   conn:stats()                 counters of the connection (statement cache, jobs,
--                                statements run on the event loop: inline_runs, inline_fallbacks)
--   conn:release()               back to the pool (rolls back an open transaction)
--   pool:close([timeout])        true | nil, "timeout"
--   pool:stats()                 { size =, idle =, waiting = }
--
-- Everything that may wait must run inside a task; misuse raises. See
-- docs/sqlite.md.
local core = require "jararaca.core.db"
local sched = require "jararaca.core.sched"
local json = require "jararaca.json"
local ffi = require "ffi"

local type, setmetatable, getmetatable, error, tostring, floor, pairs =
  type, setmetatable, getmetatable, error, tostring, math.floor, pairs
local c_current, c_wait, c_wake = sched.current, sched.wait, sched.wake
local c_open, c_execute, c_query, c_first, c_exec_script = core.open, core.execute, core.query, core.first, core.exec_script
local c_begin, c_commit, c_rollback, c_in_txn = core.begin, core.commit, core.rollback, core.in_transaction
local c_reset, c_close, c_interrupt, c_stats = core.reset, core.close, core.interrupt, core.stats

-- Another module may have declared strtoll already; that is fine.
pcall(ffi.cdef, [[ long long strtoll(const char *s, char **end, int base); ]])
local C = ffi.C
-- Integers beyond 2^53 come back as exact int64_t cdata.
core.configure(json.array_mt, function(s) return C.strtoll(s, nil, 10) end)

local M = {}

M.null = json.null

local blob_mt = core.blob_mt

--- Mark s as a BLOB parameter (strings are bound as TEXT otherwise).
function M.blob(s)
  if type(s) ~= "string" then error("db.blob(s): s must be a string, got " .. type(s), 2) end
  return setmetatable({ s }, blob_mt)
end

--- Is v a db.blob(...) value?
function M.is_blob(v)
  return type(v) == "table" and getmetatable(v) == blob_mt
end

-- ---------------------------------------------------------------------
-- Connections: a lease per acquire, so a released one cannot be reused.

local Conn = {}
Conn.__index = Conn
Conn.__name = "db.conn"

local function released(what) error(what .. ": the connection was released", 3) end

function Conn:execute(sql, params)
  local c = self[1]
  if not c then released("conn:execute()") end
  local a, b, d = c_execute(c, sql, params)
  if b == nil then return a end
  return a, b, d
end

function Conn:query(sql, params)
  local c = self[1]
  if not c then released("conn:query()") end
  local a, b, d = c_query(c, sql, params)
  if a ~= nil then return a, b end
  return a, b, d
end

function Conn:first(sql, params)
  local c = self[1]
  if not c then released("conn:first()") end
  local a, b, d = c_first(c, sql, params)
  if b == nil then return a end -- a result, or no row
  return a, b, d
end

function Conn:exec_script(sql)
  local c = self[1]
  if not c then released("conn:exec_script()") end
  local a, b, d = c_exec_script(c, sql)
  if b == nil then return a end
  return a, b, d
end

function Conn:begin(mode)
  local c = self[1]
  if not c then released("conn:begin()") end
  return (c_begin(c, mode))
end

function Conn:commit()
  local c = self[1]
  if not c then released("conn:commit()") end
  return c_commit(c)
end

function Conn:rollback()
  local c = self[1]
  if not c then released("conn:rollback()") end
  return c_rollback(c)
end

function Conn:in_transaction()
  local c = self[1]
  if not c then released("conn:in_transaction()") end
  return c_in_txn(c)
end

function Conn:interrupt()
  local c = self[1]
  if not c then released("conn:interrupt()") end
  c_interrupt(c)
end

function Conn:stats()
  local c = self[1]
  if not c then released("conn:stats()") end
  return c_stats(c)
end

local give -- defined with the pool

function Conn:release()
  local c = self[1]
  if not c then released("conn:release()") end
  local a = c_reset(c) -- raises (at our caller) while an operation is in flight
  self[1] = nil
  give(self[2], c)
  return a
end

function Conn:__tostring()
  return self[1] and "db.conn" or "db.conn (released)"
end

-- ---------------------------------------------------------------------
-- Pools

local Pool = {}
Pool.__index = Pool
Pool.__name = "db.pool"

-- The default inline_us: how long a quick query may run on the event loop
-- (docs/sqlite.md, "Where statements run"); 0 keeps statements off it.
local INLINE_US_DEFAULT = tonumber(os.getenv("JARARACA_DB_INLINE_US") or "") or 100
INLINE_US_DEFAULT = math.min(1000000, math.max(0, floor(INLINE_US_DEFAULT)))
-- How long a connection's thread looks for the next statement before it
-- sleeps (same section); nil: the C default (50 us).
local SPIN_US = tonumber(os.getenv("JARARACA_DB_SPIN_US") or "")
if SPIN_US then SPIN_US = math.max(0, floor(SPIN_US)) end

local JOURNAL = { DELETE = true, TRUNCATE = true, PERSIST = true, MEMORY = true, WAL = true, OFF = true }
local SYNC = { OFF = true, NORMAL = true, FULL = true, EXTRA = true }

local function opt(opts, key, kind, default)
  local v = opts[key]
  if v == nil then return default end
  if type(v) ~= kind then
    error(("db.open: %s must be a %s, got %s"):format(key, kind, type(v)), 3)
  end
  return v
end

local function opt_int(opts, key, default, min, max)
  local v = opt(opts, key, "number", default)
  if v ~= floor(v) or v < min or v > max then
    error(("db.open: %s must be an integer from %d to %d, got %s"):format(key, min, max, tostring(v)), 3)
  end
  return v
end

--- Open a pool of connections (each on its own thread) and apply the
--- PRAGMAs on each. Parks the task. Returns pool | nil, err, code.
function M.open(opts)
  if type(opts) ~= "table" then error("db.open{...}: an options table expected", 2) end
  local path = opts.path
  if type(path) ~= "string" or path == "" then error("db.open: path must be a non-empty string", 2) end
  local size = opt_int(opts, "pool_size", 4, 1, 256)
  local busy = opt(opts, "busy_timeout", "number", 5)
  if busy ~= busy or busy < 0 then error("db.open: busy_timeout must be seconds >= 0", 2) end
  local journal = opt(opts, "journal_mode", "string", "WAL"):upper()
  if not JOURNAL[journal] then error("db.open: unknown journal_mode " .. journal, 2) end
  local sync = opt(opts, "synchronous", "string", "NORMAL"):upper()
  if not SYNC[sync] then error("db.open: unknown synchronous " .. sync, 2) end
  local fk = opt(opts, "foreign_keys", "boolean", true)
  local cache = opt_int(opts, "statement_cache", 64, 0, 100000)
  -- quick statements run on the event loop, up to this long (docs/sqlite.md)
  local inline_us = opt_int(opts, "inline_us", INLINE_US_DEFAULT, 0, 1000000)
  local pragmas = {}
  for k, v in pairs(opt(opts, "pragmas", "table", {})) do
    if type(k) ~= "string" or not k:find("^[%a_][%w_]*$") then
      error("db.open: pragma names must be identifiers, got " .. tostring(k), 2)
    end
    if type(v) == "boolean" then v = v and "ON" or "OFF" end
    v = tostring(v)
    if not v:find("^[%w_.+-]+$") then error(("db.open: bad value for pragma %s: %s"):format(k, v), 2) end
    pragmas[#pragmas + 1] = k .. "=" .. v
  end
  table.sort(pragmas)
  -- ":memory:" gives every connection a database of its own: one connection
  -- is the only way to share one in-memory database without shared-cache
  -- mode (whose table locks fail with "locked" instead of waiting).
  if path == ":memory:" then size = 1 end
  if not c_current() then error("db.open() must be called inside a task", 2) end
  local copts = {
    path = path, busy_timeout_ms = floor(busy * 1000 + 0.5), journal_mode = journal,
    synchronous = sync, foreign_keys = fk, statement_cache = cache, pragmas = pragmas,
    spin_us = SPIN_US, inline_us = inline_us,
  }
  local conns = {}
  -- One after the other: the first one switches the file to WAL, the others
  -- find it so (no lock contention at startup).
  for i = 1, size do
    local c, err, code = c_open(copts, conns[1])
    if not c then
      for k = 1, #conns do c_close(conns[k], true) end
      return nil, err, code
    end
    conns[i] = c
  end
  local idle = {}
  for i = size, 1, -1 do idle[#idle + 1] = conns[i] end -- conns[1] first out
  return setmetatable({
    path = path, _size = size, _idle = idle, _nidle = size, _out = 0,
    _waiters = {}, _whead = 1, _wtail = 0, _nwaiting = 0, _promised = 0,
    _closed = false, _closer = nil, _returned = nil,
  }, Pool)
end

local function take_idle(pool)
  local n = pool._nidle
  local idle = pool._idle
  local c = idle[n]
  idle[n] = nil
  pool._nidle = n - 1
  pool._out = pool._out + 1
  return setmetatable({ c, pool }, Conn)
end

--- A connection: at once if one is free, else after the tasks that asked
--- before (FIFO). timeout in seconds (nil: wait as long as it takes).
---
--- A released connection goes back on top of the idle stack, and the first
--- waiter is woken with the promise of one (_promised): it takes the top one
--- when it runs. Handing the released connection itself to the waiter would
--- keep every connection circulating among the waiters of a busy server, each
--- transaction on another connection than the one before; in WAL mode a
--- connection then finds its page cache stale at every transaction (another
--- one wrote) and reads its pages again (measured: 5.5 preads per insert with
--- 4 connections, against 0.7 when the top one serves everybody).
function Pool:acquire(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    error("pool:acquire([timeout]): timeout must be a number of seconds", 2)
  end
  local h, g = c_current()
  if not h then error("pool:acquire() must be called inside a task", 2) end
  if self._closed then return nil, "closed" end
  if self._nidle > self._promised then return take_idle(self) end
  if timeout and timeout <= 0 then return nil, "timeout" end
  local w = { h, g }
  local t = self._wtail + 1
  self._wtail = t
  self._waiters[t] = w
  self._nwaiting = self._nwaiting + 1
  local ok, r, err = c_wait(timeout)
  if ok and r == true then -- woken by give(): an idle connection is ours
    self._promised = self._promised - 1
    if self._closed then return nil, "closed" end
    return take_idle(self)
  end
  if not w.done then
    w.dead = true
    self._nwaiting = self._nwaiting - 1
  end
  if ok then return nil, err end -- woken by close(): nil, "closed"
  return nil, r                   -- "timeout" | "cancelled"
end

local function close_now(c, wait) c_close(c, wait) end

-- A connection comes back (c_reset already ran): to the idle stack (last in,
-- first out: its thread and caches are warm), and the first live waiter is
-- woken to take one (see acquire).
give = function(pool, c)
  if pool._closed then
    pool._out = pool._out - 1
    local closer = pool._closer
    if closer then
      local r = pool._returned
      r[#r + 1] = c
      if pool._out == 0 then c_wake(closer[1], closer[2]) end
    else
      close_now(c, false) -- after its ROLLBACK, if any: one queue
    end
    return
  end
  pool._out = pool._out - 1
  local n = pool._nidle + 1
  pool._idle[n] = c
  pool._nidle = n
  -- The queue and the counts are brought up to date before each c_wake:
  -- outside a task the woken one runs inside it, and may acquire, run its
  -- statements on the loop and release again (a nested give).
  local ws = pool._waiters
  while pool._whead <= pool._wtail do
    local head = pool._whead
    local w = ws[head]
    ws[head] = nil
    pool._whead = head + 1
    if not w.dead then
      w.done = true
      pool._nwaiting = pool._nwaiting - 1
      pool._promised = pool._promised + 1
      if c_wake(w[1], w[2], true) then break end
      pool._promised = pool._promised - 1
      -- not waiting any more (its timeout or cancellation is being delivered)
    end
  end
  if pool._whead > pool._wtail then pool._whead, pool._wtail = 1, 0 end
end

--- Close the pool: waiting acquirers get nil, "closed"; idle connections
--- close now; acquired ones when they are released. Inside a task it waits
--- for all of that (up to timeout seconds: then nil, "timeout", and the
--- rest still close as they come back). Later acquire() -> nil, "closed".
function Pool:close(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    error("pool:close([timeout]): timeout must be a number of seconds", 2)
  end
  if self._closed then return true end
  self._closed = true
  local ws = self._waiters
  for i = self._whead, self._wtail do
    local w = ws[i]
    ws[i] = nil
    if not w.dead then
      w.done = true
      c_wake(w[1], w[2], nil, "closed")
    end
  end
  self._whead, self._wtail, self._nwaiting = 1, 0, 0
  local in_task = c_current() ~= nil
  local idle = self._idle
  for i = 1, self._nidle do
    close_now(idle[i], in_task)
    idle[i] = nil
  end
  self._nidle = 0
  if self._out > 0 then
    if not in_task then return true end
    self._closer, self._returned = { c_current() }, {}
    local ok, err = c_wait(timeout)
    local returned = self._returned
    self._closer, self._returned = nil, nil
    for i = 1, #returned do close_now(returned[i], true) end
    if not ok then return nil, err end
  end
  return true
end

function Pool:stats()
  return { size = self._size, idle = self._nidle, waiting = self._nwaiting }
end

function Pool:__tostring()
  return ("db.pool(%s)"):format(self.path)
end

M.Pool, M.Conn = Pool, Conn

return M
