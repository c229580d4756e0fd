--- jararaca.bus.declare_cli: `jararaca declare app.lua`, the app's topology
-- on RabbitMQ (jararaca.bus.amqp_topology): its exchanges, its dead-letter
-- queue, and one durable queue per handler bound to its topic. Idempotent:
-- run it at every deploy. Workers and servers check it at startup (or
-- declare it themselves with Microservice{ bus = { declare = true } }).
-- With the embedded broker there is nothing to declare (it binds the queues
-- itself at startup): it says so and exits 0.
-- @module jararaca.bus.declare_cli
local log = require "jararaca.log"

local M = {}

local concat, ipairs, tostring, format = table.concat, ipairs, tostring, string.format

M.USAGE = [[
usage: jararaca declare APP.lua [--log-level L]

Declare APP.lua's message-bus topology on its RabbitMQ broker (Microservice
{ bus = { url = "amqp://..." } } or JARARACA_BUS_URL; docs/bus-rabbitmq.md):
the topic exchange "<app>", the exchanges "<app>.retry" and "<app>.dlx", the
dead-letter queue "<app>.dlq", and a durable queue "<app>.<handler>" per
handler, bound to its topic. Safe to run again. The app's interceptors start
as for `jararaca worker`.
Exit codes: 0 declared (or nothing to declare); 1 the app or the broker
failed; 2 bad arguments.]]

local function eprint(...)
  io.stderr:write("jararaca declare: ", concat({ ... }, ""), "\n")
end

function M.main(args)
  local path, level = nil, "warn"
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then print(M.USAGE); return 0 end
    if a == "--log-level" then
      level = args[i + 1]
      i = i + 1
    elseif a:sub(1, 12) == "--log-level=" then
      level = a:sub(13)
    elseif a:sub(1, 1) == "-" then
      eprint("unknown option ", a, " (see --help)"); return 2
    elseif path then
      eprint("expected exactly one app file"); return 2
    else
      path = a
    end
    i = i + 1
  end
  if not path then eprint("expected an app file (usage: jararaca declare app.lua)"); return 2 end
  local lok, lerr = log.set { level = level, format = "text" }
  if not lok then eprint("--log-level: ", lerr); return 2 end
  local runtime = require "jararaca.runtime"
  local app, aerr = runtime.load_app(path)
  if not app then eprint(aerr); return 1 end
  local okrt, rt = pcall(runtime.start, app, "declare")
  if not okrt then eprint("startup failed for ", path, ": ", tostring(rt)); return 1 end
  local bus = require "jararaca.bus"
  local settings = require "jararaca.bus.settings"
  local s, serr = settings.resolve(app, require("jararaca.persistence.session").databases(rt.container))
  local status = 0
  if not s then
    eprint(serr); status = 1
  elseif s.kind ~= "amqp" then
    print(format("%s: the embedded broker (%s) needs nothing declared: its queues are bound at startup", path, s.url))
  else
    local ok, st = pcall(bus.start, rt, { declare = true })
    if not ok then
      eprint(tostring(st)); status = 1
    else
      local names = {}
      for k, h in ipairs(st.handlers) do names[k] = h.queue .. " <- " .. h.topic end
      print(format("declared on %s: exchange %s; dead letters %s.dlq; %d handler queue(s)%s", s.where,
        require("jararaca.bus.controller").app_name(app), require("jararaca.bus.controller").app_name(app),
        #names, #names > 0 and (": " .. concat(names, ", ")) or ""))
    end
  end
  rt:stop()
  return status
end

return M
