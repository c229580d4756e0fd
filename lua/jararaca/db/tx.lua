--- jararaca.db.tx: a transaction on a database (db.lua), by role.
--
-- A "read" transaction takes a reader connection at its first statement and
-- runs in one snapshot (BEGIN, deferred) until it ends; a statement that
-- would write is refused before it runs (sqlite3_stmt_readonly), and if the
-- transaction has read nothing yet it becomes a write transaction instead.
-- A "write" transaction takes its turn at the writer at its first statement
-- (db/writer.lua). Nothing is taken before the first statement, so a
-- transaction that runs none costs nothing.
-- @module jararaca.db.tx
local core = require "jararaca.core.db"
local csched = require "jararaca.core.sched"
local mdb = require "jararaca.metrics.db" -- built-in metrics: hooks run only when mdb.on

local setmetatable, error, type, format = setmetatable, error, type, string.format
local c_run, c_finish, c_state, c_interrupt = core.run, core.finish, core.state, core.interrupt
local c_data_version, c_counters = core.data_version, core.counters
local EXECUTE, QUERY, FIRST, SCRIPT = core.EXECUTE, core.QUERY, core.FIRST, core.SCRIPT
local PRE_READ = core.PRE_READONLY + core.PRE_BEGIN
local PRE_READ_MORE = core.PRE_READONLY + core.PRE_IN_TXN
local MEMBER_NONE, TXN_COMMIT, TXN_ROLLBACK = core.MEMBER_NONE, core.TXN_COMMIT, core.TXN_ROLLBACK
local AGAIN, c_sleep, c_current = core.AGAIN, csched.sleep, csched.current

local M = {}

local Tx = {}
Tx.__index = Tx
Tx.__name = "db.tx"

--- A transaction of database db in mode "read" or "write"; parent: the
--- transaction this one runs inside of (see Writer:acquire).
function M.new(db, mode, parent)
  return setmetatable({
    db = db, mode = mode, parent = parent, state = "idle",
    conn = nil, job = nil, begun = false, holding = false, member = false,
    aborted = nil, outcome = nil, waiting = nil, busy = false,
  }, Tx)
end

-- Misuse raises here, before the transaction is marked busy: raised later,
-- it would leave it busy for good (and a write one holding the writer).
local function check(self, what)
  if self.state == "done" then error(format("%s: the transaction has ended", what), 3) end
  if self.busy then error(format("%s: another operation is in progress on this transaction", what), 3) end
  if not c_current() then error(format("%s must be called inside a task", what), 3) end
end

-- A read transaction that has read nothing becomes a write one.
local function to_writer(self)
  if self.begun then
    return nil, format("database %q: this transaction read from a snapshot and then tried to write; SQLite "
      .. "could not make that write safe against the commits made since. Declare it a write transaction "
      .. "from the start (route option persistence = \"write\", or begin(\"write\"))", self.db.name), "readonly"
  end
  if self.conn then
    self.db.readers:release(self.conn)
    self.conn = nil
  end
  self.mode = "write"
  return true
end

local function statement(self, kind, sql, params, thread)
  local db = self.db
  if self.job == nil then self.job = db:_take_job() end
  if self.mode == "read" then
    if kind ~= SCRIPT then
      local conn = self.conn
      if conn == nil then
        local c, err, code = db.readers:acquire(db.acquire_timeout)
        if not c then
          if code == "timeout" then
            return nil, format("database %q: no free reader within %gs (readers %d)", db.name,
              db.acquire_timeout, db.readers.size), "timeout"
          end
          return nil, format("database %q: cannot get a reader: %s", db.name, err), code
        end
        conn = c
        self.conn, self.state = c, "open"
      end
      local job = self.job
      local pre = self.begun and PRE_READ_MORE or PRE_READ
      local a, b, c = c_run(conn, job, kind, sql, params, pre, not thread)
      if a == AGAIN then -- this task had its slice of the loop: the others first
        c_sleep(0) -- (a cancellation while queued for the next turn only marks the task)
        a, b, c = c_run(conn, job, kind, sql, params, pre, not thread)
      end
      if a == false then return a, b end -- misuse in params: nothing ran (op raises)
      local _, began, _, needs_writer = c_state(job)
      if began then self.begun = true end
      if not needs_writer then return a, b, c end
    end
    local ok, err, code = to_writer(self)
    if not ok then return nil, err, code end
  end
  local writer = db.writer
  if not self.holding then
    local ok, err, code = writer:acquire(self, db.acquire_timeout)
    if not ok then return nil, err, code end
    self.holding, self.state = true, "open"
  end
  if self.aborted then return nil, format("database %q: %s; nothing more can run in it", db.name, self.aborted), "aborted" end
  return writer:run(self, kind, sql, params)
end

-- (The Tx methods tail-call op: level 2 here is their caller.)
local function op(self, what, kind, sql, params, opts)
  check(self, what)
  if type(sql) ~= "string" then error(format("%s: sql must be a string, got %s", what, type(sql)), 2) end
  if params ~= nil and type(params) ~= "table" then
    error(format("%s: bad parameters: a list or a table of names expected, got a %s", what, type(params)), 2)
  end
  self.busy = true
  local a, b, c = statement(self, kind, sql, params, opts and opts.thread)
  self.busy = false
  if mdb.on then mdb.statement(self.db.name) end
  if a == false then error(format("%s: %s", what, b), 2) end -- a value SQLite cannot take
  if a ~= nil then return a, b end -- rows, columns (query); b is nil otherwise
  if b == nil then return nil end  -- first: no row (a lone nil)
  return nil, b, c
end

--- execute(sql, params) -> { changes =, last_insert_id = } | nil, err, code
function Tx:execute(sql, params, opts) return op(self, "tx:execute()", EXECUTE, sql, params, opts) end
--- query(sql, params) -> rows, columns | nil, err, code
function Tx:query(sql, params, opts) return op(self, "tx:query()", QUERY, sql, params, opts) end
--- first(sql, params) -> row | nil (no row) | nil, err, code
function Tx:first(sql, params, opts) return op(self, "tx:first()", FIRST, sql, params, opts) end
--- exec_script(sql) -> true | nil, err, code (several statements, no parameters; a write)
function Tx:exec_script(sql) return op(self, "tx:exec_script()", SCRIPT, sql, nil) end

local function finish(self, success, what)
  if self.state == "done" then return true end
  check(self, what)
  self.busy = true
  local ok, err, code = true, nil, nil
  local db = self.db
  if self.holding then
    ok, err, code = db.writer:finish(self, success)
  elseif self.conn then
    local conn = self.conn
    if self.begun then
      -- ending a read transaction: on the loop (it releases a shared lock)
      local _, _, _, t_ok, t_err, t_code = c_finish(conn, self.job, MEMBER_NONE,
        success and TXN_COMMIT or TXN_ROLLBACK, true)
      if not t_ok and success then ok, err, code = nil, t_err, t_code end
    end
    self.conn = nil
    db.readers:release(conn)
  end
  self.busy = false
  self.state = "done"
  if self.job then
    db:_give_job(self.job)
    self.job = nil
  end
  if success and not ok then return nil, err, code end
  return true
end

--- commit() -> true | nil, err, code (for a write transaction: once its
--- group's COMMIT is done)
function Tx:commit() return finish(self, true, "tx:commit()") end
--- rollback() -> true
function Tx:rollback() return finish(self, false, "tx:rollback()") end

--- Has a statement run (a connection is held)?
function Tx:active() return self.state == "open" end

--- Stop the statement in flight (read transactions only: stopping a write
--- would roll back the whole group's transaction).
function Tx:interrupt()
  if self.mode ~= "read" then
    error("tx:interrupt(): only a read transaction can be interrupted (stopping a write rolls back its whole group)", 2)
  end
  if self.conn then c_interrupt(self.conn) end
end

--- The work of the last statement, from SQLite's counters
--- (sqlite3_stmt_status): { sorts =, vm_steps =, fullscan_steps = }, or nil
--- before any. A sort or a full scan in a query that pages through a big
--- table means a missing index.
function Tx:counters()
  if self.job == nil then return nil end
  local sorts, steps, scans = c_counters(self.job)
  return { sorts = sorts, vm_steps = steps, fullscan_steps = scans }
end

--- What identifies the content this read transaction sees (equal keys:
--- the same rows), or nil: while nothing ran or a statement is in flight,
--- and always for a write transaction, whose content its own savepoints
--- and rollbacks change without a trace in SQLite's counters. For caches of
--- derived values such as counts (persistence.Query).
function Tx:content_key()
  local conn = self.conn
  if conn == nil or self.busy or self.mode ~= "read" then return nil end
  local v, changes = c_data_version(conn)
  if v == nil then return nil end
  return conn, v, changes
end

function Tx:__tostring()
  return format("db.tx(%s, %s, %s)", self.db.name, self.mode, self.state)
end

M.Tx = Tx
return M
