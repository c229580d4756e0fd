--- jararaca.schedule.store: the scheduler's exclusivity store. At most one
-- claim of each (app, action, tick) ever succeeds, whichever process asks
-- and whenever: that is what makes an exclusive action fire once per tick
-- across scheduler instances (docs/scheduler-store.md).
--
--   local store = require "jararaca.schedule.store"
--   local s, msg, code = store.open(url, app_name [, opts])
--       url: "redis://[[user]:password@]host[:port][/db]" (any number of machines)
--            | "sqlite:///relative/path.db" | "sqlite:////absolute/path.db"
--              (the processes of one machine, sharing the file)
--       opts: timeout (seconds: Redis connect and command timeout, SQLite
--             busy timeout; default 5), clock (a function -> epoch seconds;
--             default the wall clock: tests move it)
--       -> store | nil, msg, "invalid" (the URL) | the backend's codes
--          ("unreachable", "refused", "timeout" for Redis; "busy", ... for SQLite)
--   s:claim(action, tick, holder [, ttl_s [, busy_s]]) -> token | false, why | nil, msg, code
--       tick: epoch seconds of the scheduled fire time (a whole number);
--       holder: who claims (names the process, e.g. host:pid); ttl_s: how
--       long the claim is remembered (default 86400). token: a fencing
--       token, an integer that grows with every claim of the action.
--       false, "taken": not this caller's to run: another claim of that
--       tick won (even one whose holder died without finishing), or the
--       tick is older than the remembered window (max(now, last) - ttl_s),
--       so whether it ran is no longer known and it is not run again.
--       busy_s (allow_overlap = false): false, "busy" when the action's
--       latest run that was not skipped is unfinished and was claimed less
--       than busy_s ago (wherever it runs); the tick is then recorded as
--       "skipped" (consumed: nobody runs it).
--   s:finish(action, tick, token, outcome) -> true | nil, msg, code
--       outcome: "ok" | "failed" | "timeout" | "skipped"; codes: "not_found"
--       (no claim of that tick remembered), "fenced" (the claim has another
--       token: the caller is not its holder), "exists" (finished already)
--   s:last(action) -> tick | nil (never claimed) | nil, msg, code
--   s:runs(action [, since_tick]) -> { { tick, token, holder, outcome,
--       claimed_at, finished_at }, ... } by tick, from since_tick (all by
--       default); outcome and finished_at nil while not finished
--   s:close() -> true
--   store.holder() -> "host:pid:8 hex digits": a holder name unique to this process
--
-- Failures of the store itself (Redis down, a timeout) are nil, msg, code
-- and never a hang: a claim that failed so ran nowhere, or may have been
-- recorded (a timeout after Redis ran it): either way the caller does not
-- run the tick, so a failure can lose a tick but never run one twice.
-- Misuse (a wrong argument type) raises.
-- @module jararaca.schedule.store
local sys = require "jararaca.core.sys"

local type, error, format, tostring, setmetatable, pairs, floor, huge =
  type, error, string.format, tostring, setmetatable, pairs, math.floor, math.huge

local M = {}

M.DEFAULT_TTL = 86400
M.DEFAULT_TIMEOUT = 5
M.MAX_NAME = 512
M.OUTCOMES = { ok = true, failed = true, timeout = true, skipped = true }

local Store = {}
Store.__index = Store
M.Store = Store

local function check_name(v, what, where)
  if type(v) ~= "string" or v == "" or #v > M.MAX_NAME then
    error(format("%s: %s must be a non-empty string of at most %d bytes, got %s", where, what, M.MAX_NAME,
      type(v) == "string" and format("%q", v) or type(v)), 3)
  end
end

-- A whole number in [min, 2^53].
local function check_whole(v, what, where, min)
  if type(v) ~= "number" or v ~= floor(v) or v < min or v > 2 ^ 53 then
    error(format("%s: %s must be a whole number >= %d, got %s", where, what, min, tostring(v)), 3)
  end
end

local function check_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("store.open(url, app, opts): opts must be a table, got " .. type(opts), 3) end
  for k, v in pairs(opts) do
    if k == "timeout" then
      if type(v) ~= "number" or not (v > 0 and v < huge) then
        error("store.open(): option timeout must be a positive number of seconds, got " .. tostring(v), 3)
      end
    elseif k == "clock" then
      if type(v) ~= "function" then error("store.open(): option clock must be a function, got " .. type(v), 3) end
    else
      error(format("store.open(): unknown option %q (known: timeout, clock)", tostring(k)), 3)
    end
  end
  return opts
end

--- Open the store for app on url. Parks the task until it is ready.
function M.open(url, app, opts)
  if type(url) ~= "string" then error("store.open(url, app): url must be a string, got " .. type(url), 2) end
  check_name(app, "app", "store.open(url, app)")
  opts = check_opts(opts)
  local o = { timeout = opts.timeout or M.DEFAULT_TIMEOUT }
  local backend
  if url:match("^redis://") then
    backend = require "jararaca.schedule.store_redis"
  elseif url:match("^sqlite:") then
    backend = require "jararaca.schedule.store_sqlite"
  else
    return nil, format("scheduler store: unsupported URL (scheme %q): use redis://host:port/db or sqlite:///path.db",
      url:match("^([%w+.-]+):") or "none"), "invalid"
  end
  local impl, msg, code = backend.open(url, app, o)
  if not impl then return nil, "scheduler store: " .. tostring(msg), code end
  return setmetatable({ impl = impl, app = app, where = impl.where, clock = opts.clock or sys.time, closed = false },
    Store)
end

--- A holder name for this process: its host, pid and a random part (a pid
--- is reused after a restart; the random part tells the runs apart).
function M.holder()
  return format("%s:%d:%s", sys.hostname(), sys.pid(),
    (sys.random_bytes(4):gsub(".", function(c) return format("%02x", c:byte()) end)))
end

local function closed(self)
  return nil, format("the scheduler store on %s is closed", self.where), "closed"
end

function Store:claim(action, tick, holder, ttl_s, busy_s)
  local where = "store:claim(action, tick, holder [, ttl_s [, busy_s]])"
  check_name(action, "action", where)
  check_whole(tick, "tick", where, 0)
  check_name(holder, "holder", where)
  if ttl_s ~= nil then check_whole(ttl_s, "ttl_s", where, 1) end
  if busy_s ~= nil and (type(busy_s) ~= "number" or not (busy_s > 0 and busy_s < huge)) then
    error(where .. ": busy_s must be a positive number of seconds, got " .. tostring(busy_s), 2)
  end
  if self.closed then return closed(self) end
  return self.impl:claim(action, tick, holder, ttl_s or M.DEFAULT_TTL, self.clock(), busy_s and floor(busy_s * 1000))
end

function Store:finish(action, tick, token, outcome)
  local where = "store:finish(action, tick, token, outcome)"
  check_name(action, "action", where)
  check_whole(tick, "tick", where, 0)
  check_whole(token, "token", where, 1)
  if not M.OUTCOMES[outcome] then
    error(format("%s: outcome must be \"ok\", \"failed\", \"timeout\" or \"skipped\", got %s", where,
      type(outcome) == "string" and format("%q", outcome) or type(outcome)), 2)
  end
  if self.closed then return closed(self) end
  return self.impl:finish(action, tick, token, outcome, self.clock())
end

function Store:last(action)
  check_name(action, "action", "store:last(action)")
  if self.closed then return closed(self) end
  return self.impl:last(action)
end

function Store:runs(action, since_tick)
  check_name(action, "action", "store:runs(action [, since_tick])")
  if since_tick ~= nil then check_whole(since_tick, "since_tick", "store:runs(action [, since_tick])", 0) end
  if self.closed then return closed(self) end
  return self.impl:runs(action, since_tick or 0)
end

function Store:close()
  if self.closed then return true end
  self.closed = true
  return self.impl:close()
end

function Store:__tostring()
  return format("scheduler store (%s, app %s%s)", self.where, self.app, self.closed and ", closed" or "")
end

return M
