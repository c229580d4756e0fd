--- jararaca.persistence.session: databases, per-transaction sessions and
-- the SessionInterceptor (the unit of work of the original, on SQLite).
--
--   local db = session.SessionInterceptor{ url = "sqlite:///tasks.db", name = "default", ... }
--   -- in Microservice{ interceptors = { db } }
--   local s = session.use_session("default")        -- inside a transaction
--   s:execute(sql, params) / s:query(sql, params) / s:first(sql, params)
--   session.providing_new_session("default", function(s2) ... end)
--
-- A SessionInterceptor instance IS the database: it owns it (jararaca.db:
-- one writer, a pool of readers; opened by startup, closed by shutdown).
-- Per transaction its enter() only marks the context with the session's
-- mode ("read" for GET/HEAD/OPTIONS requests, "write" otherwise, or what
-- the route says; DISABLED when it opts out); the first use_session()
-- creates the session, and its first statement begins the transaction
-- (db/tx.lua: a reader's snapshot, or a turn at the writer). exit()
-- commits (nil error; for a write, once its group's COMMIT is done) or
-- rolls back. A commit that fails raises from exit(), so the transaction
-- fails (a 5xx for HTTP: exit runs before the response is sent).
--
-- Statements of one session are serialised (tasks spawned by a handler may
-- share its session), and exit waits for a statement in flight.
-- @module jararaca.persistence.session
local context = require "jararaca.context"
local log = require "jararaca.log"
local csched = require "jararaca.core.sched"
local sched = require "jararaca.sched"
local dboptions = require "jararaca.db.options"

local M = {}

local type, pairs, ipairs, error, tostring, setmetatable, getmetatable, rawget, rawset, select, pcall, unpack =
  type, pairs, ipairs, error, tostring, setmetatable, getmetatable, rawget, rawset, select, pcall, unpack
local format, concat, sort = string.format, table.concat, table.sort
local current, bind = context.current, context.bind
local c_current, c_wait, c_wake = csched.current, csched.wait, csched.wake
local CANCELLED = sched.CANCELLED

--- Marks a database whose session the current route opted out of.
local DISABLED = setmetatable({}, { __tostring = function() return "DISABLED" end })
M.DISABLED = DISABLED

-- container -> { [name] = db, _order = { db, ... } }
local registries = setmetatable({}, { __mode = "k" })

local function registry(container)
  if container == nil then return nil end
  return registries[container]
end

local function names_of(reg)
  local out = {}
  if reg then for name in pairs(reg) do if name ~= "_order" then out[#out + 1] = name end end end
  sort(out)
  return out
end

local function configured(reg)
  local names = names_of(reg)
  if #names == 0 then return "none configured: add persistence.SessionInterceptor{...} to the app's interceptors" end
  for i, n in ipairs(names) do names[i] = format("%q", n) end
  return "configured: " .. concat(names, ", ")
end

--- The started databases of a container, in startup order.
function M.databases(container)
  local reg = registry(container)
  local out = {}
  if reg then for i, db in ipairs(reg._order) do out[i] = db end end
  return out
end

--- The started database `name` of a container, or nil.
function M.database(container, name)
  local reg = registry(container)
  return reg and reg[name or "default"] or nil
end

---------------------------------------------------------------------------
-- URLs
---------------------------------------------------------------------------

--- "sqlite:///rel/path.db" -> "rel/path.db"; "sqlite:////abs/x.db" ->
--- "/abs/x.db"; "sqlite:///:memory:" -> ":memory:". nil, message,
--- "invalid" for any other URL; raises when url is not a string.
function M.parse_url(url)
  if type(url) ~= "string" then error("parse_url(url): url must be a string, got " .. type(url), 2) end
  local rest = url:match("^sqlite:///(.*)$")
  if rest == nil then
    if url:match("^sqlite:") then
      return nil, format("bad SQLite URL %q: write sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:", url), "invalid"
    end
    local scheme = url:match("^([%w+.-]+):") or url
    return nil, format("unsupported database URL %q (scheme %q): only sqlite:/// URLs are supported", url, scheme), "invalid"
  end
  if rest == "" then return nil, format("bad SQLite URL %q: no file path after sqlite:///", url), "invalid" end
  if rest:find("?", 1, true) then
    return nil, format("bad SQLite URL %q: query parameters are not supported; use the interceptor's options", url), "invalid"
  end
  return rest
end

---------------------------------------------------------------------------
-- A lock for one session (tasks of one transaction may share it)
---------------------------------------------------------------------------

-- firm: wait through cancellation (ending a transaction must not be skipped:
-- a write session would keep the writer for good).
local function lock(s, firm)
  if not s.locked then s.locked = true; return end
  local h, g = c_current()
  if not h then error("persistence: a session is busy and this code is not running in a task", 3) end
  local q = s.waiters
  if q == nil then q = {}; s.waiters = q end
  local w = { h, g, granted = false }
  q[#q + 1] = w
  while true do
    local ok = c_wait()
    if w.granted then return end
    if not ok and not firm then
      for i = #q, 1, -1 do if q[i] == w then table.remove(q, i) end end
      error(CANCELLED, 0)
    end
  end
end

local function unlock(s)
  local q = s.waiters
  while q ~= nil and #q > 0 do
    local w = table.remove(q, 1)
    w.granted = true
    if c_wake(w[1], w[2]) then return end -- ownership handed over
    w.granted = false                      -- that waiter is gone: next
  end
  s.locked = false
end

---------------------------------------------------------------------------
-- Sessions
---------------------------------------------------------------------------

local Session = {}
Session.__index = Session
Session.__name = "Session"
M.Session = Session

function Session.__tostring(s)
  return format("Session(%s%s)", s.name, s.state == "done" and ", ended" or "")
end

--- A session of database db. tx: an existing transaction it runs in (and
--- does not end: migrations), else one of `mode` ("read" | "write") is
--- begun at its first statement.
local function new_session(db, tx, mode)
  return setmetatable({
    db = db, name = db.name, tx = tx, state = tx and "open" or "idle", _mode = mode or "write",
    locked = false, waiters = nil, owned = tx == nil,
  }, Session)
end
M.new_session = new_session

local function ended_error(s, level)
  error(format("persistence: the session of database %q was used after its transaction ended", s.name), level + 1)
end

-- With the lock held: the transaction, begun on first use.
local function transaction(s)
  local tx = s.tx
  if tx then return tx end
  local database = s.db.database
  if database == nil then
    return nil, format("database %q is not open (its interceptor was shut down or never started)", s.name), "closed"
  end
  local p = s.parent
  tx = database:begin(s._mode, p and p.tx or nil)
  s.tx, s.state = tx, "open"
  return tx
end

-- (The Session methods tail-call run: level 2 here is their caller.)
local function run(s, method, sql, params, opts)
  if type(sql) ~= "string" then error(format("session:%s(): sql must be a string, got %s", method, type(sql)), 2) end
  if params ~= nil and type(params) ~= "table" then
    error(format("session:%s(): bad parameters: a list or a table of names expected, got a %s", method, type(params)), 2)
  end
  lock(s)
  if s.state == "done" then unlock(s); ended_error(s, 2) end
  local tx, terr, tcode = transaction(s)
  if not tx then unlock(s); return nil, terr, tcode end
  local ok, a, b, c = pcall(tx[method], tx, sql, params, opts)
  unlock(s)
  if not ok then error(a, 0) end
  return a, b, c
end

--- execute(sql, params [, opts]) -> { changes, last_insert_id } | nil, err, code
--- opts.thread: run a read on its reader's thread, never on the event loop
--- (for a statement known to be long; see docs/sqlite.md)
function Session:execute(sql, params, opts) return run(self, "execute", sql, params, opts) end
--- query(sql, params [, opts]) -> rows, columns | nil, err, code
function Session:query(sql, params, opts) return run(self, "query", sql, params, opts) end
--- first(sql, params [, opts]) -> row | nil | nil, err, code
function Session:first(sql, params, opts) return run(self, "first", sql, params, opts) end
--- exec_script(sql) -> true | nil, err, code (several statements, no parameters)
function Session:exec_script(sql) return run(self, "exec_script", sql) end

--- True once a statement ran (a connection is held).
function Session:active()
  return self.tx ~= nil and self.tx:active()
end

--- "read" or "write": what the session's transaction is (a read session
--- becomes a write one when its first statement writes).
function Session:mode()
  return self.tx and self.tx.mode or self._mode
end

--- The work of the session's last statement (see Tx:counters), or nil.
function Session:counters()
  return self.tx and self.tx:counters() or nil
end

--- What identifies the content the session sees now (see Tx:content_key),
--- or nil.
function Session:content_key()
  if self.tx == nil then return nil end
  return self.tx:content_key()
end

-- End the session: commit (success) or roll back. Returns true or false,
-- message.
function Session:_finish(success)
  lock(self, true)
  if self.state == "done" then unlock(self); return true end
  self.state = "done"
  local tx = self.tx
  local ok, msg = true, nil
  if tx ~= nil and self.owned then
    if success then
      local cok, cerr = tx:commit()
      if not cok then ok, msg = false, tostring(cerr) end
    else
      tx:rollback()
    end
  end
  unlock(self)
  return ok, msg
end

local function pack(...) return { n = select("#", ...), ... } end

-- Run fn(session) in a new session of db bound to the running coroutine
-- (use_session(db.name) returns it inside fn), then commit or roll back.
local function independent(db, fn)
  if type(fn) ~= "function" then
    error("providing_new_session: fn must be a function(session), got " .. type(fn), 3)
  end
  local s = new_session(db, nil, "write")
  local parent = current()
  local outer = parent and parent[db]
  if type(outer) == "table" and outer ~= DISABLED then s.parent = outer end
  if parent ~= nil and rawget(parent, "scope") == nil and parent.scope == nil then parent.scope = {} end
  local child = setmetatable({ [db] = s }, { __index = parent })
  if parent == nil then child.kind, child.container = "independent", db.container end
  bind(child)
  local r = pack(pcall(fn, s))
  bind(parent)
  local ok, msg = s:_finish(r[1])
  if not r[1] then error(r[2], 0) end
  if not ok then error(msg, 0) end
  return unpack(r, 2, r.n)
end

--- session:independent(fn): run fn(new_session) in a transaction of its own
--- (another connection), committed when fn returns, rolled back when it
--- raises. Returns fn's results or raises its error (or the commit's).
function Session:independent(fn)
  return independent(self.db, fn)
end

---------------------------------------------------------------------------
-- use_session / providing_new_session
---------------------------------------------------------------------------

local function check_name(name, hook)
  if name == nil then return "default" end
  if type(name) ~= "string" then
    error(format("%s(name): name must be a string, got %s", hook, type(name)), 3)
  end
  return name
end

--- The session of database `name` (default "default") of the current
--- transaction. Raises outside a transaction, for an unknown name, or when
--- the route opted out.
function M.use_session(name)
  name = check_name(name, "use_session")
  local ctx = current()
  if ctx == nil then
    error(format("use_session(%q) called outside a transaction (no context): sessions exist inside an HTTP request, a message or a scheduled run; elsewhere use persistence.providing_new_session", name), 2)
  end
  local reg = registry(ctx.container)
  local db = reg and reg[name]
  if db == nil then
    error(format("use_session(%q): no database named %q (%s)", name, name, configured(reg)), 2)
  end
  local s = ctx[db]
  if type(s) == "string" then -- entered; no session yet ("read" | "write")
    s = new_session(db, nil, s)
    ctx[db] = s
    return s
  end
  if s == nil then
    error(format("use_session(%q) called outside a transaction or after it ended (current context: %s): sessions exist inside an HTTP request, a message or a scheduled run; elsewhere use persistence.providing_new_session",
      name, tostring(ctx.kind)), 2)
  end
  if s == DISABLED then
    error(format("use_session(%q): persistence is disabled for this route (route option persistence = false or { %s = false })",
      name, name), 2)
  end
  return s
end

--- providing_new_session([name,] fn): fn(session) in an independent
--- transaction on its own connection. Needs a running app (any context:
--- startup, a request, ...).
function M.providing_new_session(name, fn)
  if type(name) == "function" and fn == nil then name, fn = nil, name end
  name = check_name(name, "providing_new_session")
  local ctx = current()
  local reg = ctx and registry(ctx.container)
  local db = reg and reg[name]
  if db == nil then
    if ctx == nil then
      error(format("providing_new_session(%q) called outside the app (no context to find the database in)", name), 2)
    end
    error(format("providing_new_session(%q): no database named %q (%s)", name, name, configured(reg)), 2)
  end
  return independent(db, fn)
end

---------------------------------------------------------------------------
-- SessionInterceptor (= a database)
---------------------------------------------------------------------------

local SessionInterceptor = {}
SessionInterceptor.__index = SessionInterceptor
SessionInterceptor.__name = "SessionInterceptor"
M.SessionInterceptor_class = SessionInterceptor

-- Options of the interceptor itself; the database's own (readers,
-- busy_timeout, journal_mode, ...) are those of jararaca.db (db/options.lua).
local OWN = { url = true, name = true, migrations = true, migrate_on_start = true }

--- persistence.SessionInterceptor{ url =, name =, readers =, ... } (see docs/persistence.md)
function M.SessionInterceptor(opts)
  if type(opts) ~= "table" then
    error("SessionInterceptor{...}: expects a table of options, got " .. type(opts), 2)
  end
  for k, v in pairs(opts) do
    if OWN[k] then
      local want = k == "migrate_on_start" and "boolean" or "string"
      if type(v) ~= want then error(format("SessionInterceptor: option %s must be a %s, got %s", k, want, type(v)), 2) end
    end
  end
  local given = {}
  for k, v in pairs(opts) do given[k] = v end
  if given.url ~= nil and given.path ~= nil then error("SessionInterceptor: give url or path, not both", 2) end
  if given.path == nil then
    if given.url == nil then error("SessionInterceptor: url is required (e.g. url = \"sqlite:///app.db\")", 2) end
    local p, err = M.parse_url(given.url)
    if not p then error("SessionInterceptor: " .. err, 2) end
    given.path = p
  end
  local o = dboptions.validate(given, "SessionInterceptor", OWN, 2)
  local db_opts = {}
  for k, v in pairs(given) do if not OWN[k] then db_opts[k] = v end end
  local name = o.name or "default"
  if name == "" or name == "_order" then error(format("SessionInterceptor: bad name %q", name), 2) end
  return setmetatable({
    name = name, url = o.url, path = o.path, options = o, db_opts = db_opts, busy_timeout = o.busy_timeout,
    migrations = o.migrations, migrate_on_start = o.migrate_on_start == true,
    database = nil, container = nil, migrations_dir = nil,
  }, SessionInterceptor)
end

function M.is_database(v)
  return type(v) == "table" and getmetatable(v) == SessionInterceptor
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- Migrations dir: absolute as given; relative to the app file's directory
-- when the app came from a file, else to the working directory.
local function resolve_dir(dir, app)
  if dir == nil then return nil end
  if dir:sub(1, 1) == "/" then return dir end
  local file = type(app) == "table" and rawget(app, "__file") or nil
  if type(file) == "string" then
    local base = dirname(file)
    if base ~= "." then return base .. "/" .. dir end
  end
  return dir
end

--- Open the database (and apply pending migrations when migrate_on_start).
function SessionInterceptor:startup(app, container)
  if self.database ~= nil then
    error(format("database %q is already started (one SessionInterceptor instance per app)", self.name), 0)
  end
  local reg = registries[container]
  if reg == nil then reg = { _order = {} }; registries[container] = reg end
  if reg[self.name] ~= nil then
    error(format("database %q is configured twice (two SessionInterceptors with name = %q)", self.name, self.name), 0)
  end
  local dbmod = require "jararaca.db"
  local database, err, code
  -- Opening runs PRAGMA journal_mode, which SQLite may refuse with "busy"
  -- without waiting while another process (a sibling worker starting at
  -- the same time) holds a lock: retry for a while.
  local deadline = sched.clock() + self.busy_timeout + 10
  while true do
    database, err, code = dbmod.open(self.db_opts, self.name)
    if database or not (code == "busy" or code == "locked") or sched.clock() > deadline then break end
    log.debug("database ", self.name, ": open: ", tostring(err), "; retrying")
    sched.sleep(0.02)
  end
  if not database then
    error(format("cannot open database %q (%s): %s", self.name, self.path, tostring(err)), 0)
  end
  self.database, self.container, self.app = database, container, app
  self.migrations_dir = resolve_dir(self.migrations, app)
  reg[self.name] = self
  reg._order[#reg._order + 1] = self
  local ctx = current()
  if self.migrate_on_start and self.migrations_dir and not (ctx and ctx.app_kind == "migrate") then
    local migrate = require "jararaca.persistence.migrate"
    local ok, merr = migrate.apply(self, { log = true })
    if not ok then
      self:_close(reg)
      error(format("database %q: migrations failed: %s", self.name, merr), 0)
    end
  end
end

function SessionInterceptor:_close(reg)
  reg = reg or registries[self.container]
  if reg and reg[self.name] == self then
    reg[self.name] = nil
    for i = #reg._order, 1, -1 do if reg._order[i] == self then table.remove(reg._order, i) end end
  end
  local database = self.database
  self.database = nil
  if database then database:close() end
end

--- Close the database.
function SessionInterceptor:shutdown()
  self:_close()
end

-- Whether this route/controller wants a session of database `name`, and of
-- which kind: persistence = false | true | "read" | "write" |
-- { [name] = one of those }; route beats controller.
local MODES = { read = true, write = true }
local function is_mode(v) return type(v) == "boolean" or MODES[v] == true end

--- Whether v is a valid `persistence` option: true, or nil and the reason.
--- Routes are checked at startup with it (jararaca.http.route_spec).
function M.check_setting(v)
  if is_mode(v) then return true end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(k) ~= "string" or not is_mode(x) then
        return nil, format("expected true, false, \"read\", \"write\" or a table { name = one of those },"
          .. " got the entry [%s] = %s", type(k) == "string" and format("%q", k) or tostring(k),
          type(x) == "string" and format("%q", x) or tostring(x))
      end
    end
    return true
  end
  return nil, format("expected true, false, \"read\", \"write\" or a table { name = one of those }, got %s",
    type(v) == "string" and format("%q", v) or tostring(v))
end

local function setting(v, name)
  if v == nil then return nil end
  if is_mode(v) then return v end
  local ok, err = M.check_setting(v)
  if not ok then error("route option persistence: " .. err, 0) end
  return v[name]
end

-- Methods that must not change anything (RFC 9110): their sessions read.
local SAFE = { GET = true, HEAD = true, OPTIONS = true }

local function enabled(ctx, name)
  local route = ctx.route
  local opts = route and route.opts
  local v = opts and setting(opts.persistence, name)
  if v == nil then
    local cls = ctx.controller
    local meta = type(cls) == "table" and rawget(cls, "__controller") or nil
    local copts = meta and meta.opts
    v = copts and setting(copts.persistence, name)
  end
  if v == nil then v = ctx.kind ~= "websocket" end
  if v == true then
    -- The default: an HTTP request by a safe method reads; everything else
    -- (other methods, messages, scheduled runs) may write, and takes its
    -- turn at the writer from its first statement, so that what it read
    -- is still true when it writes.
    local req = ctx.request
    return (ctx.kind == "http" and req and SAFE[req.method]) and "read" or "write"
  end
  return v
end
M.enabled = enabled

function SessionInterceptor:enter(ctx)
  local v = enabled(ctx, self.name)
  ctx[self] = v and v or DISABLED -- "read" | "write": the session's mode, made at first use
end

--- before_commit(ctx, fn): fn(session, db) runs in the exit of every
--- SessionInterceptor of the transaction ctx whose session wrote (a write
--- transaction is open), just before its commit, inside that transaction
--- (the message bus writes its outbox there). fn returns nil or a function
--- to run once that commit succeeded; an error it raises rolls the
--- transaction back and fails it.
function M.before_commit(ctx, fn)
  if type(fn) ~= "function" then error("before_commit(ctx, fn): fn must be a function, got " .. type(fn), 2) end
  local list = rawget(ctx, "_before_commit")
  if list == nil then list = {}; rawset(ctx, "_before_commit", list) end
  list[#list + 1] = fn
end

-- The before_commit hooks of ctx for session s: the functions to run after
-- the commit (a list, or nil). Raises what a hook raised.
local function before_commit(ctx, s, db)
  local list = rawget(ctx, "_before_commit")
  local tx = s.tx
  if list == nil or tx == nil or tx.mode ~= "write" or not tx:active() then return nil end
  local after
  for i = 1, #list do
    local f = list[i](s, db)
    if f ~= nil then after = after or {}; after[#after + 1] = f end
  end
  return after
end

function SessionInterceptor:exit(ctx, err)
  local s = ctx[self]
  ctx[self] = nil
  if type(s) ~= "table" or s == DISABLED then return end
  local after
  if err == nil then
    local hok, herr = pcall(before_commit, ctx, s, self)
    if not hok then
      s:_finish(false)
      error(herr, 0)
    end
    after = herr
  end
  local ok, msg = s:_finish(err == nil)
  if not ok then error(msg, 0) end
  if after then
    for i = 1, #after do
      local aok, aerr = pcall(after[i])
      if not aok then log.error("an after-commit action failed: ", tostring(aerr)) end
    end
  end
end

--- db:independent(fn): fn(session) in a transaction of its own.
function SessionInterceptor:independent(fn)
  if self.database == nil then error(format("database %q is not started", self.name), 2) end
  return independent(self, fn)
end

--- The database's counters (readers, writer queue, group commits; see db.lua).
function SessionInterceptor:stats()
  return self.database and self.database:stats() or nil
end

function SessionInterceptor.__tostring(db)
  return format("SessionInterceptor(%s: %s)", db.name, db.path)
end

return M
