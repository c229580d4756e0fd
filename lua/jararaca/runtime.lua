-- jararaca.runtime: loading an app file and running its process lifecycle.
--
--   local app, err = runtime.load_app("app.lua")
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

-- The message and traceback of an error raised while running the app file,
-- with the app's own frames only: an error the framework raises for a
-- misuse (error(msg, 2): a route without a handler, a bad prefix) already
-- names the app's line, and the framework's frames would read as a bug of
-- the framework.
local function app_traceback(e)
  local dir = package.jararaca_lua_dir -- luacheck: ignore 143 (set by bindings/vm.c)
  local framework = dir and ("@" .. dir .. "/") or nil
  local frames = {}
  local level = 2
  while true do
    local info = debug.getinfo(level, "Sln")
    if not info then break end
    if info.what ~= "C" and not (framework and info.source:sub(1, #framework) == framework) then
      local what = info.what == "main" and "main chunk"
        or (info.name and ("function '" .. info.name .. "'"))
        or ("function <" .. info.short_src .. ":" .. info.linedefined .. ">")
      frames[#frames + 1] = ("\t%s:%d: in %s"):format(info.short_src, info.currentline, what)
    end
    level = level + 1
  end
  if #frames == 0 then return tostring(e) end
  return tostring(e) .. "\nstack traceback:\n" .. table.concat(frames, "\n")
end

--- Load an app file: it must return a Microservice{...}. The file's directory
--- goes first on package.path so its modules are found.
--- Returns app or nil, message (naming the file, and the line for syntax errors).
function M.load_app(path)
  if type(path) ~= "string" or path == "" then
    return nil, "no app file given (usage: jararaca server app.lua)"
  end
  local f = io.open(path, "r")
  if not f then return nil, ("cannot open app file '%s': no such file or not readable"):format(path) end
  f:close()
  local dir = dirname(path)
  package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
  local chunk, err = loadfile(path)
  if not chunk then return nil, ("cannot load app file %s"):format(err) end
  local ok, app = xpcall(chunk, app_traceback)
  if not ok then return nil, ("error while running app file %s: %s"):format(path, tostring(app)) end
  if not microservice.is_microservice(app) then
    return nil, ("app file %s must return jararaca.Microservice{...} (it returned %s)"):format(
      path, app == nil and "nothing" or type(app))
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

--- Leave the lifecycles (reverse order). Returns true or nil, errors.
function Runtime:stop()
  context.bind(context.new("shutdown", self.container, { app = self.app, app_kind = self.kind }))
  local ok, errs = self.lifecycle:stop()
  if not ok then
    for _, e in ipairs(errs) do log.error("shutdown: ", e) end
    return nil, errs
  end
  return true
end

return M
