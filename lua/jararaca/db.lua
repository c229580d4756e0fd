-- jararaca.db: SQLite for the framework, by roles (see docs/sqlite.md).
--
-- A database is one writer connection (write transactions take turns at it
-- in FIFO order and commit in groups: db/writer.lua) and a pool of reader
-- connections (db/readers.lua), each on a thread of its own
-- (core/db_conn.c). Reads may run on the event loop under a hard deadline.
--
--   local db = require "jararaca.db"
--   db.null                      SQL NULL in parameters and results (== json.null)
--   db.blob(s)                   mark a string parameter as a BLOB
--   local d, err, code = db.open{ path = "app.db", readers = 4, ... }   (options: db/options.lua)
--   local tx = d:begin("read" | "write")     lazy: nothing is taken before its first statement
--   tx:execute(sql, params)      { changes =, last_insert_id = } | nil, err, code
--   tx:query(sql, params)        rows, columns | nil, err, code
--   tx:first(sql, params)        row | nil (no row) | nil, err, code
--   tx:exec_script(sql)          true | nil, err, code   (several statements; a write)
--   tx:commit() / tx:rollback()  true | nil, err, code
--   d:atomically(mode, fn, ...)  fn(tx, ...) in a transaction: committed when its first result is not nil
--   d:stats()                    readers, writer queue and group commits, per-connection counters
--   d:close([timeout])           true | nil, err, "timeout" (transactions still running)
--
-- Everything that may wait must run inside a task; misuse raises.
local core = require "jararaca.core.db"
local sched = require "jararaca.core.sched"
local json = require "jararaca.json"
local options = require "jararaca.db.options"
local readers_mod = require "jararaca.db.readers"
local writer_mod = require "jararaca.db.writer"
local tx_mod = require "jararaca.db.tx"
local ffi = require "ffi"

local type, setmetatable, getmetatable, error, format, tostring, ipairs =
  type, setmetatable, getmetatable, error, string.format, tostring, ipairs
local c_current = sched.current
local c_open, c_close, c_stats, c_job = core.open, core.close, core.stats, core.job

-- Another module may have declared strtoll already; that is fine.
pcall(ffi.cdef, [[ long long strtoll(const char *s, char **end, int base); ]])
local C = ffi.C
-- Integers beyond 2^53 come back as exact int64_t cdata.
core.configure(json.array_mt, function(s) return C.strtoll(s, nil, 10) end)

local M = {}

M.null = json.null
M.options = options

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

local Database = {}
Database.__index = Database
Database.__name = "db.database"

--- Open a database: the writer first (it sets the journal mode), then the
--- readers. Parks the task. opts: see db/options.lua (raises on bad ones).
--- Returns database | nil, err, code.
function M.open(opts, name)
  local o = options.validate(opts, "db.open")
  if not c_current() then error("db.open() must be called inside a task", 2) end
  local w, err, code = c_open(options.connection(o, "writer"))
  if not w then return nil, err, code end
  local conns = {}
  local ropts = options.connection(o, "reader")
  for i = 1, o.readers do
    local c, rerr, rcode = c_open(ropts)
    if not c then
      for k = 1, #conns do c_close(conns[k], true) end
      c_close(w, true)
      return nil, rerr, rcode
    end
    conns[i] = c
  end
  name = name or o.path
  return setmetatable({
    name = name, path = o.path, options = o, acquire_timeout = o.acquire_timeout,
    writer = writer_mod.new(w, name, o.group_commit), readers = readers_mod.new(conns),
    _jobs = {}, _njobs = 0, _closed = false,
  }, Database)
end

--- A transaction ("read" or "write"; with no readers every transaction is
--- a write one). parent: the transaction it runs inside of, if any.
function Database:begin(mode, parent)
  if mode ~= "read" and mode ~= "write" then
    error(format("database:begin(mode): mode must be \"read\" or \"write\", got %s", tostring(mode)), 2)
  end
  if self.readers.size == 0 then mode = "write" end
  return tx_mod.new(self, mode, parent)
end

--- Run fn(tx, ...) in a transaction of its own (mode "read" | "write"):
--- committed when fn's first result is not nil, rolled back otherwise, and
--- when fn raises (the error then goes on, as raised). fn's first two
--- results | nil, err, code (fn's, or the commit's).
function Database:atomically(mode, fn, ...)
  local tx = self:begin(mode)
  local ok, a, b, c = pcall(fn, tx, ...)
  if not ok then
    tx:rollback()
    error(a, 0)
  end
  if a == nil then
    tx:rollback()
    return nil, b, c
  end
  local cok, cerr, ccode = tx:commit()
  if not cok then return nil, cerr, ccode end
  return a, b
end

-- Job slots are reused across transactions (their C buffers stay warm).
function Database:_take_job()
  local n = self._njobs
  if n == 0 then return c_job() end
  local j = self._jobs[n]
  self._jobs[n] = nil
  self._njobs = n - 1
  return j
end

function Database:_give_job(j)
  local n = self._njobs
  if n < 64 then
    self._jobs[n + 1] = j
    self._njobs = n + 1
  end
end

--- Counters: readers (size, idle, waiting, waits), writer (busy, waiting,
--- waits, groups, committed, rolled_back, failed_groups, largest_group),
--- and per idle connection its C counters (connections[1] is the writer's
--- when idle).
function Database:stats()
  local conns = {}
  local ws = c_stats(self.writer.conn)
  if ws then ws.role = "writer"; conns[#conns + 1] = ws end
  for _, c in ipairs(self.readers:idle_connections()) do
    local s = c_stats(c)
    if s then s.role = "reader"; conns[#conns + 1] = s end
  end
  return { readers = self.readers:stats(), writer = self.writer:queue_stats(), connections = conns }
end

--- Close: new transactions fail with "closed"; the readers close as they
--- are released, the writer once its queue is empty. Inside a task it
--- waits (up to timeout seconds: then nil, message, "timeout").
function Database:close(timeout)
  if self._closed then return true end
  self._closed = true
  local ok, err, code = self.readers:close(timeout)
  self.writer:close(timeout)
  if not ok then return nil, format("database %q: %s", self.name, err), code end
  return true
end

function Database:__tostring()
  return format("db.database(%s)", self.path)
end

M.Database = Database
M.Tx = tx_mod.Tx
return M
