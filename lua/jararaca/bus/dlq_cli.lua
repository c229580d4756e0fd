--- jararaca.bus.dlq_cli: `jararaca dlq stats|list|purge|requeue app.lua`,
-- the dead letters of an app's handler queues.
--
--   jararaca dlq stats app.lua [--handler NAME] [--json]
--   jararaca dlq list app.lua [--handler NAME] [--limit N] [--json]
--   jararaca dlq requeue app.lua [--handler NAME] (--ids a,b | --all) [--json]
--   jararaca dlq purge app.lua [--handler NAME] (--ids a,b | --all) [--json]
--
-- The app is started as `jararaca worker` starts it (its interceptors, so
-- the broker's default file is found next to its database, and a broker
-- sharing the app's database uses its connection), its bus opened, and
-- the broker's dlq_* calls run on each selected handler's queue. Requeue
-- sends the messages back to their queue with their id, topic, body and
-- headers (a fresh set of retries). Exit codes: 0 done; 1 the app or the
-- broker failed (or --ids matched no dead letter); 2 bad arguments.
-- @module jararaca.bus.dlq_cli
local json = require "jararaca.json"
local log = require "jararaca.log"

local M = {}

local ipairs, tostring, tonumber, format, concat, floor =
  ipairs, tostring, tonumber, string.format, table.concat, math.floor

local ACTIONS = { stats = true, list = true, purge = true, requeue = true }

M.USAGE = [[
usage: jararaca dlq stats|list|requeue|purge APP.lua [options]

The dead letters of APP.lua's message handlers (one dead-letter list per
handler queue, "<app name>.<handler name>"), on the app's broker (Microservice
{ bus = ... } or JARARACA_BUS_URL; docs/bus.md). The app's interceptors start
as for `jararaca worker` (its database opens; migrate_on_start applies).

  stats      count, oldest and newest dead letter of each handler
  list       the oldest dead letters (id, topic, attempts, reason, headers, body)
  requeue    send dead letters back to their handler's queue, with their headers
             and a fresh set of retries (needs --ids or --all)
  purge      delete dead letters (needs --ids or --all)

options:
  --handler NAME   only this handler (default: every handler of the app)
  --limit N        list: at most N per handler (default: 20)
  --ids a,b        requeue/purge: these message ids
  --all            requeue/purge: every dead letter of the selected handlers
  --json           one JSON document on stdout instead of text
  --log-level L    debug, info, warn (default), error or off
  -h, --help       this text
Exit codes: 0 done; 1 the app or its broker failed, or --ids matched nothing;
2 bad arguments.]]

local function eprint(...)
  io.stderr:write("jararaca dlq: ", concat({ ... }, ""), "\n")
end

local function split(list)
  local out = {}
  for id in list:gmatch("[^,%s]+") do out[#out + 1] = id end
  return out
end

--- Parse argv (after `dlq`): opts | nil, message (a usage error).
function M.parse(args)
  local o = { limit = 20, ["log-level"] = "warn" }
  local pos = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if name == "all" or name == "json" then
      if value ~= nil then return nil, "option --" .. name .. " takes no value" end
      o[name] = true
    elseif name == "handler" or name == "limit" or name == "ids" or name == "log-level" then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, "option --" .. name .. " needs a value" end
      end
      o[name] = value
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return nil, "unknown option " .. a .. " (see jararaca dlq --help)"
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  if #pos ~= 2 then
    return nil, "expected an action and one app file (usage: jararaca dlq stats|list|requeue|purge APP.lua [options])"
  end
  o.action, o.app = pos[1], pos[2]
  if not ACTIONS[o.action] then
    return nil, format("unknown action '%s' (expected stats, list, requeue or purge)", o.action)
  end
  local n = tonumber(o.limit)
  if not n or n < 1 or n ~= floor(n) or n > 100000 then
    return nil, format("--limit: expected a whole number in 1..100000, got '%s'", tostring(o.limit))
  end
  o.limit = n
  if o.ids ~= nil then
    o.ids = split(o.ids)
    if #o.ids == 0 then return nil, "--ids: expected comma-separated message ids" end
  end
  local acts = o.action == "requeue" or o.action == "purge"
  if acts then
    if o.ids and o.all then return nil, "--ids and --all cannot be combined" end
    if not o.ids and not o.all then
      return nil, format("%s needs --ids a,b or --all (which dead letters)", o.action)
    end
  elseif o.ids or o.all then
    return nil, format("--ids and --all belong to requeue and purge, not %s", o.action)
  end
  if o.handler == "" then return nil, "--handler: expected a handler name" end
  return o
end

local function iso(ms)
  if ms == nil then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", floor(ms / 1000))
end

local function one_line(s, max)
  s = tostring(s):gsub("[%c]", " ")
  if #s > max then s = s:sub(1, max - 3) .. "..." end
  return s
end

local function header_text(h)
  local keys = {}
  for k in pairs(h) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = k .. "=" .. tostring(h[k]) end
  return concat(parts, " ")
end

-- The actions: each returns the JSON value and the text lines, or nil,
-- message. hs: the selected handlers; b: the broker.
local run = {}

function run.stats(b, hs)
  local out, lines, labels = json.array(), {}, {}
  local width = #"handler (queue)"
  for i, h in ipairs(hs) do
    labels[i] = format("%s (%s)", h.name, h.queue)
    if #labels[i] > width then width = #labels[i] end
  end
  local row = "%-" .. width .. "s %8s  %-20s  %s"
  lines[1] = format(row, "handler (queue)", "dead", "oldest", "newest")
  for i, h in ipairs(hs) do
    local st, err = b:dlq_stats(h.queue)
    if not st then return nil, format("%s: %s", h.queue, tostring(err)) end
    out[#out + 1] = { handler = h.name, queue = h.queue, count = st.count, oldest_at = st.oldest_at,
      newest_at = st.newest_at }
    lines[#lines + 1] = format(row, labels[i], st.count, iso(st.oldest_at), iso(st.newest_at))
  end
  return out, lines
end

function run.list(b, hs, o)
  local out, lines = json.array(), {}
  for _, h in ipairs(hs) do
    local ds, err = b:dlq_list(h.queue, o.limit)
    if not ds then return nil, format("%s: %s", h.queue, tostring(err)) end
    local st = b:dlq_stats(h.queue)
    lines[#lines + 1] = format("%s (%s): %d dead letter(s)%s", h.name, h.queue, st and st.count or #ds,
      st and st.count > #ds and format(", the oldest %d shown", #ds) or "")
    for _, d in ipairs(ds) do
      out[#out + 1] = { handler = h.name, queue = h.queue, id = d.id, topic = d.topic, body = d.body,
        headers = d.headers, attempt = d.attempt, deliveries = d.deliveries, reason = d.reason,
        created_at = d.created_at, died_at = d.died_at }
      lines[#lines + 1] = format("  %s  %s  topic %s  attempts %d", d.id, iso(d.died_at), d.topic, d.attempt + 1)
      lines[#lines + 1] = "    reason:  " .. one_line(d.reason, 200)
      lines[#lines + 1] = "    headers: " .. header_text(d.headers)
      lines[#lines + 1] = "    body:    " .. one_line(d.body, 200)
    end
  end
  return out, lines
end

local function act(verb, call)
  return function(b, hs, o)
    local out, lines, total = {}, {}, 0
    for _, h in ipairs(hs) do
      local n, err = call(b, h.queue, o.all and "all" or o.ids)
      if not n then return nil, format("%s: %s", h.queue, tostring(err)) end
      out[h.name] = n
      total = total + n
      lines[#lines + 1] = format("%s (%s): %s %d dead letter(s)", h.name, h.queue, verb, n)
    end
    if o.ids and total == 0 then
      return nil, format("no dead letter of %s has the id(s) %s", #hs == 1 and hs[1].name or "the app's handlers",
        concat(o.ids, ", "))
    end
    return { action = o.action, handlers = out, total = total }, lines
  end
end

run.requeue = act("requeued", function(b, q, ids) return b:dlq_requeue(q, ids) end)
run.purge = act("purged", function(b, q, ids) return b:dlq_purge(q, ids) end)

-- The started app's broker and selected handlers: b, hs | nil, message, exit code.
local function open(rt, o)
  local bus = require "jararaca.bus"
  local ok, st = pcall(bus.start, rt)
  if not ok then return nil, tostring(st), 1 end
  local hs = {}
  for _, h in ipairs(st.handlers) do
    if o.handler == nil or h.name == o.handler then hs[#hs + 1] = h end
  end
  if #hs == 0 then
    if o.handler == nil then return nil, o.app .. ": the app has no message handlers (IncomingHandler)", 2 end
    local known = {}
    for i, h in ipairs(st.handlers) do known[i] = h.name end
    return nil, format("--handler: no handler named %q (the app's handlers: %s)", o.handler,
      #known > 0 and concat(known, ", ") or "none"), 2
  end
  local b, err = bus.broker(rt.container)
  if not b then return nil, tostring(err), 1 end
  return b, hs
end

--- `jararaca dlq ...`: the exit code.
function M.main(args)
  for _, a in ipairs(args) do
    if a == "-h" or a == "--help" then print(M.USAGE); return 0 end
  end
  local o, perr = M.parse(args)
  if not o then eprint(perr); return 2 end
  local lok, lerr = log.set { level = o["log-level"], format = "text" }
  if not lok then eprint("--log-level: ", lerr); return 2 end
  local runtime = require "jararaca.runtime"
  local app, aerr = runtime.load_app(o.app)
  if not app then eprint(aerr); return 1 end
  local okrt, rt = pcall(runtime.start, app, "dlq")
  if not okrt then eprint("startup failed for ", o.app, ": ", tostring(rt)); return 1 end
  local b, hs, code = open(rt, o)
  local status = 0
  if not b then
    eprint(hs)
    status = code
  else
    local out, lines = run[o.action](b, hs, o)
    if not out then
      eprint(lines)
      status = 1
    elseif o.json then
      local text, jerr = json.encode(out)
      if text then print(text) else eprint("--json: ", tostring(jerr)); status = 1 end
    else
      print(concat(lines, "\n"))
    end
  end
  rt:stop()
  return status
end

return M
