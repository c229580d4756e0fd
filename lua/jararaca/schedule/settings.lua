--- jararaca.schedule.settings: Microservice.scheduler and where the
--- scheduler's store is.
--
--   Microservice{ scheduler = { store = "redis://127.0.0.1:6379/0", zone = "America/Sao_Paulo" } }
--   JARARACA_SCHEDULER_STORE=sqlite:///var/lib/app/app.scheduler.db   -- the environment wins
--
-- With no URL the store is the SQLite file "<app name>.scheduler.db" in the
-- directory of the app's default database, else the app file's directory
-- (as the message bus's broker, jararaca.bus.settings): the scheduler
-- processes of one machine share it.
-- @module jararaca.schedule.settings
local M = {}

local type, pairs, error, tostring, format, rawget = type, pairs, error, tostring, string.format, rawget

M.ENV = "JARARACA_SCHEDULER_STORE"

--- Check the shape of Microservice.scheduler (raises error(msg, level + 1)).
function M.check(t, level)
  level = (level or 1) + 1
  if type(t) ~= "table" then
    error("Microservice.scheduler must be a table { store = ..., zone = ... }, got " .. type(t), level)
  end
  for k, v in pairs(t) do
    if k ~= "store" and k ~= "zone" then
      error(format("Microservice.scheduler: unknown field %q (known: store, zone)", tostring(k)), level)
    end
    if type(v) ~= "string" or v == "" then
      error(format("Microservice.scheduler.%s must be a non-empty string, got %s", k, type(v)), level)
    end
  end
end

--- Check a store URL: url | nil, message, "invalid".
function M.parse(url, origin)
  if url:match("^sqlite:///.") or url:match("^redis://.") then return url end
  return nil, format("%s: unsupported scheduler store %q: use sqlite:///path.db or redis://host:port/db", origin,
    url), "invalid"
end

--- The store URL of the app: url | nil, message, "invalid". databases: the
--- app's started databases (persistence), for the default path.
function M.store_url(app, databases, env)
  env = env or os.getenv
  local url = env(M.ENV)
  if url ~= nil and url ~= "" then return M.parse(url, M.ENV) end
  local cfg = rawget(app, "scheduler")
  if cfg and cfg.store then return M.parse(cfg.store, "Microservice.scheduler.store") end
  return "sqlite:///" .. require("jararaca.bus.settings").default_dir(app, databases) .. "/"
    .. require("jararaca.bus.controller").app_name(app) .. ".scheduler.db"
end

return M
