--- jararaca.schedule.store_redis: the scheduler store on Redis (any number
-- of machines). The backend of jararaca.schedule.store, which checks the
-- arguments; each operation is one Lua script (EVAL), so it is atomic on
-- the server whatever other clients do meanwhile.
--
-- Keys, per app and action (both percent-encoded: ":" and "%"):
--   jr:sched:<app>:<action>:token      INCR counter: the fencing tokens (never expires)
--   jr:sched:<app>:<action>:last       the latest tick claimed (never expires, only moves forward)
--   jr:sched:<app>:<action>:active     the latest tick claimed to run (not skipped as busy)
--   jr:sched:<app>:<action>:run:<tick> HASH token, holder, claimed_at, outcome, finished_at
--                                      (ms); expires ttl_s after the claim
--   jr:sched:<app>:<action>:ticks      ZSET of the ticks claimed (score = tick), for runs();
--                                      trimmed to the window at each claim
-- A claim of tick T succeeds iff no run key of T exists and T is within
-- the window (T >= max(now, last) - ttl_s): a run key outlives its window,
-- so a tick is never claimed twice, not even after its holder died.
-- @module jararaca.schedule.store_redis
local redis = require "jararaca.core.redis"

local format, gsub, floor, tonumber, tostring, setmetatable, type =
  string.format, string.gsub, math.floor, tonumber, tostring, setmetatable, type
local null = redis.null

local M = {}

-- KEYS: token, last, ticks, run, active; ARGV: tick, holder, ttl_s, now_ms,
-- busy_ms (0: no busy check), the run keys' prefix.
-- {1, token} | {0} (taken, or older than the window) | {2} (busy: the
-- active run is unfinished and younger than busy_ms; recorded "skipped").
local CLAIM = [[
local tick, ttl, now, busy = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local last = tonumber(redis.call('GET', KEYS[2]) or '')
local newest = math.floor(now / 1000)
if last and last > newest then newest = last end
if tick < newest - ttl then return {0} end
if redis.call('EXISTS', KEYS[4]) == 1 then return {0} end
local skip = false
if busy > 0 then
  local active = tonumber(redis.call('GET', KEYS[5]) or '')
  if active and active < tick then
    local h = redis.call('HMGET', ARGV[6] .. active, 'claimed_at', 'outcome')
    skip = h[1] and not h[2] and tonumber(h[1]) + busy > now
  end
end
local token = redis.call('INCR', KEYS[1])
if skip then
  redis.call('HSET', KEYS[4], 'token', token, 'holder', ARGV[2], 'claimed_at', ARGV[4], 'outcome', 'skipped',
    'finished_at', ARGV[4])
else
  redis.call('HSET', KEYS[4], 'token', token, 'holder', ARGV[2], 'claimed_at', ARGV[4])
  redis.call('SET', KEYS[5], ARGV[1])
end
redis.call('EXPIRE', KEYS[4], ttl)
if not last or tick > last then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('ZADD', KEYS[3], tick, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (tick - ttl))
if skip then return {2} end
return {1, token}
]]

-- KEYS: run; ARGV: token, outcome, now_ms. {1} | {0} (no claim) |
-- {-1, token} (another token) | {-2, outcome} (finished already).
local FINISH = [[
local t = redis.call('HGET', KEYS[1], 'token')
if not t then return {0} end
if t ~= ARGV[1] then return {-1, t} end
local o = redis.call('HGET', KEYS[1], 'outcome')
if o then return {-2, o} end
redis.call('HSET', KEYS[1], 'outcome', ARGV[2], 'finished_at', ARGV[3])
return {1}
]]

-- KEYS: ticks; ARGV: since, the run keys' prefix (the run keys follow from
-- the ticks found, so they cannot all be named in KEYS: standalone Redis,
-- as the whole store assumes). { {tick, token, holder, claimed_at, outcome, finished_at}, ... }
local RUNS = [[
local out = {}
for _, t in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  local h = redis.call('HMGET', ARGV[2] .. t, 'token', 'holder', 'claimed_at', 'outcome', 'finished_at')
  if h[1] then out[#out + 1] = { t, h[1], h[2], h[3], h[4], h[5] } end
end
return out
]]

local Backend = {}
Backend.__index = Backend

local function enc(s)
  return (gsub(s, "[%%:]", function(c) return format("%%%02X", c:byte()) end))
end

local function prefix(self, action)
  return "jr:sched:" .. self.app_key .. ":" .. enc(action) .. ":"
end

local function ms(v)
  if v == nil or v == null then return nil end
  return tonumber(v) / 1000
end

--- The backend on url (a redis:// URL), or nil, msg, code.
function M.open(url, app, opts)
  local timeout_ms = floor(opts.timeout * 1000)
  local c, msg, code = redis.connect(url, { timeout_ms = timeout_ms, connect_timeout_ms = timeout_ms })
  if not c then return nil, msg, code end
  -- what messages show: never the user or the password
  local where = gsub(url, "^redis://[^@/]*@", "redis://")
  return setmetatable({ c = c, app_key = enc(app), where = where }, Backend)
end

-- A failure of the command, named.
local function failed(self, what, msg, code)
  return nil, format("%s on %s: %s", what, self.where, tostring(msg)), code
end

function Backend:claim(action, tick, holder, ttl, now, busy_ms)
  local p = prefix(self, action)
  local r, msg, code = self.c:command("EVAL", CLAIM, 5, p .. "token", p .. "last", p .. "ticks",
    p .. "run:" .. format("%d", tick), p .. "active", tick, holder, ttl, floor(now * 1000), busy_ms or 0, p .. "run:")
  if not r then return failed(self, "claim", msg, code) end
  if r[1] == 1 then return r[2] end
  return false, r[1] == 2 and "busy" or "taken"
end

function Backend:finish(action, tick, token, outcome, now)
  local run = prefix(self, action) .. "run:" .. format("%d", tick)
  local r, msg, code = self.c:command("EVAL", FINISH, 1, run, token, outcome, floor(now * 1000))
  if not r then return failed(self, "finish", msg, code) end
  if r[1] == 1 then return true end
  if r[1] == 0 then
    return nil, format("action %q has no claim of tick %d remembered", action, tick), "not_found"
  elseif r[1] == -1 then
    return nil, format("action %q: tick %d was claimed with token %s, not %d", action, tick, r[2], token), "fenced"
  end
  return nil, format("action %q: tick %d finished already (%s)", action, tick, r[2]), "exists"
end

function Backend:last(action)
  local v, msg, code = self.c:command("GET", prefix(self, action) .. "last")
  if v == nil and msg then return failed(self, "last", msg, code) end
  return v and tonumber(v)
end

function Backend:runs(action, since)
  local p = prefix(self, action)
  local r, msg, code = self.c:command("EVAL", RUNS, 1, p .. "ticks", since, p .. "run:")
  if not r then return failed(self, "runs", msg, code) end
  local out = {}
  for i = 1, #r do
    local e = r[i]
    local outcome = e[5]
    out[i] = {
      tick = tonumber(e[1]), token = tonumber(e[2]), holder = e[3], claimed_at = ms(e[4]),
      outcome = type(outcome) == "string" and outcome or nil, finished_at = ms(e[6]),
    }
  end
  return out
end

function Backend:close()
  self.c:close()
  return true
end

return M
