--- jararaca.bus.embedded: a durable message queue in a SQLite file, shared
-- by the processes of one machine (the server publishes, `jararaca worker`
-- processes consume). docs/bus-embedded.md is the user's page.
--
--   local embedded = require "jararaca.bus.embedded"
--   local broker = assert(embedded.open("app.db"))          -- or a jararaca.db database
--   broker:bind("mailer", "user.*.created")                 -- AMQP topic patterns: * one word, # zero or more
--   broker:publish{ { topic = "user.eu.created", body = "{...}", headers = { traceparent = "..." } } }
--   local ds = broker:fetch("mailer", 10, 30)               -- up to 10 deliveries, leased for 30 s
--   broker:ack(ds[1]) / :retry(d, 5) / :nack(d) / :dead_letter(d, "why") / :extend(d, 30)
--   broker:wait("mailer", 1)                                -- true when something may be there
--
-- Every operation is one write transaction on the database's writer
-- (jararaca.db: FIFO turns, group commit; across processes SQLite's file
-- lock), so each is atomic and durable when it returns. Leases are the
-- visibility timeout: a fetched message is hidden until its lease ends,
-- then it is available again; settling it needs the lease's owner and
-- token, so a consumer whose lease was taken over cannot touch the new one.
-- @module jararaca.bus.embedded
local dbmod = require "jararaca.db"
local json = require "jararaca.json"
local csched = require "jararaca.core.sched"
local sched = require "jararaca.sched"
local sys = require "jararaca.core.sys"
local topic_mod = require "jararaca.bus.topic"
local schema = require "jararaca.bus.embedded_schema"
local wake = require "jararaca.bus.embedded_wake"

local type, error, format, pairs, ipairs, setmetatable, getmetatable, pcall, tostring =
  type, error, string.format, pairs, ipairs, setmetatable, getmetatable, pcall, tostring
local floor, huge, min, sort, byte = math.floor, math.huge, math.min, table.sort, string.byte
local c_current = csched.current
local time, random_bytes = sys.time, sys.random_bytes
local matches, pattern_error, topic_error = topic_mod.matches, topic_mod.pattern_error, topic_mod.topic_error
local blob, encode, decode = dbmod.blob, json.encode, json.decode

local M = {}

M.DEFAULT_LEASE = 30          -- seconds a fetched message stays hidden
M.DEFAULT_POLL_INTERVAL = 0.05 -- seconds between two looks at the file in wait()
M.MAX_FETCH = 1000

local OPTIONS = { poll_interval = "number", lease = "number", owner = "string", db = "table" }

local function now_ms() return floor(time() * 1000) end

local function hex_id()
  return (random_bytes(16):gsub(".", function(c) return format("%02x", byte(c)) end))
end

--- A new message id (32 hex digits).
M.new_id = hex_id

local Broker = {}
Broker.__index = Broker
M.Broker = Broker

-- The deliveries fetch returns: data, and a mark that they came from fetch.
local Delivery = {}
Delivery.__index = Delivery
M.Delivery = Delivery

---------------------------------------------------------------------------
-- Opening
---------------------------------------------------------------------------

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("embedded.open(target, opts): opts must be a table, got " .. type(opts), 3) end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if want == nil then error(format("embedded.open(): unknown option %q", tostring(k)), 3) end
    if type(v) ~= want then error(format("embedded.open(): option %s must be a %s, got %s", k, want, type(v)), 3) end
  end
  if opts.poll_interval and not (opts.poll_interval > 0 and opts.poll_interval <= 60) then
    error("embedded.open(): option poll_interval must be a number of seconds in (0, 60]", 3)
  end
  if opts.lease and not (opts.lease > 0 and opts.lease < huge) then
    error("embedded.open(): option lease must be a positive number of seconds", 3)
  end
  return opts
end

-- Open a file ourselves. A sibling process that opens the file at the same
-- moment may make SQLite refuse PRAGMA journal_mode with "busy" at once
-- (no busy handler runs for it): try again for a while.
local function open_file(path, db_opts)
  local o = { path = path }
  for k, v in pairs(db_opts or {}) do if k ~= "path" then o[k] = v end end
  local deadline = sched.clock() + 15
  while true do
    local d, err, code = dbmod.open(o)
    if d or (code ~= "busy" and code ~= "locked") or sched.clock() > deadline then return d, err, code end
    sched.sleep(0.02)
  end
end

--- Open the broker on a SQLite file (a path: it opens and owns a
--- jararaca.db database; opts.db are that database's options) or on an
--- open database (a jararaca.db database, or a started
--- persistence.SessionInterceptor: share the app's, see the docs). Creates
--- or upgrades its tables. Returns the broker | nil, err, code.
--- opts: lease (default 30 s), poll_interval (0.05 s), owner (the name
--- leases are taken under; default host:pid:random), db (for a path).
function M.open(target, opts)
  opts = check_options(opts)
  if not c_current() then error("embedded.open() must be called inside a task", 2) end
  local database, owns
  if type(target) == "string" then
    if target == "" then error("embedded.open(path): the path must not be empty", 2) end
    local err, code
    database, err, code = open_file(target, opts.db)
    if not database then return nil, format("message bus: cannot open %s: %s", target, tostring(err)), code end
    owns = true
  elseif type(target) == "table" and getmetatable(target) == dbmod.Database then
    database = target
  elseif type(target) == "table" and target.database ~= nil and getmetatable(target.database) == dbmod.Database then
    database = target.database -- a started SessionInterceptor (it IS the app's database)
  else
    error("embedded.open(target): target must be a path, a jararaca.db database or a started SessionInterceptor, got "
      .. type(target), 2)
  end
  if opts.db and not owns then error("embedded.open(): option db only applies when opening a path", 2) end
  local ok, err, code = schema.ensure(database)
  if not ok then
    if owns then database:close() end
    return nil, err, code
  end
  return setmetatable({
    db = database, path = database.path, owns = owns, closed = false,
    lease = opts.lease or M.DEFAULT_LEASE, poll_interval = opts.poll_interval or M.DEFAULT_POLL_INTERVAL,
    owner = opts.owner or format("%s:%d:%s", sys.hostname(), sys.pid(), hex_id():sub(1, 8)),
    _routes = { sig = false, by_topic = {} },
  }, Broker)
end

--- Close: local waiters return "closed"; a database the broker opened is
--- closed (one it was given stays open).
function Broker:close()
  if self.closed then return true end
  self.closed = true
  wake.notify(self.path, nil)
  if self.owns then return self.db:close() end
  return true
end

local function closed(self)
  return nil, format("message bus on %s is closed", tostring(self.path)), "closed"
end

-- Run fn(tx, ...) in a write transaction of its own (database:atomically):
-- committed when fn's first result is not nil, rolled back otherwise.
local function in_write(self, fn, ...)
  if self.closed then return closed(self) end
  return self.db:atomically("write", fn, ...)
end

-- Run fn(tx, ...) in a read transaction.
local function in_read(self, fn, ...)
  if self.closed then return closed(self) end
  local tx = self.db:begin("read")
  local ok, a, b, c = pcall(fn, tx, ...)
  tx:commit()
  if not ok then error(a, 0) end
  return a, b, c
end

local function check_name(v, what, where)
  if type(v) ~= "string" or v == "" or #v > topic_mod.MAX_LENGTH then
    error(format("%s: %s must be a non-empty string of at most %d bytes, got %s", where, what, topic_mod.MAX_LENGTH,
      type(v) == "string" and format("%q", v) or type(v)), 3)
  end
end

local function check_seconds(v, what, where, default)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < 0 or v == huge then
    error(format("%s: %s must be a number of seconds >= 0, got %s", where, what, tostring(v)), 3)
  end
  return v
end

---------------------------------------------------------------------------
-- Bindings and routing
---------------------------------------------------------------------------

local function bind_sql(sql)
  return function(self, queue, pattern)
    check_name(queue, "queue", "broker:bind()")
    local perr = pattern_error(pattern)
    if perr then error("broker:bind(): " .. perr, 2) end
    return in_write(self, function(tx)
      local r, err, code = tx:execute(sql, { queue, pattern })
      if not r then return nil, err, code end
      return true
    end)
  end
end

--- Route messages whose topic matches pattern to queue (idempotent).
--- true | nil, err, code.
Broker.bind = bind_sql("INSERT OR IGNORE INTO jr_bus_bindings (queue, pattern) VALUES (?, ?)")
--- Remove that binding (messages already in the queue stay). true | nil, err, code.
Broker.unbind = bind_sql("DELETE FROM jr_bus_bindings WHERE queue = ? AND pattern = ?")

--- The bindings: a list of { queue =, pattern = } | nil, err, code.
function Broker:bindings()
  return in_read(self, function(tx) return tx:query("SELECT queue, pattern FROM jr_bus_bindings ORDER BY queue, pattern") end)
end

-- The queues bound to topic, read in tx (the bindings another process
-- added are seen: they are read in the publishing transaction; the routes
-- computed from them are kept while the bindings stay the same).
local function router(self, tx)
  local rows, err, code = tx:query("SELECT queue, pattern FROM jr_bus_bindings ORDER BY queue, pattern")
  if not rows then return nil, err, code end
  local parts = {}
  for i, r in ipairs(rows) do parts[i] = r.queue .. "\0" .. r.pattern end
  local sig = table.concat(parts, "\1")
  local routes = self._routes
  if routes.sig ~= sig then
    routes = { sig = sig, by_topic = {}, n = 0 }
    self._routes = routes
  end
  return function(topic)
    local qs = routes.by_topic[topic]
    if qs then return qs end
    qs = {}
    local seen = {}
    for _, r in ipairs(rows) do
      if not seen[r.queue] and matches(r.pattern, topic) then
        seen[r.queue] = true
        qs[#qs + 1] = r.queue
      end
    end
    if routes.n < 10000 then -- topics come from code: few; bounded anyway
      routes.by_topic[topic] = qs
      routes.n = routes.n + 1
    end
    return qs
  end
end

---------------------------------------------------------------------------
-- Publishing
---------------------------------------------------------------------------

-- A caller's transaction (a jararaca.db tx, or a persistence session) on
-- this broker's file: written elsewhere, the messages would never be seen.
local function check_tx(self, tx, where)
  if type(tx) ~= "table" or type(tx.execute) ~= "function" then
    error(where .. ": tx must be an open write transaction (database:begin(\"write\")) or a session (use_session())", 3)
  end
  local owner = tx.db
  local path = type(owner) == "table" and (owner.database and owner.database.path or owner.path) or nil
  if path ~= nil and path ~= self.path then
    error(format("%s: tx is a transaction of %s, the broker's messages are in %s", where, tostring(path),
      tostring(self.path)), 3)
  end
end

-- Check and encode the messages before anything is written (misuse
-- raises at the user's line: level 3 from here).
local function prepare(msgs, where)
  if type(msgs) ~= "table" then error(format("%s: msgs must be a list of messages, got %s", where, type(msgs)), 3) end
  if msgs.topic ~= nil then msgs = { msgs } end -- one message
  local out = {}
  for i = 1, #msgs do
    local m = msgs[i]
    if type(m) ~= "table" then error(format("%s: message %d must be a table, got %s", where, i, type(m)), 3) end
    local terr = topic_error(m.topic)
    if terr then error(format("%s: message %d: %s", where, i, terr), 3) end
    if type(m.body) ~= "string" then
      error(format("%s: message %d: body must be a string (bytes), got %s", where, i, type(m.body)), 3)
    end
    local headers = "{}"
    if m.headers ~= nil then
      if type(m.headers) ~= "table" then
        error(format("%s: message %d: headers must be a table, got %s", where, i, type(m.headers)), 3)
      end
      local h, herr = encode(m.headers)
      if not h then error(format("%s: message %d: headers: %s", where, i, herr), 3) end
      headers = h
    end
    if m.id ~= nil and (type(m.id) ~= "string" or m.id == "") then
      error(format("%s: message %d: id must be a non-empty string, got %s", where, i, type(m.id)), 3)
    end
    local delay = m.delay
    if delay ~= nil and (type(delay) ~= "number" or delay ~= delay or delay < 0 or delay == huge) then
      error(format("%s: message %d: delay must be a number of seconds >= 0, got %s", where, i, tostring(delay)), 3)
    end
    if m.at ~= nil and (type(m.at) ~= "number" or m.at ~= m.at or m.at == huge) then
      error(format("%s: message %d: at must be a time in seconds since the epoch, got %s", where, i, tostring(m.at)), 3)
    end
    out[i] = { id = m.id or hex_id(), topic = m.topic, body = blob(m.body), headers = headers,
      delay_ms = delay and floor(delay * 1000) or 0, at_ms = m.at and floor(m.at * 1000) }
  end
  return out
end

local INSERT = [[INSERT INTO jr_bus_messages (id, queue, topic, body, headers, available_at, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)]]

-- Write the rows of the prepared messages in tx: count, touched queues |
-- nil, err, code.
local function insert_all(self, tx, prepared)
  local route, err, code = router(self, tx)
  if not route then return nil, err, code end
  local now = now_ms()
  local n, touched = 0, {}
  for _, m in ipairs(prepared) do
    local avail = now + m.delay_ms
    if m.at_ms and m.at_ms > avail then avail = m.at_ms end
    for _, q in ipairs(route(m.topic)) do
      local r
      r, err, code = tx:execute(INSERT, { m.id, q, m.topic, m.body, m.headers, avail, now })
      if not r then return nil, err, code end
      n = n + 1
      touched[q] = true
    end
  end
  return n, touched
end

--- Publish msgs (a list of { topic =, body = bytes, headers = {}, id =,
--- delay = seconds, at = epoch seconds }, or one such table) in one write
--- transaction: each goes to every queue bound to its topic (none bound:
--- it is dropped, as AMQP drops unroutable messages). Durable when it
--- returns. The number of queue rows written | nil, err, code.
function Broker:publish(msgs)
  local prepared = prepare(msgs, "broker:publish()")
  local n, touched, code = in_write(self, function(tx) return insert_all(self, tx, prepared) end)
  if n == nil then return nil, touched, code end
  for q in pairs(touched) do wake.notify(self.path, q) end
  return n
end

--- Publish msgs inside the caller's open write transaction tx (a
--- jararaca.db transaction, or a persistence session: use_session()): they
--- exist when, and only if, tx commits. Inside a savepoint, so a failure
--- leaves none of them in tx. After tx commits, broker:notify() wakes this
--- process's waiters at once (others see them at their next poll).
--- The number of queue rows written | nil, err, code.
function Broker:publish_in(tx, msgs)
  check_tx(self, tx, "broker:publish_in(tx, msgs)")
  local prepared = prepare(msgs, "broker:publish_in()")
  if self.closed then return closed(self) end
  local ok, err, code = tx:execute("SAVEPOINT jr_bus_publish")
  if not ok then return nil, err, code end
  local n
  n, err, code = insert_all(self, tx, prepared)
  if not n then
    tx:execute("ROLLBACK TO jr_bus_publish")
    tx:execute("RELEASE jr_bus_publish")
    return nil, err, code
  end
  ok, err, code = tx:execute("RELEASE jr_bus_publish")
  if not ok then return nil, err, code end
  return n
end

--- Wake this process's waiters on queue (all queues when nil): after a
--- publish_in's transaction committed.
function Broker:notify(queue)
  wake.notify(self.path, queue)
end

---------------------------------------------------------------------------
-- Consuming
---------------------------------------------------------------------------

-- Lease up to n ready messages: the earliest available first. One
-- statement, so the choice and the lease are one atomic step (and the
-- write transaction holds SQLite's write lock: no other process can lease
-- the same rows in between). An expired lease left available_at at its end:
-- such a message is simply ready again.
local FETCH = [[UPDATE jr_bus_messages
SET available_at = ?3, lease_until = ?3, lease_owner = ?4, lease_token = lease_token + 1, deliveries = deliveries + 1
WHERE seq IN (SELECT seq FROM jr_bus_messages WHERE queue = ?1 AND available_at <= ?2 ORDER BY available_at, seq LIMIT ?5)
RETURNING seq, id, topic, body, headers, attempt, deliveries, lease_token, created_at]]

local function by_seq(a, b) return a.seq < b.seq end

--- Lease up to n (default 1) messages of queue for lease_seconds (default
--- the broker's lease) under owner (default the broker's). A list of
--- deliveries (empty when none is ready) | nil, err, code. A delivery:
--- { id, queue, topic, body, headers, attempt (retries so far),
---   deliveries (fetches so far, this one included), created_at (ms),
---   lease_until (ms), seq, owner, token }.
function Broker:fetch(queue, n, lease_seconds, owner)
  check_name(queue, "queue", "broker:fetch()")
  if n == nil then n = 1 end
  if type(n) ~= "number" or n ~= floor(n) or n < 1 or n > M.MAX_FETCH then
    error(format("broker:fetch(): n must be an integer in 1..%d, got %s", M.MAX_FETCH, tostring(n)), 2)
  end
  lease_seconds = check_seconds(lease_seconds, "lease_seconds", "broker:fetch()", self.lease)
  if owner == nil then owner = self.owner end
  check_name(owner, "owner", "broker:fetch()")
  local now = now_ms()
  local until_ms = now + floor(lease_seconds * 1000)
  local rows, err, code = in_write(self, function(tx)
    return tx:query(FETCH, { queue, now, until_ms, owner, n })
  end)
  if not rows then return nil, err, code end
  local out = {}
  for i, r in ipairs(rows) do
    local headers = decode(r.headers)
    out[i] = setmetatable({
      id = r.id, queue = queue, topic = r.topic, body = r.body, headers = type(headers) == "table" and headers or {},
      attempt = r.attempt, deliveries = r.deliveries, created_at = r.created_at, lease_until = until_ms,
      seq = r.seq, owner = owner, token = r.lease_token,
    }, Delivery)
  end
  sort(out, by_seq)
  return out
end

local function check_delivery(d, where)
  if type(d) ~= "table" or getmetatable(d) ~= Delivery then
    error(format("%s: delivery must be one that broker:fetch() returned, got %s", where, type(d)), 3)
  end
end

local function lost(d, what)
  return nil, format("message %s of queue %q: cannot %s it: its lease was lost (it expired and the message was "
    .. "fetched again, or it was settled already)", d.id, d.queue, what), "lost"
end

local LEASED = " WHERE seq = ? AND lease_owner = ? AND lease_token = ?"

-- Run one statement on d's row under its lease, in tx: true | lost | err.
local function on_lease(tx, d, what, sql, params)
  local n = #params
  params[n + 1], params[n + 2], params[n + 3] = d.seq, d.owner, d.token
  local r, err, code = tx:execute(sql .. LEASED, params)
  if not r then return nil, err, code end
  if r.changes == 0 then return lost(d, what) end
  return true
end

local ACK = "DELETE FROM jr_bus_messages"

--- The message is handled: remove it. true | nil, err, "lost" (another
--- consumer holds it now: it will be handled again) | nil, err, code.
function Broker:ack(d)
  check_delivery(d, "broker:ack()")
  return in_write(self, on_lease, d, "ack", ACK, {})
end

--- ack inside the caller's write transaction tx (the handler's own writes
--- and the ack commit together, or neither). On "lost", roll tx back.
function Broker:ack_in(tx, d)
  check_tx(self, tx, "broker:ack_in(tx, delivery)")
  check_delivery(d, "broker:ack_in()")
  if self.closed then return closed(self) end
  return on_lease(tx, d, "ack", ACK, {})
end

local RELEASE = "UPDATE jr_bus_messages SET attempt = attempt + ?, available_at = ?, lease_until = NULL, lease_owner = NULL"

local function release(self, d, what, delay, inc)
  local ok, err, code = in_write(self, on_lease, d, what, RELEASE, { inc, now_ms() + floor(delay * 1000) })
  if ok and delay == 0 then wake.notify(self.path, d.queue) end
  return ok, err, code
end

--- Give the message back for another try after delay_seconds (default 0),
--- its attempt count one higher. true | nil, err, "lost" | nil, err, code.
function Broker:retry(d, delay_seconds)
  check_delivery(d, "broker:retry()")
  return release(self, d, "retry", check_seconds(delay_seconds, "delay_seconds", "broker:retry()", 0), 1)
end

--- Give the message back now, as it was (attempt unchanged).
function Broker:nack(d)
  check_delivery(d, "broker:nack()")
  return release(self, d, "nack", 0, 0)
end

--- Keep the lease seconds (default the broker's lease) from now.
--- true | nil, err, "lost" | nil, err, code.
function Broker:extend(d, seconds)
  check_delivery(d, "broker:extend()")
  seconds = check_seconds(seconds, "seconds", "broker:extend()", self.lease)
  local until_ms = now_ms() + floor(seconds * 1000)
  local ok, err, code = in_write(self, on_lease, d, "extend the lease of",
    "UPDATE jr_bus_messages SET available_at = ?, lease_until = ?", { until_ms, until_ms })
  if ok then d.lease_until = until_ms end
  return ok, err, code
end

local DEAD = [[INSERT INTO jr_bus_dead (id, queue, topic, body, headers, attempt, deliveries, reason, created_at, died_at)
SELECT id, queue, topic, body, headers, attempt, deliveries, ?, created_at, ? FROM jr_bus_messages]]

--- Move the message to its queue's dead letters, with reason and its
--- original headers. true | nil, err, "lost" | nil, err, code.
function Broker:dead_letter(d, reason)
  check_delivery(d, "broker:dead_letter()")
  if type(reason) ~= "string" then
    error("broker:dead_letter(delivery, reason): reason must be a string, got " .. type(reason), 2)
  end
  return in_write(self, function(tx)
    local ok, err, code = on_lease(tx, d, "dead-letter", DEAD, { reason, now_ms() })
    if not ok then return nil, err, code end
    return on_lease(tx, d, "dead-letter", ACK, {})
  end)
end

---------------------------------------------------------------------------
-- Waiting
---------------------------------------------------------------------------

local NEXT = "SELECT available_at FROM jr_bus_messages WHERE queue = ? ORDER BY available_at LIMIT 1"

--- Return when a message of queue may be ready: true | nil, err, "timeout"
--- (none within timeout seconds; nil: no limit) | nil, err, "closed" | the
--- database's. It looks at the file every poll_interval seconds (and at
--- the time the next delayed message or lease ends, if sooner); a publish
--- or a release by this process wakes it at once. "May": another consumer
--- can take the message first, so fetch and wait again on an empty fetch.
function Broker:wait(queue, timeout)
  check_name(queue, "queue", "broker:wait()")
  if timeout ~= nil then timeout = check_seconds(timeout, "timeout", "broker:wait()") end
  local clock = sched.clock
  local deadline = timeout and clock() + timeout
  while true do
    if self.closed then return closed(self) end
    local seen = wake.generation(self.path, queue)
    local row, err, code = in_read(self, function(tx) return tx:first(NEXT, { queue }) end)
    if err then return nil, err, code end
    local now = now_ms()
    if row and row.available_at <= now then return true end
    if wake.generation(self.path, queue) ~= seen then return true end -- woken while we read
    local slice = self.poll_interval
    if row then slice = min(slice, (row.available_at - now) / 1000) end
    if deadline then
      local left = deadline - clock()
      if left <= 0 then return nil, format("no message in queue %q within %g s", queue, timeout), "timeout" end
      slice = min(slice, left)
    end
    if wake.park(self.path, queue, slice) then
      if self.closed then return closed(self) end
      return true
    end
  end
end

---------------------------------------------------------------------------
-- Counters
---------------------------------------------------------------------------

local STATS = [[SELECT queue, count(*) AS total,
  sum(available_at <= ?1) AS ready,
  sum(available_at > ?1 AND lease_owner IS NULL) AS delayed,
  sum(available_at > ?1 AND lease_owner IS NOT NULL) AS leased
FROM jr_bus_messages GROUP BY queue]]

--- { queues = { [queue] = { total, ready, delayed, leased, dead } },
---   bindings = { { queue, pattern }, ... } } | nil, err, code. (ready
--- includes messages whose lease expired; every queue with a binding,
--- messages or dead letters is listed.)
function Broker:stats()
  return in_read(self, function(tx)
    local queues = {}
    local function q(name)
      local s = queues[name]
      if not s then
        s = { total = 0, ready = 0, delayed = 0, leased = 0, dead = 0 }
        queues[name] = s
      end
      return s
    end
    local rows, err, code = tx:query(STATS, { now_ms() }, { thread = true })
    if not rows then return nil, err, code end
    for _, r in ipairs(rows) do
      local s = q(r.queue)
      s.total, s.ready, s.delayed, s.leased = r.total, r.ready, r.delayed, r.leased
    end
    rows, err, code = tx:query("SELECT queue, count(*) AS n FROM jr_bus_dead GROUP BY queue", nil, { thread = true })
    if not rows then return nil, err, code end
    for _, r in ipairs(rows) do q(r.queue).dead = r.n end
    local binds
    binds, err, code = tx:query("SELECT queue, pattern FROM jr_bus_bindings ORDER BY queue, pattern")
    if not binds then return nil, err, code end
    for _, b in ipairs(binds) do q(b.queue) end
    return { queues = queues, bindings = binds }
  end)
end

-- The dead-letter operations (dlq_stats, dlq_list, dlq_requeue, dlq_purge).
require("jararaca.bus.embedded_dlq").install(Broker, {
  in_read = in_read, in_write = in_write, now_ms = now_ms, check_name = check_name, notify = wake.notify,
})

return M
