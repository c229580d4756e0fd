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
local schema = require "jararaca.schema"

local M = {}

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- Two apps in one process (a `jararaca test` run) may each have their own
-- models.lua: a module that another app loaded from its directory is loaded
-- again from this app's directory when this one has it too. Modules from
-- elsewhere (the framework, a shared lib) stay shared.
local app_modules = {} -- module name -> path of the app that loaded it from its directory

local function in_dir(dir, name)
  return package.searchpath(name, dir .. "/?.lua;" .. dir .. "/?/init.lua") ~= nil
end

local function forget_other_apps_modules(path, dir)
  for name, owner in pairs(app_modules) do
    if owner ~= path and in_dir(dir, name) then
      package.loaded[name] = nil
      app_modules[name] = nil
    end
  end
end

local function note_own_modules(path, dir, before)
  for name in pairs(package.loaded) do
    if not before[name] and in_dir(dir, name) then app_modules[name] = path end
  end
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
  forget_other_apps_modules(path, dir)
  local before = {}
  for name in pairs(package.loaded) do before[name] = true end
  -- its schema names (and its modules') are its own: two apps in one
  -- process may both define "Task"
  local ok, app = schema.with_scope(path, xpcall, chunk, app_traceback)
  note_own_modules(path, dir, before)
  if not ok then return nil, ("error while running app file %s: %s"):format(path, tostring(app)), "error" end
  if not microservice.is_microservice(app) then
    return nil, ("app file %s must return jararaca.Microservice{...} (it returned %s)"):format(
      path, app == nil and "nothing" or type(app)), "invalid"
  end
  app.__file = path
  app.__schemas = schema.scope(path)
  return app
end

local Runtime = {}
Runtime.__index = Runtime

--- Build the container and enter the interceptors' lifecycles (in order).
--- kind: "http" | "worker" | "scheduler" | "test". opts.otlp = false: no
--- OTLP export whatever the app and OTEL_* say (jararaca.testing). Raises
--- on startup errors.
function M.start(app, kind, opts)
  require("jararaca.tracing").configure(app.tracing)
  -- OTLP export (per process: this runs after the fork); off without an endpoint
  if (kind == "http" or kind == "worker" or kind == "scheduler") and not (opts and opts.otlp == false) then
    require("jararaca.otlp").start(app, kind)
  end
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
  local rt = setmetatable({
    app = app, kind = kind, container = container, lifecycle = lc,
    interceptors = lc.list, controllers = controllers,
  }, Runtime)
  -- The message bus (its handlers' declarations, its broker): after the
  -- interceptors, since the broker may share the app's database.
  -- The scheduled actions' declarations are checked by every process that
  -- may run them (a bad cron expression is a startup error everywhere).
  if kind == "http" or kind == "worker" or kind == "scheduler" then
    local ok, err = pcall(function()
      require("jararaca.schedule").actions(rt)
      require("jararaca.bus").start(rt)
    end)
    if not ok then
      lc:stop()
      error(err, 0)
    end
  end
  return rt
end

--- Leave the lifecycles (reverse order). Returns true | nil, message,
--- "error", errors (the list of what the shutdown hooks raised, each logged).
function Runtime:stop()
  context.bind(context.new("shutdown", self.container, { app = self.app, app_kind = self.kind }))
  if self.bus then require("jararaca.bus").stop(self) end
  if package.loaded["jararaca.schedule"] then require("jararaca.schedule").close(self.container) end
  local ok, msg, code, errs = self.lifecycle:stop()
  if package.loaded["jararaca.tracing"] then
    local fok, ferr = require("jararaca.tracing").flush()
    if not fok then log.warn(ferr) end
  end
  if package.loaded["jararaca.otlp"] then require("jararaca.otlp").stop() end
  if not ok then
    for i = 1, #errs do log.error("shutdown: ", errs[i]) end
    return nil, msg, code, errs
  end
  return true
end

return M
