--- jararaca.persistence.migrate: ordered SQL/Lua migrations.
--
--   local migrate = require "jararaca.persistence.migrate"
--   local list, err, code = migrate.discover(dir)     -- files, sorted by version
--   local report, err, code = migrate.status(db)       -- db: a started SessionInterceptor
--   local ok, report_or_err, code, report = migrate.apply(db, { to = 3 })
--   migrate.cli(args) -> exit code                     -- `jararaca migrate app.lua ...`
--
-- Files: NNNN_some_name.sql (run as a script) or NNNN_some_name.lua
-- (returns function(session); raise, or return nil/false and a message, to
-- fail). Gaps in the numbering are fine; two files with the same number are
-- an error. Every migration runs in its own transaction, begun with BEGIN
-- IMMEDIATE so that only one process at a time checks and applies a
-- version (several workers starting with migrate_on_start are safe), and is
-- recorded in
--
--   jararaca_migrations(version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT, checksum TEXT)
--
-- A failing migration rolls back only itself; the run stops there, naming
-- the file and the error. A file changed after it was applied (checksum
-- differs) is reported as a warning and never re-run.
-- @module jararaca.persistence.migrate
local ffi = require "ffi"
local bit = require "bit"
local log = require "jararaca.log"
local sched = require "jararaca.sched"
local session_mod = require "jararaca.persistence.session"

local M = {}

local type, ipairs, tostring, tonumber, error, pcall, loadfile =
  type, ipairs, tostring, tonumber, error, pcall, loadfile
local format, concat, sort = string.format, table.concat, table.sort

M.TABLE = "jararaca_migrations"
local CREATE_TABLE = [[
CREATE TABLE IF NOT EXISTS jararaca_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT NOT NULL,
  applied_at TEXT NOT NULL,
  checksum   TEXT
)]]

---------------------------------------------------------------------------
-- Files
---------------------------------------------------------------------------

pcall(ffi.cdef, [[
  struct jr_migrate_dirent { uint64_t d_ino; int64_t d_off; unsigned short d_reclen; unsigned char d_type; char d_name[256]; };
  void *opendir(const char *name);
  struct jr_migrate_dirent *readdir(void *dir);
  int closedir(void *dir);
]])
local C = ffi.C
local DT_DIR = 4

-- Names of the entries of dir (no "." / ".." / subdirectories), or nil,
-- err, "not_found".
local function list_dir(dir)
  local d = C.opendir(dir)
  if d == nil then return nil, format("migrations directory %q not found or not readable", dir), "not_found" end
  local out = {}
  while true do
    local e = C.readdir(d)
    if e == nil then break end
    if e.d_type ~= DT_DIR then
      local name = ffi.string(e.d_name)
      if name ~= "." and name ~= ".." then out[#out + 1] = name end
    end
  end
  C.closedir(d)
  return out
end
M.list_dir = list_dir

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

local FNV_OFFSET = ffi.new("uint64_t", 14695981039346656037ULL)
local FNV_PRIME = ffi.new("uint64_t", 1099511628211ULL)
local bxor, tohex, byte = bit.bxor, bit.tohex, string.byte

--- "fnv1a64:<16 hex digits>" of a string.
function M.checksum(s)
  local h = FNV_OFFSET
  for i = 1, #s do h = bxor(h, byte(s, i)) * FNV_PRIME end
  return "fnv1a64:" .. tohex(h, 16)
end

--- The migration files of dir, sorted by version:
--- { version, name, file, path, kind = "sql"|"lua", checksum }. nil, err,
--- code: "not_found" (an unreadable directory), "invalid" (a .sql/.lua file
--- without a number, a duplicate number), "error" (a file that cannot be read).
function M.discover(dir)
  local names, err, code = list_dir(dir)
  if not names then return nil, err, code end
  local list, by_version = {}, {}
  for _, file in ipairs(names) do
    local ext = file:match("%.(%w+)$")
    if ext == "sql" or ext == "lua" then
      local num, name = file:match("^(%d+)_(.+)%.%w+$")
      if not num then
        return nil, format("migration file %s/%s must be named NNNN_description.%s (a number, an underscore, a name)",
          dir, file, ext), "invalid"
      end
      local version = tonumber(num)
      if by_version[version] then
        return nil, format("duplicate migration number %d: %s and %s", version, by_version[version].file, file), "invalid"
      end
      local path = dir .. "/" .. file
      local text, rerr = read_file(path)
      if not text then return nil, format("cannot read migration %s: %s", path, tostring(rerr)), "error" end
      local e = { version = version, name = name, file = file, path = path, kind = ext, checksum = M.checksum(text), text = text }
      by_version[version] = e
      list[#list + 1] = e
    end
  end
  sort(list, function(a, b) return a.version < b.version end)
  return list
end

---------------------------------------------------------------------------
-- Logging
---------------------------------------------------------------------------

-- The level of the "applied migration" lines of apply(opts.log). Info for
-- a server (one start, worth a line); `jararaca test` starts apps over and
-- over and sets debug, so `--log-level debug` shows them. Warnings (a file
-- changed after it was applied) stay warnings.
local progress_level = "info"

--- Set the level of the "applied migration ..." lines: "debug" or "info".
function M.set_log_level(level)
  if level ~= "debug" and level ~= "info" then
    error(format("migrate.set_log_level(level): level must be \"debug\" or \"info\", got %s", tostring(level)), 2)
  end
  progress_level = level
end

--- The level of the "applied migration ..." lines.
function M.log_level()
  return progress_level
end

---------------------------------------------------------------------------
-- Database side
---------------------------------------------------------------------------

local function is_busy(code)
  return code == "busy" or code == "locked"
end

-- fn(tx) in a write transaction of its own, again while another process
-- holds the write lock (code "busy"), up to `wait` seconds. fn returns
-- what to return, and whether to commit: result, commit | nil, err, code.
local function in_write_tx(db, wait, fn)
  local database = db.database
  if database == nil then return nil, format("database %q is not open", db.name), "closed" end
  local deadline = sched.clock() + wait
  while true do
    local tx = database:begin("write")
    local ok, r, commit_or_err, code = pcall(fn, tx)
    if not ok then
      tx:rollback()
      error(r, 0)
    end
    if r ~= nil and commit_or_err then
      local cok, cerr, ccode = tx:commit()
      if cok then return r end
      commit_or_err, code = "commit failed: " .. tostring(cerr), ccode
    else
      tx:rollback()
      if r ~= nil then return r end
    end
    if not is_busy(code) or sched.clock() > deadline then return nil, commit_or_err, code end
    sched.sleep(0.05)
  end
end

local function ensure_table(db, wait)
  local ok, err, code = in_write_tx(db, wait, function(tx)
    local done, xerr, xcode = tx:exec_script(CREATE_TABLE)
    if not done then return nil, xerr, xcode end
    return true, true
  end)
  if not ok then return nil, "cannot create the " .. M.TABLE .. " table: " .. tostring(err), code end
  return true
end

-- rows, by version | nil, err, code
local function applied_rows(db)
  local tx = db.database:begin("read")
  local rows, err, code = tx:query("SELECT version, name, applied_at, checksum FROM " .. M.TABLE .. " ORDER BY version")
  tx:commit()
  if not rows then return nil, "cannot read " .. M.TABLE .. ": " .. tostring(err), code end
  local by = {}
  for _, r in ipairs(rows) do by[tonumber(r.version)] = r end
  return rows, by
end

local function utcnow()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

local function null_to_nil(v)
  if v == nil or type(v) == "userdata" then return nil end
  return v
end

-- Compare disk and database: entries with state applied | pending |
-- changed (applied, file differs) | missing (applied, no file).
local function compare(files, rows, by)
  local entries, warnings = {}, {}
  local on_disk = {}
  for _, f in ipairs(files) do
    on_disk[f.version] = true
    local r = by[f.version]
    local e = { version = f.version, name = f.name, file = f.file, path = f.path, kind = f.kind,
      checksum = f.checksum, text = f.text }
    if r then
      e.applied_at = null_to_nil(r.applied_at)
      local sum = null_to_nil(r.checksum)
      if sum and sum ~= f.checksum then
        e.state = "changed"
        warnings[#warnings + 1] = format("migration %s was changed after it was applied (checksum %s, now %s); it is not run again",
          f.file, sum, f.checksum)
      else
        e.state = "applied"
      end
    else
      e.state = "pending"
    end
    entries[#entries + 1] = e
  end
  for _, r in ipairs(rows) do
    local v = tonumber(r.version)
    if not on_disk[v] then
      entries[#entries + 1] = { version = v, name = null_to_nil(r.name), state = "missing",
        applied_at = null_to_nil(r.applied_at) }
      warnings[#warnings + 1] = format("migration %d (%s) is recorded as applied but has no file", v, tostring(null_to_nil(r.name)))
    end
  end
  sort(entries, function(a, b) return a.version < b.version end)
  local current = nil
  for _, e in ipairs(entries) do
    if e.state ~= "pending" and (current == nil or e.version > current) then current = e.version end
  end
  return entries, warnings, current
end

local function migrations_dir(db, opts)
  local dir = opts and opts.dir or db.migrations_dir or db.migrations
  if dir == nil then
    return nil, format("database %q has no migrations directory (option migrations)", db.name), "not_found"
  end
  return dir
end

--- Status of the migrations of a started database:
--- { database, path, dir, entries, warnings, current } | nil, err, code
--- (those of discover, "closed", or the database's).
function M.status(db, opts)
  local dir, derr, dcode = migrations_dir(db, opts)
  if not dir then return nil, derr, dcode end
  local files, ferr, fcode = M.discover(dir)
  if not files then return nil, ferr, fcode end
  local ok, terr, tcode = ensure_table(db, db.busy_timeout + 10)
  if not ok then return nil, terr, tcode end
  local rows, by, rcode = applied_rows(db)
  if not rows then return nil, by, rcode end
  local entries, warnings, current = compare(files, rows, by)
  return { database = db.name, path = db.path, dir = dir, entries = entries, warnings = warnings, current = current }
end

-- true | nil, err, code: "invalid" (it does not load, or returns no
-- function), "error" (it raised or returned false), "aborted".
local function run_lua(db, tx, e)
  local chunk, lerr = loadfile(e.path)
  if not chunk then return nil, lerr, "invalid" end
  local ok, fn = pcall(chunk)
  if not ok then return nil, tostring(fn), "error" end
  if type(fn) ~= "function" then
    return nil, "a Lua migration must return function(session), it returned " .. type(fn), "invalid"
  end
  local s = session_mod.new_session(db, tx)
  local ok2, r, rerr = pcall(fn, s)
  s.state = "done"
  if not ok2 then return nil, tostring(r), "error" end
  if r == false or (r == nil and rerr ~= nil) then return nil, tostring(rerr or "the migration returned false"), "error" end
  if tx.aborted then return nil, tx.aborted, "aborted" end
  return true
end

-- Apply one migration in its own write transaction. Returns "applied" |
-- "skipped" (another process did it meanwhile) | nil, err, code.
local function apply_one(db, e, lock_wait)
  local res, err, code = in_write_tx(db, lock_wait, function(tx)
    local row, qerr, qcode = tx:first("SELECT version FROM " .. M.TABLE .. " WHERE version = ?", { e.version })
    if qerr then return nil, "cannot lock the database for migrating: " .. tostring(qerr), qcode end
    if row then return "skipped", false end
    local rok, rerr, rcode
    if e.kind == "sql" then
      rok, rerr, rcode = tx:exec_script(e.text)
    else
      rok, rerr, rcode = run_lua(db, tx, e)
    end
    if not rok then return nil, tostring(rerr), rcode end
    local ins, ierr, icode = tx:execute("INSERT INTO " .. M.TABLE .. " (version, name, applied_at, checksum) VALUES (?, ?, ?, ?)",
      { e.version, e.name, utcnow(), e.checksum })
    if not ins then return nil, "cannot record the migration: " .. tostring(ierr), icode end
    return "applied", true
  end)
  if not res then return nil, err, code end
  return res
end

--- Apply the pending migrations of a started database (up to opts.to).
--- opts: to (version), dir, log (log each step, at migrate.log_level()), lock_wait (seconds to wait
--- for another process's migration lock, default 300), on_applied(entry).
--- Returns true, report | nil, err, code, report (report: when a migration
--- failed; codes: those of status, of the failed statement, or run_lua's);
--- report = status + applied (list of entries) + skipped (applied
--- meanwhile by another process) + failed (the entry) + error.
function M.apply(db, opts)
  if opts ~= nil and type(opts) ~= "table" then error("migrate.apply(db, opts): opts must be a table", 2) end
  opts = opts or {}
  local dir, derr, dcode = migrations_dir(db, opts)
  if not dir then return nil, derr, dcode end
  local files, ferr, fcode = M.discover(dir)
  if not files then return nil, ferr, fcode end
  local lock_wait = opts.lock_wait or 300
  if db.database == nil then return nil, format("database %q is not open", db.name), "closed" end
  do
    local ok, terr, tcode = ensure_table(db, lock_wait)
    if not ok then return nil, terr, tcode end
    local rows, by, rcode = applied_rows(db)
    if not rows then return nil, by, rcode end
    local entries, warnings, current = compare(files, rows, by)
    local report = { database = db.name, path = db.path, dir = dir, entries = entries, warnings = warnings,
      current = current, applied = {}, skipped = {} }
    if opts.log then for _, w in ipairs(warnings) do log.warn("database ", db.name, ": ", w) end end
    for _, e in ipairs(entries) do
      if e.state == "pending" and (opts.to == nil or e.version <= opts.to) then
        local t0 = sched.clock()
        local res, err, code = apply_one(db, e, lock_wait)
        if not res then
          report.failed = e
          report.error = err
          return nil, format("migration %s failed: %s", e.path, err), code or "error", report
        end
        e.seconds = sched.clock() - t0
        if res == "applied" then
          e.state = "applied"
          report.applied[#report.applied + 1] = e
          if report.current == nil or e.version > report.current then report.current = e.version end
          if opts.log then
            log[progress_level](format("database %s: applied migration %s (%.0f ms)", db.name, e.file, e.seconds * 1000))
          end
          if opts.on_applied then opts.on_applied(e) end
        else
          e.state = "applied"
          report.skipped[#report.skipped + 1] = e
        end
      end
    end
    return true, report
  end
end

---------------------------------------------------------------------------
-- CLI: jararaca migrate APP.lua [--name NAME] [--status] [--to VERSION]
---------------------------------------------------------------------------

local USAGE = [[
usage: jararaca migrate APP.lua [--name NAME] [--status] [--to VERSION] [--log-level LEVEL]

Applies the pending migrations of the app's databases (every
persistence.SessionInterceptor with a migrations directory, or only --name),
each in its own transaction, in version order.

  --name NAME      only this database (default: all with migrations)
  --status         list the migrations and their state; apply nothing
  --to VERSION     apply pending migrations up to and including VERSION
  --log-level L    debug, info, warn (default), error, off

The app's interceptors are started (so configuration is read as by the
server) and stopped again; nothing is served. Exit codes: 0 done, 1 a
migration or the app failed, 2 bad command line.]]

local function eprint(...)
  io.stderr:write(concat({ ... }, ""), "\n")
end

local function out(...)
  io.stdout:write(concat({ ... }, ""), "\n")
end

local function pad(s, n)
  s = tostring(s)
  if #s >= n then return s end
  return s .. (" "):rep(n - #s)
end

local function print_status(r)
  out(format("database %s: %s (migrations in %s)", r.database, r.path, r.dir))
  if #r.entries == 0 then
    out("  no migrations")
  else
    local w = 4
    for _, e in ipairs(r.entries) do
      local n = #(e.file or e.name or "")
      if n > w then w = n end
    end
    out("  ", pad("version", 8), "  ", pad("file", w), "  ", pad("state", 8), "  applied at")
    for _, e in ipairs(r.entries) do
      local line = concat({ "  ", pad(format("%04d", e.version), 8), "  ", pad(e.file or e.name or "?", w), "  ",
        pad(e.state, 8), "  ", e.applied_at or "" })
      out((line:gsub("%s+$", "")))
    end
  end
  local pending = 0
  for _, e in ipairs(r.entries) do if e.state == "pending" then pending = pending + 1 end end
  out(format("  current version: %s; %d pending", r.current and format("%04d", r.current) or "none", pending))
  for _, warn in ipairs(r.warnings) do eprint("warning: database ", r.database, ": ", warn) end
end

--- `jararaca migrate` (args after the command). Returns an exit code.
function M.cli(args)
  local name, status, to, level = nil, false, nil, "warn"
  local pos = {}
  local i = 1
  args = args or {}
  while i <= #args do
    local a = args[i]
    local opt, val = a:match("^%-%-([%w-]+)=(.*)$")
    opt = opt or a:match("^%-%-([%w-]+)$")
    if a == "-h" or a == "--help" then
      out(USAGE)
      return 0
    elseif opt == "status" and val == nil then
      status = true
    elseif opt == "name" or opt == "to" or opt == "log-level" then
      if val == nil then
        i = i + 1
        val = args[i]
        if val == nil then eprint("jararaca migrate: option --", opt, " needs a value"); return 2 end
      end
      if opt == "name" then
        name = val
      elseif opt == "to" then
        to = tonumber(val)
        if not to or to % 1 ~= 0 or to < 0 then
          eprint("jararaca migrate: --to expects a migration number, got '", val, "'")
          return 2
        end
      else
        level = val
      end
    elseif a:sub(1, 1) == "-" then
      eprint("jararaca migrate: unknown option ", a, " (see jararaca migrate --help)")
      return 2
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  if #pos ~= 1 then
    eprint("jararaca migrate: expected exactly one app file (usage: jararaca migrate APP.lua [--name NAME] [--status] [--to VERSION])")
    return 2
  end
  if status and to then
    eprint("jararaca migrate: --status and --to cannot be combined")
    return 2
  end
  local lok, lerr = log.set { level = level, format = "text" }
  if not lok then eprint("jararaca migrate: ", lerr); return 2 end

  local runtime = require "jararaca.runtime"
  local app, aerr = runtime.load_app(pos[1])
  if not app then eprint("jararaca migrate: ", aerr); return 1 end
  local okrt, rt = pcall(runtime.start, app, "migrate")
  if not okrt then
    eprint("jararaca migrate: startup failed for ", pos[1], ": ", tostring(rt))
    return 1
  end

  local code = 0
  local body_ok, berr = pcall(function()
    local all = session_mod.databases(rt.container)
    local dbs = {}
    if name then
      local db = session_mod.database(rt.container, name)
      if not db then
        local names = {}
        for _, d in ipairs(all) do names[#names + 1] = d.name end
        eprint(format("jararaca migrate: no database named %q in %s (configured: %s)", name, pos[1],
          #names > 0 and concat(names, ", ") or "none"))
        code = 2
        return
      end
      if not db.migrations_dir then
        eprint(format("jararaca migrate: database %q has no migrations directory (SessionInterceptor option migrations)", name))
        code = 2
        return
      end
      dbs[1] = db
    else
      for _, d in ipairs(all) do if d.migrations_dir then dbs[#dbs + 1] = d end end
      if #dbs == 0 then
        eprint("jararaca migrate: ", pos[1], " has no database with migrations (SessionInterceptor{ ..., migrations = \"dir\" })")
        code = 1
        return
      end
      if to and #dbs > 1 then
        eprint("jararaca migrate: --to needs --name when the app has several databases with migrations")
        code = 2
        return
      end
    end
    for _, db in ipairs(dbs) do
      if status then
        local r, err = M.status(db)
        if not r then
          eprint("jararaca migrate: database ", db.name, ": ", err)
          code = 1
          return
        end
        print_status(r)
      else
        local ok, r, _, report = M.apply(db, {
          to = to,
          on_applied = function(e)
            out(format("database %s: applied %s (%.0f ms)", db.name, e.file, (e.seconds or 0) * 1000))
          end,
        })
        local rep = ok and r or report
        if rep then for _, w in ipairs(rep.warnings) do eprint("warning: database ", db.name, ": ", w) end end
        if not ok then
          eprint("jararaca migrate: database ", db.name, ": ", r)
          if rep then
            local done = {}
            for _, e in ipairs(rep.applied) do done[#done + 1] = e.file end
            eprint(format("jararaca migrate: database %s: %s; stopped at %s", db.name,
              #done > 0 and ("applied before the failure: " .. concat(done, ", ")) or "nothing applied",
              rep.failed and rep.failed.file or "?"))
          end
          code = 1
          return
        end
        if #r.applied == 0 then
          out(format("database %s: nothing to apply (current version %s)", db.name,
            r.current and format("%04d", r.current) or "none"))
        else
          out(format("database %s: applied %d migration%s (current version %04d)", db.name, #r.applied,
            #r.applied == 1 and "" or "s", r.current))
        end
      end
    end
  end)
  if not body_ok then
    eprint("jararaca migrate: ", tostring(berr))
    code = 1
  end
  local stopped = rt:stop()
  if not stopped and code == 0 then code = 1 end
  return code
end

return M
