-- jararaca.metrics.admin: the metrics' admin port, a listener of its own
-- serving only GET <path> (Microservice{ metrics = { port = 9464 } },
-- JARARACA_METRICS_PORT).
--
--   local srv, err, code = admin.start(app, { reuseport = workers > 1 })
--   -- false: the app has no admin port; srv:port(); admin.stop(srv)
--
-- It is the server's own HTTP core (jararaca.core.http) with a handler and
-- router of the listener's own, so `jararaca worker` and `jararaca
-- scheduler`, which serve no HTTP, get one too, and a server's app routes
-- are not reachable on it. With --workers N every worker listens on the
-- port (SO_REUSEPORT, as on the app's port) and whichever the kernel picks
-- answers for all of them (jararaca.metrics.workers).
local settings = require "jararaca.metrics.settings"

local M = {}

local NOT_FOUND = '{"detail":"Not Found"}'

--- Listen when the app's metrics have a port: srv | false (no port, or
--- metrics off) | nil, message, code (a bad variable: "invalid"; the port
--- in use: "eaddrinuse"; ...). opts: reuseport.
function M.start(app, opts)
  local cfg, err, code = settings.config(app)
  if not cfg then
    if err then return nil, err, code end
    return false
  end
  if not cfg.port then return false end
  require("jararaca.metrics.builtin").enable()
  local workers = require "jararaca.metrics.workers"
  local ok, werr, wcode = workers.start()
  if not ok then return nil, werr, wcode end
  local text = require "jararaca.metrics.text"
  local router = require("jararaca.core.router").new()
  assert(router:add("GET", cfg.path, 1))
  local function handler(req, id)
    if id then
      local ok2, body = pcall(workers.scrape)
      if ok2 then return req:respond(200, body, text.CONTENT_TYPE) end
      require("jararaca.log").error("metrics: the scrape failed: ", tostring(body))
      return req:respond(500, '{"detail":"Internal Server Error"}', "application/json")
    end
    return req:respond(404, NOT_FOUND, "application/json")
  end
  local srv, lerr, lcode = require("jararaca.core.http").listen {
    host = cfg.host, port = cfg.port, reuseport = opts and opts.reuseport or false,
    handler = handler, router = router,
  }
  if not srv then
    return nil, ("metrics admin port %s:%d: %s"):format(cfg.host, cfg.port, tostring(lerr)), lcode
  end
  require("jararaca.log").info(("metrics on http://%s:%d%s"):format(cfg.host, srv:port(), cfg.path))
  return srv
end

--- Stop the listener (at once: a scrape is short) and leave the mesh.
function M.stop(srv)
  if srv then srv:close() end
  require("jararaca.metrics.workers").stop()
end

return M
