--- jararaca.db.writer: a database's one writer connection, its queue and
-- group commit.
--
-- A write transaction holds the writer from its first statement to its
-- end; the others wait in FIFO order. Each one runs inside a savepoint
-- (SAVEPOINT jr_tx) of one shared SQLite transaction (BEGIN IMMEDIATE):
--
--   A: BEGIN IMMEDIATE; SAVEPOINT; ...statements...; RELEASE      (A waits)
--   B:                  SAVEPOINT; ...statements...; ROLLBACK TO  (B failed: its writes go)
--   C:                  SAVEPOINT; ...statements...; RELEASE; COMMIT
--                       -> A and C learn the COMMIT's outcome together
--
-- The group is the transactions that were waiting when its first member
-- began: a member that ends while no one waits, or the last of those,
-- commits it. So one COMMIT (its locks, its WAL append, at synchronous FULL
-- its fsync) serves all of them, and nobody's commit waits for
-- transactions that arrived later. A member is handed the writer as soon as
-- the one before it has *sent* its RELEASE: the connection's thread runs
-- jobs in order, so no round trip separates two members.
--
-- Outcomes: every member that released is told the COMMIT's result; none
-- hears of success before the COMMIT succeeded. A member that fails rolls
-- back to its savepoint and only its writes go. If SQLite rolls back the
-- whole transaction (a COMMIT that fails, an error SQLite answers that way,
-- an OR ROLLBACK conflict), every member of the group fails.
-- @module jararaca.db.writer
local core = require "jararaca.core.db"
local csched = require "jararaca.core.sched"
local fifo = require "jararaca.db.fifo"
local mdb = require "jararaca.metrics.db" -- built-in metrics: hooks run only when mdb.on

local setmetatable, error, format, tostring, unpack = setmetatable, error, string.format, tostring, unpack
local c_current, c_wait, c_wake = csched.current, csched.wait, csched.wake
local c_run, c_finish, c_state, c_close = core.run, core.finish, core.state, core.close
local PRE_FIRST = core.PRE_BEGIN_IMMEDIATE + core.PRE_SAVEPOINT
local PRE_IN_TXN = core.PRE_IN_TXN
local MEMBER_NONE, MEMBER_RELEASE, MEMBER_ROLLBACK = core.MEMBER_NONE, core.MEMBER_RELEASE, core.MEMBER_ROLLBACK
local TXN_KEEP, TXN_COMMIT, TXN_ROLLBACK = core.TXN_KEEP, core.TXN_COMMIT, core.TXN_ROLLBACK

local M = {}

local Writer = {}
Writer.__index = Writer

local function new_group()
  return { members = {}, n = 0, size = 0, budget = 1, open = false }
end

--- The writer of database `name` on the open connection `conn`.
function M.new(conn, name, group_commit)
  local self = setmetatable({
    conn = conn, name = name, group_commit = group_commit, holder = nil, _fifo = fifo.new(),
    group = new_group(), in_txn = false, _closed = false, _closer = nil,
    stats = { groups = 0, committed = 0, rolled_back = 0, failed_groups = 0, largest_group = 0 },
  }, Writer)
  -- the woken waiter holds the writer (see hand_over)
  self._claim = function(w, yes) self.holder = yes and w.data or nil end
  return self
end

-- The next waiting transaction holds the writer now (or nobody does).
local function hand_over(self)
  self.holder = nil
  self._fifo:wake_next(self._claim, true)
  if self.holder == nil and self._closer then c_wake(self._closer[1], self._closer[2]) end
end

-- Every member of grp that has not heard yet learns the outcome of the
-- group's transaction: true, or nil, err, code. Counted once per member.
local function settle(self, grp, ok, err, code)
  local st = self.stats
  local told = 0
  for i = 1, grp.n do
    local m = grp.members[i]
    if m and not m.outcome then
      told = told + 1
      m.outcome = ok and { true } or { nil, err, code }
      if ok then st.committed = st.committed + 1 else st.rolled_back = st.rolled_back + 1 end
      if m.waiting then c_wake(m.waiting[1], m.waiting[2]) end
    end
  end
  if ok then
    if mdb.on and told > 0 then mdb.committed(self.name, told) end
    st.groups = st.groups + 1
    if told > st.largest_group then st.largest_group = told end
  elseif told > 0 then
    st.failed_groups = st.failed_groups + 1
  end
end

local function lost(self, err)
  return format("database %q: the group commit this transaction joined was rolled back by SQLite after an error "
    .. "in a later transaction (%s); nothing of it was committed", self.name, tostring(err))
end

local function commit_failed(self, err)
  return format("database %q: commit failed: %s", self.name, tostring(err))
end

-- SQLite rolled the group's transaction back during a statement of tx: tx
-- is aborted, the members that released fail, and the members still to
-- come begin a new transaction.
local function group_lost(self, tx, err)
  tx.aborted = format("the transaction was rolled back by SQLite after an error (%s)", tostring(err))
  settle(self, self.group, false, lost(self, err), "aborted")
  self.group = new_group()
end

-- The holder lets go (tx: it, or the one that was about to hold). If nobody
-- takes over while members of the group wait for their COMMIT, it is sent
-- now, with tx's job, before anyone else can queue a statement behind an
-- open transaction; the caller waits for it (a wait for a job cannot be
-- cancelled: the members always hear the outcome).
local function release(self, tx)
  hand_over(self)
  -- (in_txn: a member that rolled back may have left the shared
  -- transaction open with nobody to commit: it must end too, or the file
  -- stays write-locked for other processes)
  if self.holder ~= nil or (self.group.n == 0 and not self.in_txn) then return end
  local grp = self.group
  self.group = new_group()
  local _, _, _, t_ok, t_err, t_code = c_finish(self.conn, tx.job, MEMBER_NONE,
    grp.n > 0 and TXN_COMMIT or TXN_ROLLBACK, false)
  self.in_txn = not c_state(tx.job)
  if grp.n > 0 then settle(self, grp, t_ok, not t_ok and commit_failed(self, t_err) or nil, t_code) end
end

--- Hold the writer for tx, after the transactions that asked before.
--- Returns true | nil, err, code ("timeout", "closed", "cancelled", or
--- "busy" when an enclosing transaction of tx holds it: tx could never get
--- it, since that one cannot end before tx does).
function Writer:acquire(tx, timeout)
  if self._closed then return nil, format("database %q is closed", self.name), "closed" end
  if self.holder == nil and self._fifo.n == 0 then
    self.holder = tx
    if mdb.on then mdb.waited(self.name, 0) end
    return true
  end
  local p = tx.parent
  while p do
    if p == self.holder then
      return nil, format("database %q: this independent transaction needs the writer, which the surrounding "
        .. "transaction holds until it ends, after this one: SQLite has one writer at a time; write in the "
        .. "independent transaction before the surrounding one writes, or use another database", self.name), "busy"
    end
    p = p.parent
  end
  local h, g = c_current()
  if not h then error("a database write must run inside a task", 3) end
  if timeout and timeout <= 0 then return nil, format("database %q: the writer is busy", self.name), "timeout" end
  local w = self._fifo:push(h, g, tx)
  local t0 = mdb.on and csched.clock()
  local ok, r, code = c_wait(timeout)
  if ok and r == true and self.holder == tx then
    if self._closed then
      release(self, tx)
      return nil, format("database %q is closed", self.name), "closed"
    end
    if t0 then mdb.waited(self.name, csched.clock() - t0) end
    return true
  end
  if not self._fifo:leave(w) and self.holder == tx then
    release(self, tx) -- granted just as the wait ended otherwise: pass it on
  end
  if ok then return nil, format("database %q is closed", self.name), "closed" end
  if code == "timeout" then
    return nil, format("database %q: no turn at the writer within %gs", self.name, timeout), "timeout"
  end
  return nil, format("database %q: %s while waiting for the writer", self.name, r), code -- cancelled
end

--- A statement of tx, the holder.
function Writer:run(tx, kind, sql, params)
  local pre = PRE_IN_TXN
  if not tx.member then
    pre = PRE_FIRST
    local grp = self.group
    if not grp.open then
      grp.open = true
      grp.budget = 1 + self._fifo.n -- those waiting now commit with this one
    end
  end
  local job = tx.job
  local a, b, c = c_run(self.conn, job, kind, sql, params, pre, false)
  if a == false then return a, b end -- misuse in params: nothing ran (the caller raises)
  local autocommit, began, savepoint = c_state(job)
  self.in_txn = not autocommit
  -- A new SQLite transaction under members that released: theirs is gone
  -- (whatever ended it, it was not their COMMIT).
  if began and self.group.n > 0 then
    settle(self, self.group, false, lost(self, "the transaction ended before its commit"), "aborted")
  end
  if savepoint then tx.member = true end
  if autocommit and tx.member then group_lost(self, tx, b) end
  return a, b, c
end

--- End tx (the holder): its writes join the group (success) or go. The
--- writer passes to the next transaction at once. Returns, once the group's
--- outcome is known, true | nil, err, code.
function Writer:finish(tx, success)
  if not tx.member then -- nothing began: nothing of its own to end
    release(self, tx)
    return true
  end
  local grp = self.group
  local failed = not success or tx.aborted ~= nil
  local member = tx.aborted and MEMBER_NONE or (failed and MEMBER_ROLLBACK or MEMBER_RELEASE)
  grp.size = grp.size + 1
  if not failed then
    grp.n = grp.n + 1
    grp.members[grp.n] = tx
  end
  -- The next transaction holds the writer from now on: its statements queue
  -- behind this END job. The group closes when nobody took over, or when
  -- the last of those waiting at its start ends.
  hand_over(self)
  local close = not self.group_commit or self.holder == nil or grp.size >= grp.budget
  local txn = TXN_KEEP
  if close then
    txn = grp.n > 0 and TXN_COMMIT or TXN_ROLLBACK
    self.group = new_group()
  end
  local m_ok, m_err, m_code, t_ok, t_err, t_code = c_finish(self.conn, tx.job, member, txn, false)
  -- (jobs run in order: no later job of the writer finished before this one)
  self.in_txn = not c_state(tx.job)
  if not m_ok and not failed then -- its RELEASE failed (a deferred foreign key): it alone is rolled back
    for i = 1, grp.n do if grp.members[i] == tx then grp.members[i] = false end end
  end
  if not close and c_state(tx.job) then -- the transaction is gone (see Writer:run)
    settle(self, grp, false, lost(self, m_err or "the transaction ended before its commit"), "aborted")
    if grp == self.group then self.group = new_group() end
  end
  if close then settle(self, grp, t_ok, not t_ok and commit_failed(self, t_err) or nil, t_code) end
  if failed then
    self.stats.rolled_back = self.stats.rolled_back + 1
    if tx.aborted then
      return nil, format("database %q: cannot commit: %s", self.name, tx.aborted), "aborted"
    end
    return true
  end
  if not m_ok and not tx.outcome then
    self.stats.rolled_back = self.stats.rolled_back + 1
    return nil, commit_failed(self, m_err), m_code
  end
  -- The group commits later, with a member after us (or has: see settle).
  if not tx.outcome then
    local h, g = c_current()
    tx.waiting = { h, g }
    c_wait()
    tx.waiting = nil
  end
  local o = tx.outcome
  if not o then
    -- cancelled while waiting: the group's outcome is not known yet
    return nil, format("database %q: cancelled while waiting for the group commit; its outcome is unknown",
      self.name), "cancelled"
  end
  return unpack(o, 1, 3)
end

--- Close the writer connection once nobody holds or waits for it (inside
--- a task: waiting up to timeout seconds).
function Writer:close(timeout)
  if self._closed then return true end
  self._closed = true
  local in_task = c_current() ~= nil
  if (self.holder ~= nil or self._fifo.n > 0) and in_task then
    self._closer = { c_current() }
    c_wait(timeout)
    self._closer = nil
  end
  c_close(self.conn, in_task)
  return true
end

function Writer:queue_stats()
  local s = self.stats
  return {
    busy = self.holder ~= nil, waiting = self._fifo.n, waits = self._fifo.total, groups = s.groups,
    committed = s.committed, rolled_back = s.rolled_back, failed_groups = s.failed_groups,
    largest_group = s.largest_group,
  }
end

M.Writer = Writer
return M
