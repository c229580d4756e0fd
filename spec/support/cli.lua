-- spec/support/cli.lua: run the jararaca binary to completion.
--
--   local status, stdout, stderr = cli.run({ "server", "--help" }, { env = { K = "v" }, timeout = 30 })
local process = require "jararaca.core.process"
local server = require "spec.support.server"

local M = {}

local function slurp(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  os.remove(path)
  return s
end

--- `jararaca args...`: exit status (nil if it had to be killed after
--- opts.timeout seconds, default 60), stdout, stderr.
function M.run(args, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local argv = { server.bin }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv.stdout, argv.stderr, argv.env = out, err, opts.env
  local p = assert(process.spawn(argv))
  local status = p:wait(opts.timeout or 60)
  if status == nil then
    p:kill("SIGKILL")
    p:wait(5)
  end
  return status, slurp(out), slurp(err)
end

return M
