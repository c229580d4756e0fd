--- jararaca.db.options: every tunable of a SQLite database, in one table,
-- validated once. db.open and persistence.SessionInterceptor take these
-- options; the C side (core/db_conn.c) only asserts what it gets. The table
-- below is the reference documented in docs/sqlite.md ("Options").
-- @module jararaca.db.options
local M = {}

local type, pairs, ipairs, tostring, error, floor, format, concat, sort =
  type, pairs, ipairs, tostring, error, math.floor, string.format, table.concat, table.sort

local JOURNAL = { "WAL", "DELETE", "TRUNCATE", "PERSIST", "MEMORY", "OFF" }
local SYNC = { "NORMAL", "FULL", "EXTRA", "OFF" }

-- name, kind, default, bounds or choices, what it means (docs/sqlite.md)
M.SPEC = {
  { "path", "string", nil, nil, "the database file, \":memory:\" or a \"file:\" URI (required)" },
  { "readers", "integer", 4, { 0, 64 },
    "reader connections, each on a thread of its own; 0: reads use the writer (forced for \":memory:\")" },
  { "busy_timeout", "number", 5, { 0, 3600 }, "seconds to wait for another process's write lock" },
  { "acquire_timeout", "number", 30, { 0, 86400 },
    "seconds a transaction waits for a free reader, or for its turn at the writer" },
  { "journal_mode", "enum", "WAL", JOURNAL, "SQLite's journal mode (WAL: readers never wait for the writer)" },
  { "synchronous", "enum", "NORMAL", SYNC, "NORMAL with WAL: no fsync per commit, only at checkpoints" },
  { "foreign_keys", "boolean", true, nil, "enforce foreign keys (SQLite's default is off)" },
  { "statement_cache", "integer", 64, { 0, 100000 }, "prepared statements kept per connection (LRU by SQL text)" },
  { "read_deadline_us", "integer", 100, { 0, 1000000 },
    "how long a read may run on the event loop before it moves to its reader's thread; 0: reads always on threads" },
  { "group_commit", "boolean", true, nil,
    "write transactions queued behind each other commit together (one COMMIT for the group)" },
  { "writer_spin_us", "integer", 50, { 0, 100000 },
    "how long the writer's thread, and the event loop, look for the next step of a write transaction before they sleep" },
  { "pragmas", "pragmas", nil, nil, "more PRAGMAs for every connection: { cache_size = -20000, mmap_size = 268435456 }" },
}

local BY_NAME = {}
for _, s in ipairs(M.SPEC) do BY_NAME[s[1]] = s end

local function one_of(v, list)
  local u = v:upper()
  for _, x in ipairs(list) do if x == u then return x end end
  return nil
end

local function known(extra)
  local names = {}
  for _, s in ipairs(M.SPEC) do names[#names + 1] = s[1] end
  if extra then for k in pairs(extra) do names[#names + 1] = k end end
  sort(names)
  return concat(names, ", ")
end

local function check(where, s, v, level)
  local name, kind, _, bounds = s[1], s[2], s[3], s[4]
  local function bad(what)
    error(format("%s: option %s must be %s, got %s", where, name, what,
      type(v) == "string" and format("%q", v) or tostring(v)), level + 2)
  end
  if kind == "string" then
    if type(v) ~= "string" or v == "" then bad("a non-empty string") end
    return v
  elseif kind == "boolean" then
    if type(v) ~= "boolean" then bad("true or false") end
    return v
  elseif kind == "enum" then
    if type(v) ~= "string" or not one_of(v, bounds) then bad("one of " .. concat(bounds, ", ")) end
    return one_of(v, bounds)
  elseif kind == "integer" or kind == "number" then
    if type(v) ~= "number" or v ~= v or (kind == "integer" and v ~= floor(v)) or v < bounds[1] or v > bounds[2] then
      bad(format("%s from %s to %s", kind == "integer" and "an integer" or "a number", bounds[1], bounds[2]))
    end
    return v
  elseif kind == "pragmas" then
    if type(v) ~= "table" then bad("a table { name = value }") end
    local list = {}
    for k, x in pairs(v) do
      if type(k) ~= "string" or not k:find("^[%a_][%w_]*$") then
        error(format("%s: pragma names must be identifiers, got %s", where, tostring(k)), level + 2)
      end
      if type(x) == "boolean" then x = x and "ON" or "OFF" end
      x = tostring(x)
      if not x:find("^[%w_.+-]+$") then
        error(format("%s: bad value for pragma %s: %s", where, k, x), level + 2)
      end
      list[#list + 1] = k .. "=" .. x
    end
    sort(list)
    return list
  end
  error("unknown option kind " .. tostring(kind))
end

--- Validate opts (a table) and return them normalized, defaults filled in
--- (pragmas become a sorted list of "name=value"). `where` prefixes error
--- messages ("db.open", "SessionInterceptor"); `extra` names further keys
--- the caller handles itself (copied through as they are). Raises at
--- `level` (default: the caller of the caller) on a bad option.
function M.validate(opts, where, extra, level)
  level = level or 2
  if type(opts) ~= "table" then error(format("%s{...}: expects a table of options, got %s", where, type(opts)), level + 1) end
  for k in pairs(opts) do
    if BY_NAME[k] == nil and not (extra and extra[k]) then
      error(format("%s: unknown option %s (known: %s)", where,
        type(k) == "string" and format("%q", k) or tostring(k), known(extra)), level + 1)
    end
  end
  local out = {}
  for _, s in ipairs(M.SPEC) do
    local v = opts[s[1]]
    if v ~= nil or s[1] == "path" then v = check(where, s, v, level) else v = s[3] end
    out[s[1]] = v
  end
  out.pragmas = out.pragmas or {}
  if extra then for k in pairs(extra) do out[k] = opts[k] end end
  local path = out.path
  if path == ":memory:" then
    -- SQLite gives every connection a :memory: database of its own: one
    -- connection (the writer) is the only way to share one.
    if opts.readers ~= nil and opts.readers ~= 0 then
      error(format("%s: an in-memory database (:memory:) is private to one connection: readers must be 0", where), level + 1)
    end
    out.readers = 0
  end
  return out
end

--- The C options of one connection (role "writer" or "reader").
function M.connection(o, role)
  local writer = role == "writer"
  return {
    path = o.path,
    readonly = not writer,
    busy_timeout_ms = floor(o.busy_timeout * 1000 + 0.5),
    journal_mode = writer and o.journal_mode or nil,
    synchronous = writer and o.synchronous or nil,
    foreign_keys = writer and o.foreign_keys or nil,
    statement_cache = o.statement_cache,
    pragmas = o.pragmas,
    read_deadline_us = writer and 0 or o.read_deadline_us,
    spin_us = writer and o.writer_spin_us or 0,
  }
end

return M
