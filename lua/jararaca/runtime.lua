-- jararaca.runtime: loading an app file and running its process lifecycle.
--
--   local app, err, code = runtime.load_app("app.lua")
--   local rt = runtime.start(app, "http")   -- container, interceptors' startup, controllers
--   ... serve ...
--   rt:stop()                              -- interceptors' shutdown in reverse order
-- Both start and stop run inside a task, so lifecycle hooks may do I/O.
local di = require "jararaca.di"
local microservice = require "jararaca.microservice"
local interceptors = require "jararaca.interceptors"
local context = require "jararaca.context"
local log = require "jararaca.log"

local M = {}

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

--- Load an app file: it must return a Microservice{...}. The file's directory
--- goes first on package.path so its modules are found.
--- Returns app | nil, message (naming the file, and the line for syntax
--- errors), code: "not_found" (no such file, or not readable), "invalid" (a
--- syntax error; it returns no Microservice), "error" (it raised).
function M.load_app(path)
  if path == nil or path == "" then -- (a command line without one)
    return nil, "no app file given (usage: jararaca server app.lua)", "invalid"
  end
  if type(path) ~= "string" then error("load_app(path): path must be a string, got " .. type(path), 2) end
  local f = io.open(path, "r")
  if not f then
    return nil, ("cannot open app file '%s': no such file or not readable"):format(path), "not_found"
  end
  f:close()
  local dir = dirname(path)
  package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
  local chunk, err = loadfile(path)
  if not chunk then return nil, ("cannot load app file %s"):format(err), "invalid" end
  local ok, app = xpcall(chunk, debug.traceback)
  if not ok then return nil, ("error while running app file %s: %s"):format(path, tostring(app)), "error" end
  if not microservice.is_microservice(app) then
    return nil, ("app file %s must return jararaca.Microservice{...} (it returned %s)"):format(
      path, app == nil and "nothing" or type(app)), "invalid"
  end
  app.__file = path
  return app
end

local Runtime = {}
Runtime.__index = Runtime

--- Build the container and enter the interceptors' lifecycles (in order).
--- kind: "http" | "worker" | "scheduler" | "test". Raises on startup errors.
function M.start(app, kind)
  local container = di.Container.new(app.providers or {})
  local ctx = context.new("startup", container, { app = app, app_kind = kind })
  context.bind(ctx)
  container:register("Container", container)
  container:start("before")
  local lc = interceptors.start(app, container, app.interceptors or {})
  container:start("after")
  local controllers = {}
  for i, cls in ipairs(app.controllers or {}) do
    controllers[i] = { cls = cls, instance = container:get_controller(cls) }
  end
  return setmetatable({
    app = app, kind = kind, container = container, lifecycle = lc,
    interceptors = lc.list, controllers = controllers,
  }, Runtime)
end

--- Leave the lifecycles (reverse order). Returns true | nil, message,
--- "error", errors (the list of what the shutdown hooks raised, each logged).
function Runtime:stop()
  context.bind(context.new("shutdown", self.container, { app = self.app, app_kind = self.kind }))
  local ok, errs = self.lifecycle:stop()
  if not ok then
    local texts = {}
    for i, e in ipairs(errs) do
      log.error("shutdown: ", e)
      texts[i] = tostring(e)
    end
    return nil, "shutdown failed: " .. table.concat(texts, "; "), "error", errs
  end
  return true
end

return M
