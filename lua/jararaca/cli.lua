-- jararaca.cli: the command line. The C main() runs cli.run(argv) as the
-- first task; each command returns an exit code.
--
--   jararaca server app.lua [--host H] [--port P] [--workers N|auto] [...]
--   jararaca test [path ...] [busted options]
--   jararaca version | --version
--   jararaca help | --help
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

-- name, kind ("string" | "int" | "number" | "flag" | "workers" | "choice"), default, help, choices
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
}

local function env_name(opt) return "JARARACA_" .. opt:upper():gsub("-", "_") end

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
  return n
end

--- Parse server options from argv (after the command) and the environment.
--- Returns opts, positional or nil, err.
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
      local raw = env(env_name(s[1]))
      if raw ~= nil and raw ~= "" then
        local v, err = convert(s, raw, env_name(s[1]))
        if v == nil then return nil, nil, err end
        opts[s[1]] = v
      else
        opts[s[1]] = s[3]
      end
    end
  end
  return opts, positional
end

local function usage()
  local lines = {
    "jararaca " .. sys.version .. " - microservices in Lua on a C core",
    "",
    "usage:",
    "  jararaca server APP.lua [options]   serve the app's HTTP controllers",
    "  jararaca gen-tsi APP.lua OUT.ts      TypeScript types + a client per controller (--stdout to print)",
    "  jararaca migrate APP.lua [--name NAME] [--status] [--to VERSION]",
    "                                       apply (or list) the app's database migrations",
    "  jararaca test [PATH...] [busted options]  run busted specs inside the runtime (default: spec/)",
    "  jararaca version                     print the version",
    "  jararaca help                        this text",
    "",
    "server options (also from the environment, e.g. --port = JARARACA_PORT):",
  }
  for _, s in ipairs(SERVER_OPTIONS) do
    lines[#lines + 1] = ("  --%-18s %s (default: %s)"):format(s[1], s[4], tostring(s[3]))
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Not yet available: worker, scheduler (planned)."
  return table.concat(lines, "\n")
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

function M.server(args)
  local o, pos, err = M.parse_options(args, SERVER_OPTIONS)
  if not o then eprint("jararaca server: ", err); return 2 end
  local ok, lerr = log.set { level = o["log-level"], format = o["log-format"] }
  if not ok then eprint("jararaca server: ", lerr); return 2 end
  if #pos ~= 1 then
    eprint("jararaca server: expected exactly one app file (usage: jararaca server app.lua [options])")
    return 2
  end
  local runtime = require "jararaca.runtime"
  local app, aerr = runtime.load_app(pos[1])
  if not app then eprint("jararaca server: ", aerr); return 1 end

  if o.workers > 1 then
    local idx, ferr = sys.prefork(o.workers, math.floor((o["grace-period"] + 5) * 1000))
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
    log.error("startup failed for ", pos[1], ": ", tostring(rt))
    log.debug(trace)
    return 1
  end
  -- The routes (their options, the OpenAPI document) are part of the
  -- start: a bad one is reported the same way, and the app is stopped.
  local okr, rerr = xpcall(server.build_routes, keep_trace, rt)
  if not okr then
    log.error("startup failed for ", pos[1], ": ", tostring(rerr))
    log.debug(trace)
    rt:stop()
    return 1
  end
  local srv, serr = server.serve(rt, listen_options(o))
  if not srv then
    log.error("cannot listen: ", serr)
    rt:stop()
    return 1
  end
  log.info(("listening on http://%s:%d (pid %d)"):format(o.host, srv:port(), sys.pid()))
  sys.worker_ready()
  local sig = sys.next_signal()
  while sig == "SIGHUP" do sig = sys.next_signal() end
  log.info(sig, ": stopping (grace period ", o["grace-period"], "s)")
  srv:shutdown(o["grace-period"])
  sys.unref_signals()
  local stopped = rt:stop()
  log.info("stopped")
  return stopped and 0 or 1
end

function M.test(args)
  local busted_args = {}
  local paths = {}
  for _, a in ipairs(args) do
    if a:sub(1, 1) == "-" then busted_args[#busted_args + 1] = a else paths[#paths + 1] = a end
  end
  if #paths == 0 then paths[1] = "spec" end
  for _, p in ipairs(paths) do busted_args[#busted_args + 1] = p end
  -- busted reads the global `arg`
  rawset(_G, "arg", busted_args)
  busted_args[0] = "jararaca test"
  local runner = require "busted.runner"
  local ok, err = pcall(runner, { standalone = false, output = "utfTerminal" })
  if not ok then
    -- busted signals failures by raising (with nil) on Lua 5.1 runtimes
    if err ~= nil then eprint("jararaca test: ", tostring(err)) end
    return 1
  end
  return 0
end

function M.main(args)
  local cmd = args[1]
  local rest = { select(2, unpack(args)) }
  if cmd == nil or cmd == "help" or cmd == "--help" or cmd == "-h" then
    print(usage())
    return cmd == nil and 2 or 0
  elseif cmd == "version" or cmd == "--version" then
    print("jararaca " .. sys.version)
    print("lua files: " .. tostring(package.jararaca_lua_dir)) -- luacheck: ignore 143 (set by bindings/vm.c)
    print(jit and jit.version or _VERSION)
    return 0
  elseif cmd == "server" then
    return M.server(rest)
  elseif cmd == "test" then
    return M.test(rest)
  elseif cmd == "gen-tsi" then
    return require("jararaca.tsgen").cli(rest)
  elseif cmd == "migrate" then
    return require("jararaca.persistence.migrate").cli(rest)
  elseif cmd == "worker" or cmd == "scheduler" then
    eprint(("jararaca %s: not available yet in this version"):format(cmd))
    return 2
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
