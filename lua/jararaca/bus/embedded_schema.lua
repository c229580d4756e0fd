--- jararaca.bus.embedded_schema: the tables of the embedded broker, created
-- and upgraded by the broker itself (not by the app's migrations).
--
--   schema.ensure(database) -> true | nil, err, code
--
-- The version lives in jr_bus_meta (key "schema_version"). ensure() runs
-- in one write transaction (BEGIN IMMEDIATE: several processes opening the
-- same file at once take turns, and only the first creates the tables),
-- applies the steps after the stored version, and refuses a file written by
-- a newer jararaca (code "invalid") rather than guess its layout.
--
-- Times are integer milliseconds since the epoch (the wall clock: the
-- processes sharing the file share it).
-- @module jararaca.bus.embedded_schema
local format = string.format

local M = {}

-- Each step takes the tables from version i-1 to version i.
local STEPS = {
  [[
CREATE TABLE IF NOT EXISTS jr_bus_bindings (
  queue   TEXT NOT NULL,
  pattern TEXT NOT NULL,
  PRIMARY KEY (queue, pattern)
) WITHOUT ROWID;

-- One row per (message, queue): a publish fans out to every bound queue.
-- Ready when available_at <= now. A lease (a fetch) moves available_at to
-- the lease's end, so an expired lease is simply available again and one
-- index serves fetch, wait and stats. lease_token grows at each fetch: an
-- ack carries the token it got, and cannot touch a later lease.
CREATE TABLE IF NOT EXISTS jr_bus_messages (
  seq          INTEGER PRIMARY KEY,
  id           TEXT NOT NULL,
  queue        TEXT NOT NULL,
  topic        TEXT NOT NULL,
  body         BLOB NOT NULL,
  headers      TEXT NOT NULL,
  attempt      INTEGER NOT NULL DEFAULT 0,
  deliveries   INTEGER NOT NULL DEFAULT 0,
  available_at INTEGER NOT NULL,
  lease_until  INTEGER,
  lease_owner  TEXT,
  lease_token  INTEGER NOT NULL DEFAULT 0,
  created_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jr_bus_messages_ready ON jr_bus_messages (queue, available_at, seq);

CREATE TABLE IF NOT EXISTS jr_bus_dead (
  seq        INTEGER PRIMARY KEY,
  id         TEXT NOT NULL,
  queue      TEXT NOT NULL,
  topic      TEXT NOT NULL,
  body       BLOB NOT NULL,
  headers    TEXT NOT NULL,
  attempt    INTEGER NOT NULL,
  deliveries INTEGER NOT NULL,
  reason     TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  died_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jr_bus_dead_queue ON jr_bus_dead (queue, seq);
]],
}

M.VERSION = #STEPS

local META = [[
CREATE TABLE IF NOT EXISTS jr_bus_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID
]]

--- Bring a versioned set of tables up to date in tx (a jararaca.db
--- transaction or a persistence session, open for writing): steps[i] takes
--- them from version i-1 to i; the version is kept in jr_bus_meta under
--- key; what names them in messages ("message bus tables"). A version
--- newer than #steps is refused (code "invalid"). true | nil, err, code.
function M.apply(tx, name, key, steps, what)
  local ok, err, code = tx:exec_script(META)
  if not ok then return nil, err, code end
  local row
  row, err, code = tx:first("SELECT value FROM jr_bus_meta WHERE key = ?", { key })
  if err then return nil, err, code end
  local version, latest = row and row.value or 0, #steps
  if version > latest then
    return nil, format("database %q: its %s have schema version %d, newer than this jararaca's (%d)",
      name, what, version, latest), "invalid"
  end
  for v = version + 1, latest do
    ok, err, code = tx:exec_script(steps[v])
    if not ok then return nil, format("database %q: creating the %s (version %d): %s", name, what, v, err), code end
  end
  if version < latest then
    ok, err, code = tx:execute("INSERT OR REPLACE INTO jr_bus_meta (key, value) VALUES (?, ?)", { key, latest })
    if not ok then return nil, err, code end
  end
  return true
end

local function upgrade(tx, name)
  return M.apply(tx, name, "schema_version", STEPS, "message bus tables")
end

--- Create or upgrade the broker's tables in database (a jararaca.db
--- database). true | nil, err, code.
function M.ensure(database)
  local tx = database:begin("write")
  local ok, err, code = upgrade(tx, database.name)
  if not ok then
    tx:rollback()
    return nil, err, code
  end
  return tx:commit()
end

return M
