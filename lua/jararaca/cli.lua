-- jararaca.cli: the command line. The C main() runs cli.run(argv) as the
-- first task; each command returns an exit code.
--
--   jararaca server app.lua [--host H] [--port P] [--workers N|auto] [--scheduler] [...]
--   jararaca worker app.lua [--handlers a,b] [--groups g] [--prefetch N] [--grace-period S]
--                           [--workers N|auto] [--broker-url URL]
--   jararaca scheduler app.lua [--actions a,b] [--groups g] [--grace-period S]
--   jararaca dlq stats|list|requeue|purge app.lua [...]   (jararaca.bus.dlq_cli)
--   jararaca declare app.lua                              (jararaca.bus.declare_cli)
--   jararaca test [path ...] [--log-level L] [busted options]
--   jararaca version | --version
--   jararaca help [COMMAND] | --help; jararaca COMMAND --help
-- Every server option can also come from the environment: --max-body-size
-- is JARARACA_MAX_BODY_SIZE, --port is JARARACA_PORT, and so on. The
-- command line wins over the environment.
local sys = require "jararaca.core.sys"
local log = require "jararaca.log"
require "jararaca.sched" -- installs the task trampoline before the first task

local M = {}

local function eprint(...)
  io.stderr:write(table.concat({ ... }, ""), "\n")
end

-- name, kind ("string" | "int" | "number" | "flag" | "workers" | "choice"), default, help, choices,
-- metavar (the value's name in the help text, when not the kind's), false when the environment does
-- not give it (else JARARACA_<NAME> does)
local SERVER_OPTIONS = {
  { "host", "string", "0.0.0.0", "address to listen on" },
  { "port", "int", 8000, "TCP port" },
  { "workers", "workers", 1, "worker processes (a number or 'auto' = one per core); >1 pre-forks with SO_REUSEPORT" },
  { "log-level", "choice", "info", "debug, info, warn, error or off", { "debug", "info", "warn", "error", "off" } },
  { "log-format", "choice", "text", "text or json (one JSON object per line)", { "text", "json" } },
  { "access-log", "flag", false, "log one line per response" },
  { "grace-period", "number", 30, "seconds in-flight requests get to finish on SIGTERM/SIGINT" },
  { "max-body-size", "int", 1048576, "largest request body in bytes (413 above)" },
  { "max-header-size", "int", 16384, "largest request line + headers in bytes (431 above)" },
  { "max-headers", "int", 100, "most header fields in a request (431 above)" },
  { "header-timeout", "number", 10, "seconds a client gets to send a request's headers (408 after)" },
  { "body-timeout", "number", 30, "seconds a client gets to send a request's body (408 after)" },
  { "idle-timeout", "number", 60, "seconds an idle keep-alive connection is kept" },
  { "write-timeout", "number", 30, "seconds a response may take to be written" },
  { "max-connections", "int", 10000, "open connections per worker (503 above)" },
  { "worker-timeout", "number", 30, "seconds a worker's event loop may stall before it is replaced (0 = off)" },
  { "scheduler", "flag", false, "also fire the app's scheduled actions (all of them), as `jararaca scheduler` does" },
}

-- `jararaca worker` (jararaca.bus.worker): "" = every handler / group, 0 =
-- each handler's own prefetch.
local WORKER_OPTIONS = {
  { "handlers", "string", "", "comma-separated handler names to run (default: all)", nil, "HANDLERS" },
  { "groups", "string", "", "comma-separated handler groups to run (default: all)", nil, "GROUPS" },
  { "prefetch", "int", 0, "deliveries each handler fetches and runs at once (default: each handler's prefetch)" },
  { "workers", "workers", 1, "worker processes (a number or 'auto' = one per core), pre-forked under a master" },
  -- No variable of its own: the environment's way is the bus's JARARACA_BUS_URL (jararaca.bus.settings
  -- reads it, and reports a bad one under its name), which this option overrides.
  { "broker-url", "string", "", "the broker, winning over JARARACA_BUS_URL and Microservice.bus.url "
    .. "(default: theirs)", nil, "URL", false },
  { "grace-period", "number", 30, "seconds in-flight handlers get to finish on SIGTERM/SIGINT" },
  { "log-level", "choice", "info", "debug, info, warn, error or off", { "debug", "info", "warn", "error", "off" } },
  { "log-format", "choice", "text", "text or json (one JSON object per line)", { "text", "json" } },
}

-- `jararaca scheduler` (jararaca.schedule.scheduler): "" = every action / group.
local SCHEDULER_OPTIONS = {
  { "actions", "string", "", "comma-separated scheduled action names to run (default: all)", nil, "ACTIONS" },
  { "groups", "string", "", "comma-separated action groups to run (default: all)", nil, "GROUPS" },
  { "grace-period", "number", 30, "seconds running actions get to finish on SIGTERM/SIGINT" },
  { "log-level", "choice", "info", "debug, info, warn, error or off", { "debug", "info", "warn", "error", "off" } },
  { "log-format", "choice", "text", "text or json (one JSON object per line)", { "text", "json" } },
}

local function env_name(spec)
  if spec[7] == false then return nil end
  return "JARARACA_" .. spec[1]:upper():gsub("-", "_")
end

local function convert(spec, raw, origin)
  local name, kind, _, _, choices = spec[1], spec[2], spec[3], spec[4], spec[5]
  if kind == "string" then return raw end
  if kind == "flag" then
    if raw == true or raw == "1" or raw == "true" or raw == "yes" then return true end
    if raw == "0" or raw == "false" or raw == "no" or raw == "" then return false end
    return nil, ("%s: expected true/false, got '%s'"):format(origin, tostring(raw))
  end
  if kind == "choice" then
    for _, c in ipairs(choices) do if c == raw then return raw end end
    return nil, ("%s: expected one of %s, got '%s'"):format(origin, table.concat(choices, ", "), raw)
  end
  if kind == "workers" and raw == "auto" then return sys.nproc() end
  local n = tonumber(raw)
  if not n or n < 0 or ((kind == "int" or kind == "workers") and n ~= math.floor(n)) then
    return nil, ("%s: expected a %s, got '%s'"):format(origin,
      kind == "number" and "non-negative number" or "non-negative integer", tostring(raw))
  end
  if kind == "workers" and n < 1 then return nil, origin .. ": expected at least 1 worker" end
  if name == "port" and n > 65535 then return nil, origin .. ": port must be 0..65535" end
  if name == "worker-timeout" and n > 0 and n < 0.1 then
    return nil, origin .. ": expected 0 (off) or at least 0.1 seconds"
  end
  return n
end

--- Parse server options from argv (after the command) and the environment.
--- Returns opts, positional or nil, nil, err.
function M.parse_options(args, specs, env)
  env = env or os.getenv
  local by_name = {}
  for _, s in ipairs(specs) do by_name[s[1]] = s end
  local opts, positional, given = {}, {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a:sub(1, 2) == "--" and #a > 2 then
      local name, value = a:sub(3):match("^([^=]+)=(.*)$")
      name = name or a:sub(3)
      local spec = by_name[name]
      if not spec then return nil, nil, ("unknown option --%s (see jararaca --help)"):format(name) end
      if spec[2] == "flag" then
        value = value or true
      elseif value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, nil, ("option --%s needs a value"):format(name) end
      end
      local v, err = convert(spec, value, "--" .. name)
      if v == nil then return nil, nil, err end
      opts[name] = v
      given[name] = true
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  for _, s in ipairs(specs) do
    if not given[s[1]] then
      local raw = env_name(s) and env(env_name(s))
      if raw ~= nil and raw ~= "" then
        local v, err = convert(s, raw, env_name(s))
        if v == nil then return nil, nil, err end
        opts[s[1]] = v
      else
        opts[s[1]] = s[3]
      end
    end
  end
  return opts, positional
end

-- ---- help: `jararaca --help`, `jararaca help CMD`, `jararaca CMD --help` ----

local COMMANDS = {
  { "server", "APP.lua [options]", "serve the app's HTTP controllers" },
  { "gen-tsi", "APP.lua OUT.ts | --stdout", "TypeScript types + a client per controller" },
  { "migrate", "APP.lua [options]", "apply (or list) the app's database migrations" },
  { "test", "[PATH...] [options]", "run busted specs inside the runtime (default: spec/)" },
  { "version", "", "print the version and where the framework's Lua files are" },
  { "help", "[COMMAND]", "this text, or a command's usage and options" },
  { "worker", "APP.lua [options]", "run the app's message-bus handlers (IncomingHandler)" },
  { "dlq", "ACTION APP.lua [options]", "dead letters of the handlers: stats, list, requeue, purge" },
  { "declare", "APP.lua", "declare the app's message-bus topology on RabbitMQ" },
  { "scheduler", "APP.lua [options]", "fire the app's scheduled actions (ScheduledAction)" },
}

local function usage()
  local lines = {
    "jararaca " .. sys.version .. " - microservices in Lua on a C core",
    "",
    "usage:",
  }
  for _, c in ipairs(COMMANDS) do
    lines[#lines + 1] = ("  jararaca %-34s %s"):format(c[1] .. (c[2] ~= "" and (" " .. c[2]) or ""), c[3])
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "`jararaca COMMAND --help` (or `jararaca help COMMAND`) shows a command's options."
  return table.concat(lines, "\n")
end

-- What a server option's value looks like, for the help text (a choice:
-- the option name's last word, "--log-format FORMAT").
local METAVAR = { string = "ADDR", int = "N", number = "SECONDS", workers = "N|auto" }

-- "  --flag VALUE   text" with text wrapped at 88 columns under its column.
local function option_line(lines, flag, text)
  local indent, width = 29, 88
  local line = ("  %-26s "):format(flag)
  if #line > indent then
    lines[#lines + 1] = line
    line = (" "):rep(indent)
  end
  for word in text:gmatch("%S+") do
    if #line + #word > width and #line > indent then
      lines[#lines + 1] = line:gsub("%s+$", "")
      line = (" "):rep(indent)
    end
    line = line .. word .. " "
  end
  lines[#lines + 1] = line:gsub("%s+$", "")
end

local function options_help(lines, specs)
  for _, s in ipairs(specs) do
    local flag = s[2] == "flag" and ("--" .. s[1])
      or ("--%s %s"):format(s[1], s[6] or METAVAR[s[2]] or s[1]:match("[^-]+$"):upper())
    local text = s[4]
    if not text:find("(default:", 1, true) then text = ("%s (default: %s)"):format(text, tostring(s[3])) end
    option_line(lines, flag, text)
  end
  option_line(lines, "-h, --help", "this text")
  return table.concat(lines, "\n")
end

local function server_help()
  return options_help({
    "usage: jararaca server APP.lua [options]",
    "",
    "Serves the HTTP controllers of APP.lua (a file returning jararaca.Microservice{...}):",
    "runs the interceptors' startup, listens, and on SIGTERM or SIGINT stops accepting,",
    "gives requests in flight the grace period, then runs the interceptors' shutdown.",
    "With --scheduler it also fires the app's scheduled actions, as `jararaca scheduler` does",
    "(the same store: each exclusive tick runs once, also with --workers N; docs/scheduler.md).",
    "",
    "options (each also from the environment: --port is JARARACA_PORT, --max-body-size is",
    "JARARACA_MAX_BODY_SIZE, ...; the command line wins):",
  }, SERVER_OPTIONS)
end

local function worker_help()
  return options_help({
    "usage: jararaca worker APP.lua [options]",
    "",
    "Runs the message-bus handlers (IncomingHandler) of APP.lua: runs the interceptors'",
    "startup, consumes each selected handler's queue, and on SIGTERM or SIGINT stops",
    "fetching, gives handlers in flight the grace period, releases what it fetched and did",
    "not start, then runs the interceptors' shutdown and exits 0. The broker: --broker-url,",
    "else JARARACA_BUS_URL, else Microservice{ bus = { url = ... } } (docs/bus.md).",
    "--workers N pre-forks N such processes under a master, as `jararaca server` does: it",
    "relays SIGTERM/SIGINT, restarts a worker that dies, exits 0 when all stopped cleanly.",
    "Metrics (Microservice{ metrics = ... }) are served on the admin port only:",
    "metrics.port or JARARACA_METRICS_PORT (docs/metrics.md).",
    "",
    "options (each also from the environment: --prefetch is JARARACA_PREFETCH, ...;",
    "the command line wins):",
  }, WORKER_OPTIONS)
end

local function scheduler_help()
  return options_help({
    "usage: jararaca scheduler APP.lua [options]",
    "",
    "Fires the scheduled actions (ScheduledAction) of APP.lua on their cron schedules: runs the",
    "interceptors' startup, then runs each selected action at its ticks, each run a transaction.",
    "An exclusive action (the default) runs once per tick across all scheduler processes: each",
    "tick is claimed in the store, Microservice{ scheduler = { store = ... } } or",
    "JARARACA_SCHEDULER_STORE (default: <app name>.scheduler.db next to the app's database).",
    "On SIGTERM or SIGINT it stops firing, gives running actions the grace period, then runs",
    "the interceptors' shutdown and exits 0 (docs/scheduler.md). Metrics are served on the",
    "admin port only: metrics.port or JARARACA_METRICS_PORT (docs/metrics.md).",
    "",
    "options (each also from the environment: --actions is JARARACA_ACTIONS, ...;",
    "the command line wins):",
  }, SCHEDULER_OPTIONS)
end

local TEST_HELP = [[
usage: jararaca test [PATH...] [options]

Runs busted specs inside the jararaca runtime: specs run in a task, so they may
wait (jararaca.sleep, database calls), start servers and call apps through
jararaca.testing's in-process client. PATH: spec files or directories (default:
spec/); in directories, files named *_spec.lua are run. docs/testing.md has the guide.

options:
  --log-level LEVEL      debug, info (default), warn, error or off (also JARARACA_LOG_LEVEL).
                         Under `jararaca test` the apps' migrations log at debug: use
                         --log-level debug to see them
  --filter=PATTERN       only tests whose full name matches the Lua pattern
  --filter-out=PATTERN   not the tests whose full name matches
  -t, --tags=TAGS        only tests tagged #TAG (comma-separated); --exclude-tags=TAGS
  -o, --output=FORMAT    utfTerminal (default), plainTerminal, TAP, json, junit
  -l, --list             list the tests' names instead of running them
  -v, --verbose          verbose output of errors
  --shuffle, --seed=N    random order (reproducible with --seed)
  -p, --pattern=PATTERN  which files in a directory are specs (default: _spec)
  -h, --help             this text
Other busted options are passed to busted as they are. Exit codes: 0 every test
passed; 1 a test failed or errored, or busted refused an option; 2 a bad --log-level.]]

local VERSION_HELP = [[
usage: jararaca version   (or jararaca --version)

Prints the version, the directory the framework's Lua files are loaded from, and the
LuaJIT version.]]

local HELP = {
  server = server_help,
  test = function() return TEST_HELP end,
  version = function() return VERSION_HELP end,
  help = usage,
  worker = worker_help,
  dlq = function() return require("jararaca.bus.dlq_cli").USAGE end,
  declare = function() return require("jararaca.bus.declare_cli").USAGE end,
  scheduler = scheduler_help,
}

local function wants_help(args)
  for _, a in ipairs(args) do
    if a == "--help" or a == "-h" then return true end
  end
  return false
end

-- `jararaca help CMD` / `jararaca CMD --help`. gen-tsi and migrate keep
-- their usage next to their code and print it themselves.
local function command_help(cmd)
  if cmd == "gen-tsi" then return require("jararaca.tsgen").cli({ "--help" }) end
  if cmd == "migrate" then return require("jararaca.persistence.migrate").cli({ "--help" }) end
  local h = HELP[cmd]
  if not h then
    eprint(("jararaca help: unknown command '%s' (see jararaca --help)"):format(tostring(cmd)))
    return 2
  end
  print(h())
  return 0
end

local function listen_options(o)
  return {
    host = o.host, port = o.port, reuseport = o.workers > 1,
    access_log = o["access-log"],
    max_body_size = o["max-body-size"], max_header_size = o["max-header-size"],
    max_headers = o["max-headers"],
    header_timeout_ms = o["header-timeout"] * 1000, body_timeout_ms = o["body-timeout"] * 1000,
    idle_timeout_ms = o["idle-timeout"] * 1000, write_timeout_ms = o["write-timeout"] * 1000,
    max_connections = o["max-connections"],
  }
end

-- What the watchdog's log line names when this worker's loop is stuck
-- (called on the stuck coroutine): the request it serves, and its id.
local function stuck_in()
  local ctx = require("jararaca.context").current()
  if not ctx then return "code outside any task" end
  local req = ctx.request
  if ctx.kind == "http" and req then
    local c = ctx.controller
    return ("%s %s (%s.%s)"):format(tostring(req.method), tostring(req.path),
      tostring(type(c) == "table" and c.__name or c), tostring(ctx.member)), ctx.request_id
  end
  return ("a %s task"):format(tostring(ctx.kind))
end

-- What `server` and `worker` start with: their options, the log, the app
-- file. opts, app, path | nil, exit code (the error printed).
local function open_app(cmd, args, specs)
  local o, pos, err = M.parse_options(args, specs)
  if not o then eprint("jararaca ", cmd, ": ", err); return nil, 2 end
  local ok, lerr = log.set { level = o["log-level"], format = o["log-format"] }
  if not ok then eprint("jararaca ", cmd, ": ", lerr); return nil, 2 end
  if #pos ~= 1 then
    eprint(("jararaca %s: expected exactly one app file (usage: jararaca %s app.lua [options])"):format(cmd, cmd))
    return nil, 2
  end
  local app, aerr = require("jararaca.runtime").load_app(pos[1])
  if not app then eprint("jararaca ", cmd, ": ", aerr); return nil, 1 end
  return o, app, pos[1]
end

-- Start the scheduler's timers in a started runtime (`scheduler`, and
-- `server --scheduler`): scheduler | nil, exit code (the error logged:
-- 2 for a selection or an app that has nothing to run, else 1).
local function start_scheduler(rt, path, selection)
  local scheduler = require "jararaca.schedule.scheduler"
  local s, serr, scode = scheduler.start(rt, selection)
  if not s then
    log.error("startup failed for ", path, ": ", tostring(serr))
    return nil, scode == "invalid" and 2 or 1
  end
  -- (a Redis URL's password is never logged)
  local store = tostring(require("jararaca.schedule").store_url(rt.container, rt.app)):gsub("//[^@/]*@", "//")
  log.info(("scheduler started (pid %d, store %s)"):format(sys.pid(), store))
  return s
end

-- The metrics' admin port (Microservice.metrics.port): srv | false (none)
-- | nil (the error logged, naming the field or variable, or the port in use).
-- cmd: "worker" or "scheduler", which have no other place to serve them.
local function start_metrics_port(app, path, workers, cmd)
  local srv, err = require("jararaca.metrics.admin").start(app, { reuseport = (workers or 1) > 1 })
  if srv == nil then log.error("startup failed for ", path, ": ", tostring(err)) end
  if srv == false and cmd and require("jararaca.metrics.settings").config(app) then
    log.warn("metrics: `jararaca ", cmd, "` serves them only on an admin port, and none is set ",
      "(Microservice.metrics.port or JARARACA_METRICS_PORT; docs/metrics.md)")
  end
  return srv
end

-- The scheduler's last log line: what its ticks came to.
local function log_scheduler_counts(c)
  log.info(("stopped: %d ok, %d failed, %d timed out, %d skipped (overlap), %d not ours, %d published, %d missed")
    :format(c.ok, c.failed, c.timeout, c.skipped, c.not_ours, c.published, c.missed))
end

function M.server(args)
  local o, app, path = open_app("server", args, SERVER_OPTIONS)
  if not o then return app end
  local runtime = require "jararaca.runtime"

  -- One worker runs under the master too when the watchdog is on: only
  -- another process can replace a worker whose loop is stuck.
  local worker_timeout = o["worker-timeout"]
  if o.workers > 1 or worker_timeout > 0 then
    local idx, ferr = sys.prefork(o.workers, math.floor((o["grace-period"] + 5) * 1000),
      math.floor(worker_timeout * 1000))
    if not idx then eprint("jararaca server: fork: ", ferr); return 1 end
  end

  -- Watch signals before starting: a SIGTERM that comes while the app
  -- starts (a worker waiting for another's migration lock) is kept and
  -- stops the server as soon as it is up, instead of killing it half-way.
  sys.watch_signals()
  local server = require "jararaca.http.server"
  -- Startup errors name what is wrong (file, provider, variable): print the
  -- message; the framework-internal traceback only at debug level.
  local trace
  local function keep_trace(e)
    trace = debug.traceback(tostring(e), 2)
    return e
  end
  local okrt, rt = xpcall(runtime.start, keep_trace, app, "http")
  if not okrt then
    log.error("startup failed for ", path, ": ", tostring(rt))
    log.debug(trace)
    return 1
  end
  -- The routes (their options, the OpenAPI document) are part of the
  -- start: a bad one is reported the same way, and the app is stopped.
  local okr, rerr = xpcall(server.build_routes, keep_trace, rt)
  if not okr then
    log.error("startup failed for ", path, ": ", tostring(rerr))
    log.debug(trace)
    rt:stop()
    return 1
  end
  local okw, werr = server.start_websockets(rt)
  if not okw then
    log.error("startup failed for ", path, ": ", werr)
    rt:stop()
    return 1
  end
  local srv, serr = server.serve(rt, listen_options(o))
  if not srv then
    log.error("cannot listen: ", serr)
    rt:stop()
    return 1
  end
  local msrv = start_metrics_port(rt.app, path, o.workers)
  if msrv == nil then
    server.shutdown(srv, 0)
    rt:stop()
    return 1
  end
  -- --scheduler: this process also fires the scheduled actions, exactly as
  -- `jararaca scheduler` (the same store: with --workers N every worker
  -- runs the timers and the claim makes each exclusive tick run once).
  -- (a failure is the server's startup failure, exit 1 with or without a
  -- master, whatever the code `jararaca scheduler` gives it)
  local s
  if o.scheduler then
    s = start_scheduler(rt, path, {})
    if not s then
      require("jararaca.metrics.admin").stop(msrv)
      server.shutdown(srv, 0)
      rt:stop()
      return 1
    end
  end
  log.info(("listening on http://%s:%d (pid %d)"):format(o.host, srv:port(), sys.pid()))
  sys.worker_ready(stuck_in)
  local sig = sys.next_signal()
  while sig == "SIGHUP" do sig = sys.next_signal() end
  local grace = o["grace-period"]
  log.info(sig, ": stopping (grace period ", grace, "s)")
  -- The drain and the scheduler's grace period run side by side, so the
  -- whole stop still fits the one grace period the master allows.
  local sstop = s and require("jararaca.sched").spawn(s.stop, s, grace)
  require("jararaca.metrics.admin").stop(msrv)
  server.shutdown(srv, grace)
  local counts = sstop and select(2, sstop:wait())
  sys.unref_signals()
  local stopped = rt:stop()
  if counts then log_scheduler_counts(counts) else log.info("stopped") end
  return stopped and 0 or 1
end

-- `worker` and `scheduler`: start the app's runtime of that kind: rt | nil
-- (the error logged; the framework's traceback at debug level).
local function start_runtime(app, path, kind)
  local trace
  local okrt, rt = xpcall(require("jararaca.runtime").start,
    function(e) trace = debug.traceback(tostring(e), 2); return e end, app, kind)
  if not okrt then
    log.error("startup failed for ", path, ": ", tostring(rt))
    log.debug(trace)
    return nil
  end
  return rt
end

-- Wait for SIGTERM or SIGINT (SIGHUP is ignored) and say that we stop.
local function until_stop_signal(grace)
  local sig = sys.next_signal()
  while sig == "SIGHUP" do sig = sys.next_signal() end
  log.info(sig, ": stopping (grace period ", grace, "s)")
end

--- `jararaca worker app.lua [options]`: the app's message handlers
--- (jararaca.bus.worker) until SIGTERM/SIGINT.
function M.worker(args)
  local o, app, path = open_app("worker", args, WORKER_OPTIONS)
  if not o then return app end
  if o.prefetch > 1000 then eprint("jararaca worker: --prefetch: expected at most 1000, got ", o.prefetch); return 2 end
  local url = o["broker-url"]
  if url ~= "" then
    -- The override reaches the bus the way the environment does (settings
    -- reads JARARACA_BUS_URL, which wins over the app): checked here so a
    -- bad one names --broker-url; inherited by the forked workers.
    local bus_settings = require "jararaca.bus.settings"
    local parsed, perr = bus_settings.parse(url, "--broker-url")
    if not parsed then eprint("jararaca worker: ", perr); return 2 end
    assert(sys.setenv(bus_settings.ENV, url))
  end
  local worker = require "jararaca.bus.worker"
  -- Several workers: the server's master (jararaca.core.sys.prefork, the
  -- same signals, restarts and startup-failure rule); each child consumes
  -- the selected handlers' queues, which the broker shares between them.
  if o.workers > 1 then
    local idx, ferr = sys.prefork(o.workers, math.floor((o["grace-period"] + 5) * 1000), 0)
    if not idx then eprint("jararaca worker: fork: ", ferr); return 1 end
  end
  sys.watch_signals()
  local rt = start_runtime(app, path, "worker")
  if not rt then return 1 end
  -- (before the consumers: the bus metrics count from their first delivery)
  local msrv = start_metrics_port(rt.app, path, o.workers, "worker")
  if msrv == nil then
    rt:stop()
    return 1
  end
  local w, werr, wcode = worker.start(rt, {
    handlers = worker.split(o.handlers), groups = worker.split(o.groups),
    prefetch = o.prefetch > 0 and o.prefetch or nil,
  })
  if not w then
    log.error("startup failed for ", path, ": ", tostring(werr))
    require("jararaca.metrics.admin").stop(msrv)
    rt:stop()
    return wcode == "invalid" and 2 or 1
  end
  log.info(("worker started (pid %d, broker %s)"):format(sys.pid(), rt.bus.settings.url))
  sys.worker_ready() -- under a master: from now on a death is a restart, not a startup failure
  until_stop_signal(o["grace-period"])
  local c = w:stop(o["grace-period"])
  require("jararaca.metrics.admin").stop(msrv)
  sys.unref_signals()
  local stopped = rt:stop()
  log.info(("stopped: %d acked, %d retried, %d dead-lettered, %d released, %d lost (settle failed: back at lease end)")
    :format(c.acked, c.retried, c.dead, c.released, c.lost))
  return stopped and 0 or 1
end

--- `jararaca scheduler app.lua [options]`: the app's scheduled actions
--- (jararaca.schedule.scheduler) until SIGTERM/SIGINT.
function M.scheduler(args)
  local o, app, path = open_app("scheduler", args, SCHEDULER_OPTIONS)
  if not o then return app end
  local scheduler = require "jararaca.schedule.scheduler"
  sys.watch_signals()
  local rt = start_runtime(app, path, "scheduler")
  if not rt then return 1 end
  local msrv = start_metrics_port(rt.app, path, 1, "scheduler")
  if msrv == nil then
    rt:stop()
    return 1
  end
  local s, code = start_scheduler(rt, path,
    { actions = scheduler.split(o.actions), groups = scheduler.split(o.groups) })
  if not s then
    require("jararaca.metrics.admin").stop(msrv)
    rt:stop()
    return code
  end
  until_stop_signal(o["grace-period"])
  local c = s:stop(o["grace-period"])
  require("jararaca.metrics.admin").stop(msrv)
  sys.unref_signals()
  local stopped = rt:stop()
  log_scheduler_counts(c)
  return stopped and 0 or 1
end

function M.test(args)
  -- Our own option (--log-level) is taken out; everything else goes to
  -- busted in the order given (busted's default path is spec/).
  local busted_args, level = {}, nil
  local i = 1
  while i <= #args do
    local a = args[i]
    local v = a:match("^%-%-log%-level=(.*)$")
    if a == "--log-level" then
      i = i + 1
      v = args[i]
      if v == nil then eprint("jararaca test: option --log-level needs a value"); return 2 end
    end
    if v then level = v else busted_args[#busted_args + 1] = a end
    i = i + 1
  end
  if level == nil or level == "" then level = os.getenv("JARARACA_LOG_LEVEL") end
  if level == nil or level == "" then level = "info" end
  local ok, lerr = log.set { level = level }
  if not ok then eprint("jararaca test: --log-level: ", lerr); return 2 end
  -- Apps started by the specs apply migrations on every start: their
  -- progress lines are debug here, not info (warnings stay warnings).
  -- Loaded before busted, whose per-file insulation would otherwise load
  -- the module afresh (at info) for each spec file.
  require("jararaca.persistence.migrate").set_log_level("debug")
  -- busted reads the global `arg`
  rawset(_G, "arg", busted_args)
  busted_args[0] = "jararaca test"
  local runner = require "busted.runner"
  -- A spec that failed before stopping what it started must not leave a
  -- server listening (or any child running) after the run. busted ends a
  -- failed run with os.exit itself, so the sweep runs there too.
  local function sweep()
    local left = require("jararaca.core.process").kill_all("SIGKILL")
    if left > 0 then eprint(("jararaca test: killed %d process(es) the specs left running"):format(left)) end
  end
  local real_exit = os.exit
  os.exit = function(...) sweep(); return real_exit(...) end -- luacheck: ignore 122
  local rok, err = pcall(runner, { standalone = false, output = "utfTerminal" })
  os.exit = real_exit -- luacheck: ignore 122
  sweep()
  if not rok then
    -- busted signals failures by raising (with nil) on Lua 5.1 runtimes
    if err ~= nil then eprint("jararaca test: ", tostring(err)) end
    return 1
  end
  return 0
end

-- command -> function(args after the command) -> exit code
local RUN = {
  server = function(rest) return M.server(rest) end,
  test = function(rest) return M.test(rest) end,
  worker = function(rest) return M.worker(rest) end,
  scheduler = function(rest) return M.scheduler(rest) end,
  dlq = function(rest) return require("jararaca.bus.dlq_cli").main(rest) end,
  declare = function(rest) return require("jararaca.bus.declare_cli").main(rest) end,
  ["gen-tsi"] = function(rest) return require("jararaca.tsgen").cli(rest) end,
  migrate = function(rest) return require("jararaca.persistence.migrate").cli(rest) end,
}

function M.main(args)
  local cmd = args[1]
  local rest = { select(2, unpack(args)) }
  if cmd == nil or cmd == "help" or cmd == "--help" or cmd == "-h" then
    local topic = rest[1] -- `jararaca help server`, also `jararaca --help server`
    if topic ~= nil and topic ~= "--help" and topic ~= "-h" then return command_help(topic) end
    print(usage())
    return cmd == nil and 2 or 0
  elseif cmd == "version" or cmd == "--version" then
    if wants_help(rest) then return command_help("version") end
    print("jararaca " .. sys.version)
    print("lua files: " .. tostring(rawget(package, "jararaca_lua_dir")))
    print(jit and jit.version or _VERSION)
    return 0
  elseif RUN[cmd] then
    if wants_help(rest) then return command_help(cmd) end
    return RUN[cmd](rest)
  end
  eprint(("jararaca: unknown command '%s' (see jararaca --help)"):format(tostring(cmd)))
  return 2
end

--- Entry point called by the C main(): never raises, always exits.
function M.run(args)
  local ok, code = xpcall(M.main, debug.traceback, args)
  if not ok then
    eprint("jararaca: internal error: ", tostring(code))
    code = 70
  end
  io.stdout:flush()
  sys.exit(code or 0)
end

return M
