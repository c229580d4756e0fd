--- jararaca.bus.outbox: messages written in the app's SQLite transaction,
-- relayed to the broker after its commit (docs/bus.md, "Publishing").
--
--   outbox.write(session, msgs)     -- inside the session's write transaction: the rows, { seq, ... }
--   outbox.relay(st, db, seqs, msgs, after_commit) -- publish, then delete the rows
--   local r = outbox.start(st)      -- the relay task of a process (server or worker)
--   r:stop()
--
-- A staged message of a transaction that wrote to a database (its session's
-- write transaction is open at the session interceptor's exit) is written
-- into that database's jr_outbox table, in that transaction
-- (persistence.session.before_commit), so it commits with the writes or not
-- at all. After the commit the transaction's task publishes it to the broker
-- and deletes the row. A row left behind (the process died in between, the
-- broker failed) is relayed by the relay task of any process of the app:
-- rows carry a lease (owner, until); the task takes rows whose lease ended
-- or whose owner is a process of this host that is gone (a crash: relayed
-- at once by the next start). A message can reach the broker twice (the
-- process died between the publish and the delete): with the same id, so
-- consumers can tell. The table is created in the transaction that first
-- needs it and versioned in jr_bus_meta (key "outbox_schema_version").
-- @module jararaca.bus.outbox
local sched = require "jararaca.sched"
local csched = require "jararaca.core.sched"
local sys = require "jararaca.core.sys"
local json = require "jararaca.json"
local log = require "jararaca.log"
local dbmod = require "jararaca.db"
local schema = require "jararaca.bus.embedded_schema"
local ffi = require "ffi"
local mbus = require "jararaca.metrics.bus" -- built-in metrics: hooks run only when mbus.on

local M = {}

local ipairs, tostring, format, setmetatable, tonumber, pcall, concat, floor =
  ipairs, tostring, string.format, setmetatable, tonumber, pcall, table.concat, math.floor
local c_current, c_wait, c_wake = csched.current, csched.wait, csched.wake
local encode, decode, blob, null = json.encode, json.decode, dbmod.blob, dbmod.null

M.LEASE = 10          -- seconds a row stays with the process that wrote or took it
M.INTERVAL = 1        -- seconds between two looks at the outboxes
M.BATCH = 200         -- rows taken at once

local STEPS = {
  [[
CREATE TABLE IF NOT EXISTS jr_outbox (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  id          TEXT NOT NULL,
  topic       TEXT NOT NULL,
  body        BLOB NOT NULL,
  headers     TEXT NOT NULL,
  at_ms       INTEGER,
  created_at  INTEGER NOT NULL,
  lease_until INTEGER NOT NULL,
  lease_owner TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jr_outbox_lease ON jr_outbox (lease_until, seq);
]],
}
M.VERSION = #STEPS

-- databases (jararaca.db) whose outbox table is known to exist
local ready = setmetatable({}, { __mode = "k" })

local function now_ms() return floor(sys.time() * 1000) end

-- This process, as a lease owner: "host:pid:random".
local OWNER = format("%s:%d:%s", sys.hostname(), sys.pid(), require("jararaca.bus.embedded").new_id():sub(1, 8))
M.OWNER = OWNER

local INSERT = [[INSERT INTO jr_outbox (id, topic, body, headers, at_ms, created_at, lease_until, lease_owner)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)]]

--- Write msgs (the publisher's: { topic, body, headers, delay }) into the
--- outbox of session's database, in its open write transaction. Each gets
--- its id and its delay becomes a time (m.id, m.at set). The seqs of the
--- rows | nil, err, code. (The table is created when missing.)
function M.write(session, msgs, new_id)
  local database = session.db.database
  if not ready[database] then
    local ok, err, code = schema.apply(session, session.name, "outbox_schema_version", STEPS, "outbox tables")
    if not ok then return nil, err, code end
  end
  local now = now_ms()
  local seqs = {}
  for i, m in ipairs(msgs) do
    m.id = m.id or new_id()
    local at_ms = m.delay and now + floor(m.delay * 1000) or nil
    if at_ms then m.at, m.delay = at_ms / 1000, nil end
    local headers, herr = encode(m.headers or {})
    if not headers then return nil, "outbox: headers: " .. tostring(herr), "invalid" end
    local r, err, code = session:execute(INSERT, { m.id, m.topic, blob(m.body), headers, at_ms or null, now,
      now + M.LEASE * 1000, OWNER })
    if not r then return nil, err, code end
    seqs[i] = r.last_insert_id
  end
  return seqs
end

--- The outbox of database (jararaca.db) exists now (its creating
--- transaction committed).
function M.created(database)
  ready[database] = true
end

-- Run sql on rows seqs (the first parameters: params) in a write
-- transaction of its own. true | nil, err, code.
local function on_rows(database, sql, seqs, params)
  local marks, all = {}, {}
  for i, p in ipairs(params) do all[i] = p end
  for i = 1, #seqs do marks[i] = "?"; all[#all + 1] = seqs[i] end
  local tx = database:begin("write")
  local ok, err, code = tx:execute(sql .. " WHERE seq IN (" .. concat(marks, ",") .. ")", all)
  if not ok then tx:rollback(); return nil, err, code end
  return tx:commit()
end

local FAIL_FAST = { fail_fast = true }

--- Publish msgs (written to rows seqs of db's outbox) to the broker of
--- st (jararaca.bus state), then delete the rows. true | nil, err, code;
--- a failure leaves the rows to the relay task (logged). after_commit:
--- called right after the transaction's commit (do not wait for a broker
--- that is down).
function M.relay(st, database, seqs, msgs, after_commit)
  local broker, err, code = require("jararaca.bus").broker(st.container)
  local n
  -- right after a commit (the request or delivery still waits for it) a
  -- broker that is down is not waited for: the rows are safe, and the relay
  -- task sends them once it is back
  if broker then n, err, code = broker:publish(msgs, after_commit and FAIL_FAST or nil) end
  if not n then
    log.warn(format("message bus: %d message(s) stay in the outbox of %s (relayed later): %s", #msgs,
      tostring(database.path), tostring(err)))
    -- their lease ends now: the next look of a relay task tries again
    on_rows(database, "UPDATE jr_outbox SET lease_until = ?", seqs, { now_ms() })
    return nil, err, code
  end
  if mbus.on then mbus.sent(msgs) end
  local ok, derr, dcode = on_rows(database, "DELETE FROM jr_outbox", seqs, {})
  if not ok then
    log.warn(format("message bus: outbox of %s: deleting %d relayed row(s) failed (they will be sent again): %s",
      tostring(database.path), #seqs, tostring(derr)))
    return nil, derr, dcode
  end
  return true
end

---------------------------------------------------------------------------
-- The relay task
---------------------------------------------------------------------------

pcall(ffi.cdef, "int kill(int pid, int sig);")
local ESRCH = 3

-- Whether the lease owner "host:pid:tag" is a process of this host that is gone.
local function gone(owner)
  local host, pid = owner:match("^(.*):(%d+):[^:]*$")
  if host ~= sys.hostname() or owner == OWNER then return false end
  pid = tonumber(pid)
  if not pid or pid <= 0 then return false end
  return ffi.C.kill(pid, 0) ~= 0 and ffi.errno() == ESRCH
end

local TAKE = [[UPDATE jr_outbox SET lease_until = ?1, lease_owner = ?2
WHERE seq IN (SELECT seq FROM jr_outbox WHERE lease_until <= ?3 OR lease_owner = ?4 ORDER BY seq LIMIT ?5)
RETURNING seq, id, topic, body, headers, at_ms]]

-- Rows of database to relay now: lease ended, or their owner is gone.
-- The rows (taken: leased to us) | nil, err, code.
local function take(database)
  local now = now_ms()
  local tx = database:begin("read")
  local due, err, code = tx:first("SELECT 1 AS x FROM jr_outbox WHERE lease_until <= ? LIMIT 1", { now })
  local owners
  if not err then
    owners = tx:query("SELECT DISTINCT lease_owner FROM jr_outbox WHERE lease_until > ?", { now })
    if not owners then err = "cannot read the outbox's owners" end
  end
  tx:commit()
  if err then return nil, err, code end
  local dead
  for _, r in ipairs(owners) do
    if gone(r.lease_owner) then dead = r.lease_owner; break end
  end
  if not due and not dead then return {} end
  local wtx = database:begin("write")
  local rows
  rows, err, code = wtx:query(TAKE, { now + M.LEASE * 1000, OWNER, now, dead or "", M.BATCH })
  if not rows then wtx:rollback(); return nil, err, code end
  local ok
  ok, err, code = wtx:commit()
  if not ok then return nil, err, code end
  return rows
end

-- Whether database has an outbox table (read once; write() marks it too).
local function has_outbox(database)
  if ready[database] then return true end
  local tx = database:begin("read")
  local row = tx:first("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'jr_outbox'")
  tx:commit()
  if row then ready[database] = true end
  return row ~= nil
end

-- One look at every outbox of the app: relay what is due. The number relayed.
local function sweep(r)
  local st = r.st
  local n = 0
  local broker_path = st.settings.path
  for _, db in ipairs(require("jararaca.persistence.session").databases(st.container)) do
    local database = db.database
    if database and db.path ~= broker_path and has_outbox(database) then
      while not r.stopping do
        local rows, err = take(database)
        if not rows then
          log.warn("message bus: outbox of ", tostring(db.path), ": ", tostring(err))
          break
        end
        if #rows == 0 then break end
        local msgs, seqs = {}, {}
        for i, row in ipairs(rows) do
          local headers = decode(row.headers)
          msgs[i] = { id = row.id, topic = row.topic, body = row.body, headers = headers,
            at = row.at_ms ~= null and row.at_ms and row.at_ms / 1000 or nil }
          seqs[i] = row.seq
        end
        if not M.relay(st, database, seqs, msgs) then break end
        n = n + #rows
        log.info(format("message bus: relayed %d message(s) left in the outbox of %s", #rows, tostring(db.path)))
      end
    end
  end
  return n
end

local Relay = {}
Relay.__index = Relay

local function loop(r)
  while not r.stopping do
    local ok, err = pcall(sweep, r)
    if not ok then log.warn("message bus: outbox relay: ", tostring(err)) end
    if r.stopping then break end
    local h, g = c_current()
    r.parked = { h, g }
    c_wait(M.INTERVAL)
    r.parked = nil
  end
end

--- Start the relay task of the bus state st: it relays the rows left
--- behind at once, then looks again every INTERVAL seconds.
function M.start(st)
  local r = setmetatable({ st = st, stopping = false }, Relay)
  r.task = sched.spawn(loop, r)
  return r
end

--- Stop the relay task (waits for a relay in progress, a few seconds at most).
function Relay:stop()
  self.stopping = true
  local p = self.parked
  if p then c_wake(p[1], p[2]) end
  if not self.task.done then self.task:wait(10) end
end

return M
