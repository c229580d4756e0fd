--- jararaca.bus.settings: which broker an app's message bus uses.
--
--   Microservice{ bus = { url = "sqlite:///path/app.bus.db" } }   -- the embedded broker (docs/bus.md)
--   JARARACA_BUS_URL=sqlite:///...                               -- the environment wins over the app
--
-- With no URL the embedded broker uses "<app name>.bus.db" in the directory
-- of the app's default database (its SessionInterceptor's file), else in the
-- app file's directory. amqp://user:password@host:port/vhost is RabbitMQ
-- (jararaca.bus.amqp); `declare = true` declares its topology at every
-- start instead of checking it.
-- @module jararaca.bus.settings
local M = {}

local type, pairs, error, tostring, format, rawget = type, pairs, error, tostring, string.format, rawget

local ENV = "JARARACA_BUS_URL"
M.ENV = ENV

--- Check the shape of Microservice.bus (raises error(msg, level + 1)).
function M.check(t, level)
  level = (level or 1) + 1
  if type(t) ~= "table" then error("Microservice.bus must be a table { url = ... }, got " .. type(t), level) end
  for k, v in pairs(t) do
    if k == "propagate_headers" then
      local ok, err = require("jararaca.bus.propagation").check(v)
      if not ok then error("Microservice.bus.propagate_headers: " .. err, level) end
    elseif k == "declare" then
      if type(v) ~= "boolean" then error("Microservice.bus.declare must be a boolean, got " .. type(v), level) end
    elseif k ~= "url" then
      error(format("Microservice.bus: unknown field %q (known: url, declare, propagate_headers)", tostring(k)), level)
    elseif type(v) ~= "string" or v == "" then
      error("Microservice.bus.url must be a non-empty string, got " .. type(v), level)
    end
  end
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

--- Parse a bus URL: { kind = "embedded", path } | nil, message, "invalid".
--- A URL's user and password are never part of a message.
function M.parse(url, origin)
  local path = url:match("^sqlite:///(.*)$")
  if path then
    if path == "" then return nil, format("%s: no file path after sqlite:///", origin), "invalid" end
    if path == ":memory:" or path:find("?", 1, true) then
      return nil, format("%s: the embedded broker needs a file the processes share (sqlite:///path.db), got %q",
        origin, url), "invalid"
    end
    return { kind = "embedded", path = path, url = url }
  end
  local scheme = url:match("^([%w+.-]+):")
  if scheme == "amqp" then
    local rest = url:sub(8)
    local auth, hostpart = rest:match("^([^@/]*)@(.*)$")
    if not auth then hostpart = rest end
    if hostpart == "" or hostpart:sub(1, 1) == "/" then
      return nil, format("%s: no host in the RabbitMQ URL (amqp://user:password@host:port/vhost)", origin), "invalid"
    end
    local user = auth and auth:match("^([^:]*)")
    -- what messages show: never the password
    local where = "amqp://" .. (user and user ~= "" and (user .. "@") or "") .. hostpart
    return { kind = "amqp", url = where, dial = url, where = where }
  end
  if scheme == "amqps" then
    return nil, format("%s: amqps:// (TLS) is not supported yet; use amqp:// on a trusted network", origin), "invalid"
  end
  return nil, format("%s: unsupported message bus URL (scheme %q): use sqlite:///path.db or amqp://host", origin,
    tostring(scheme or "none")), "invalid"
end

--- The directory of an app's own files (the broker's, the scheduler
--- store's): its default database's (databases: the app's started
--- databases), else the app file's.
function M.default_dir(app, databases)
  local db = databases and databases[1]
  if db and db.path and db.path ~= ":memory:" then return dirname(db.path) end
  local file = rawget(app, "__file")
  return type(file) == "string" and dirname(file) or "."
end

--- The app's bus settings: { kind, path, url } | nil, message, "invalid".
--- databases: the app's started databases (persistence), for the default
--- path; env: os.getenv by default.
function M.resolve(app, databases, env)
  env = env or os.getenv
  local url = env(ENV)
  if url ~= nil and url ~= "" then return M.parse(url, ENV) end
  local cfg = rawget(app, "bus")
  if cfg and cfg.url then return M.parse(cfg.url, "Microservice.bus.url") end
  local name = require("jararaca.bus.controller").app_name(app)
  local path = M.default_dir(app, databases) .. "/" .. name .. ".bus.db"
  return { kind = "embedded", path = path, url = "sqlite:///" .. path, default = true }
end

--- Whether the app asked for a bus explicitly (a URL in the app or the
--- environment): then the broker is opened at startup, not at first use.
function M.explicit(app, env)
  env = env or os.getenv
  local url = env(ENV)
  local cfg = rawget(app, "bus")
  return (url ~= nil and url ~= "") or (cfg ~= nil and cfg.url ~= nil)
end

return M
