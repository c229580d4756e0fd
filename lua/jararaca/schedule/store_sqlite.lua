--- jararaca.schedule.store_sqlite: the scheduler store in a SQLite file,
-- shared by the processes of one machine (the embedded default). The
-- backend of jararaca.schedule.store, which checks the arguments.
--
-- Every operation is one transaction on a jararaca.db database: a claim is
-- one write transaction (BEGIN IMMEDIATE: across processes SQLite's file
-- lock makes them take turns), so reading whether the tick is taken and
-- taking it cannot interleave with another claim. Tables (names are
-- columns, so one file can serve several apps):
--   jr_sched_actions (app, action) -> token (the last fencing token given),
--                                     last_tick (only moves forward)
--   jr_sched_runs    (app, action, tick) -> token, holder, claimed_at,
--                                     outcome, finished_at (ms)
-- A claim of tick T succeeds iff no row of T exists and T is within the
-- window (T >= max(now, last_tick) - ttl_s); rows older than the window
-- are deleted at each claim, and a tick older than the window is refused,
-- so a tick is never claimed twice, not even after its holder died.
-- @module jararaca.schedule.store_sqlite
local dbmod = require "jararaca.db"
local sched = require "jararaca.sched"
local session = require "jararaca.persistence.session"
local schema = require "jararaca.bus.embedded_schema"

local format, floor, tostring, setmetatable =
  string.format, math.floor, tostring, setmetatable
local null = dbmod.null

local M = {}

-- The versioned tables (embedded_schema.apply keeps the version in the
-- file's jr_bus_meta table, under key "sched_store_version").
local STEPS = {
  [[
CREATE TABLE IF NOT EXISTS jr_sched_actions (
  app       TEXT NOT NULL,
  action    TEXT NOT NULL,
  token     INTEGER NOT NULL,
  last_tick INTEGER NOT NULL,
  PRIMARY KEY (app, action)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jr_sched_runs (
  app         TEXT NOT NULL,
  action      TEXT NOT NULL,
  tick        INTEGER NOT NULL,
  token       INTEGER NOT NULL,
  holder      TEXT NOT NULL,
  claimed_at  INTEGER NOT NULL,
  outcome     TEXT,
  finished_at INTEGER,
  PRIMARY KEY (app, action, tick)
) WITHOUT ROWID;
]],
  -- the tick of the action's latest run that was not skipped (claim's busy check)
  "ALTER TABLE jr_sched_actions ADD COLUMN active_tick INTEGER;",
}

local Backend = {}
Backend.__index = Backend

-- Open the file. A sibling process opening it at the same moment may make
-- SQLite refuse PRAGMA journal_mode with "busy" at once (no busy handler
-- runs for it): try again for a while.
local function open_file(path, timeout)
  local deadline = sched.clock() + 15
  while true do
    -- no reader threads: reads are rare here (last, runs) and may use the writer
    local d, err, code = dbmod.open { path = path, readers = 0, busy_timeout = timeout, acquire_timeout = timeout }
    if d or (code ~= "busy" and code ~= "locked") or sched.clock() > deadline then return d, err, code end
    sched.sleep(0.02)
  end
end

--- The backend on url (a sqlite:/// URL), or nil, msg, code.
function M.open(url, app, opts)
  local path, err, code = session.parse_url(url)
  if not path then return nil, err, code end
  if path == ":memory:" or path:match("^file:") then
    return nil, format("%q: the store needs a file the scheduler processes share (sqlite:///path.db)", url), "invalid"
  end
  local d
  d, err, code = open_file(path, opts.timeout)
  if not d then return nil, format("cannot open %s: %s", path, tostring(err)), code end
  local self = setmetatable({ db = d, app = app, where = path }, Backend)
  local ok
  ok, err, code = d:atomically("write", function(tx)
    return schema.apply(tx, path, "sched_store_version", STEPS, "scheduler store tables")
  end)
  if not ok then
    d:close()
    return nil, err, code
  end
  return self
end

-- busy_ms: when given, the claim is a skip (recorded "skipped", the tick
-- consumed) while the action's active run is unfinished and was claimed
-- less than busy_ms ago.
local function still_running(tx, self, action, row, tick, now, busy_ms)
  local active = row and row.active_tick
  if not busy_ms or active == nil or active == null or active >= tick then return false end
  local r, err, code = tx:first("SELECT claimed_at, outcome FROM jr_sched_runs WHERE app = ? AND action = ? AND tick = ?",
    { self.app, action, active })
  if err then return nil, err, code end
  return r ~= nil and r.outcome == null and r.claimed_at + busy_ms > now * 1000
end

local function claim_tx(tx, self, action, tick, holder, ttl, now, busy_ms)
  local app = self.app
  local row, err, code = tx:first(
    "SELECT token, last_tick, active_tick FROM jr_sched_actions WHERE app = ? AND action = ?", { app, action })
  if err then return nil, err, code end
  local newest = floor(now)
  if row and row.last_tick > newest then newest = row.last_tick end
  -- (the reason Redis gives too: store.lua documents false, "taken")
  if tick < newest - ttl then return false, "taken" end
  local taken
  taken, err, code = tx:first("SELECT 1 AS x FROM jr_sched_runs WHERE app = ? AND action = ? AND tick = ?",
    { app, action, tick })
  if err then return nil, err, code end
  if taken then return false, "taken" end
  local busy
  busy, err, code = still_running(tx, self, action, row, tick, now, busy_ms)
  if busy == nil then return nil, err, code end
  local token = (row and row.token or 0) + 1
  local active = busy and row.active_tick or tick
  local ok
  ok, err, code = tx:execute([[
    INSERT INTO jr_sched_actions (app, action, token, last_tick, active_tick) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (app, action) DO UPDATE SET token = excluded.token, last_tick = max(last_tick, excluded.last_tick),
      active_tick = excluded.active_tick]],
    { app, action, token, tick, active })
  if not ok then return nil, err, code end
  local now_ms = floor(now * 1000)
  ok, err, code = tx:execute([[
    INSERT INTO jr_sched_runs (app, action, tick, token, holder, claimed_at, outcome, finished_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)]],
    { app, action, tick, token, holder, now_ms, busy and "skipped" or null, busy and now_ms or null })
  if not ok then return nil, err, code end
  ok, err, code = tx:execute("DELETE FROM jr_sched_runs WHERE app = ? AND action = ? AND tick < ?",
    { app, action, tick - ttl })
  if not ok then return nil, err, code end
  if busy then return false, "busy" end
  return token
end

local function failed(self, what, msg, code)
  return nil, format("%s on %s: %s", what, self.where, tostring(msg)), code
end

function Backend:claim(action, tick, holder, ttl, now, busy_ms)
  local token, err, code = self.db:atomically("write", claim_tx, self, action, tick, holder, ttl, now, busy_ms)
  if token == nil then return failed(self, "claim", err, code) end
  return token, err
end

local function finish_tx(tx, self, action, tick, token, outcome, now)
  local row, err, code = tx:first("SELECT token, outcome FROM jr_sched_runs WHERE app = ? AND action = ? AND tick = ?",
    { self.app, action, tick })
  if err then return nil, err, code end
  if not row then return nil, format("action %q has no claim of tick %d remembered", action, tick), "not_found" end
  if row.token ~= token then
    return nil, format("action %q: tick %d was claimed with token %d, not %d", action, tick, row.token, token), "fenced"
  end
  if row.outcome ~= null then
    return nil, format("action %q: tick %d finished already (%s)", action, tick, row.outcome), "exists"
  end
  local ok
  ok, err, code = tx:execute([[
    UPDATE jr_sched_runs SET outcome = ?, finished_at = ? WHERE app = ? AND action = ? AND tick = ?]],
    { outcome, floor(now * 1000), self.app, action, tick })
  if not ok then return nil, err, code end
  return true
end

function Backend:finish(action, tick, token, outcome, now)
  local ok, err, code = self.db:atomically("write", finish_tx, self, action, tick, token, outcome, now)
  if ok then return true end
  if code == "not_found" or code == "fenced" or code == "exists" then return nil, err, code end
  return failed(self, "finish", err, code)
end

function Backend:last(action)
  local tx = self.db:begin("read")
  local row, err, code = tx:first("SELECT last_tick FROM jr_sched_actions WHERE app = ? AND action = ?",
    { self.app, action })
  tx:commit()
  if err then return failed(self, "last", err, code) end
  return row and row.last_tick or nil
end

local function ms(v)
  if v == null then return nil end
  return v / 1000
end

function Backend:runs(action, since)
  local tx = self.db:begin("read")
  local rows, err, code = tx:query([[
    SELECT tick, token, holder, claimed_at, outcome, finished_at FROM jr_sched_runs
    WHERE app = ? AND action = ? AND tick >= ? ORDER BY tick]], { self.app, action, since })
  tx:commit()
  if not rows then return failed(self, "runs", err, code) end
  local out = {}
  for i = 1, #rows do
    local r = rows[i]
    out[i] = {
      tick = r.tick, token = r.token, holder = r.holder, claimed_at = ms(r.claimed_at),
      outcome = r.outcome ~= null and r.outcome or nil, finished_at = ms(r.finished_at),
    }
  end
  return out
end

function Backend:close()
  return self.db:close()
end

return M
