-- jararaca.testing: testing an app from busted specs run by `jararaca test`.
--
--   local testing = require "jararaca.testing"
--   local client = testing.client("app.lua")          -- or an app table
--   local res = client:get("/tasks", { query = { page = 0 } })
--   local res = client:post("/tasks", { json = { name = "x" } })
--   res.status, res.headers["content-type"], res.body, res.json
--   client:close()                                     -- interceptors' shutdown: true | nil, msg, "error", errs
--
--   local dir = testing.temp_dir()                     -- removed by testing.cleanup()
--   local db_path = testing.temp_database()            -- a fresh file path in a temp dir
--
--   testing.setenv("TASKS_DB", db_path)                -- restored by testing.cleanup()
--   testing.with_env({ TASKS_DB = db_path, DEBUG = false }, fn, ...)  -- set, fn(...), restore
--
-- docs/testing.md is the guide.
--
-- The client calls the app's routes in-process, without a socket, through
-- exactly what the server runs per request: routing, the interceptor chain
-- (so database sessions commit or roll back), middlewares, validation and
-- response shaping. Each request runs in its own task.
local runtime = require "jararaca.runtime"
local server = require "jararaca.http.server"
local microservice = require "jararaca.microservice"
local sched = require "jararaca.sched"
local json = require "jararaca.json"
local http = require "jararaca.core.http"
local sys = require "jararaca.core.sys"
local response = require "jararaca.http.response"

local M = {}

local Handle = {}
Handle.__index = Handle

local counter = 0

function Handle:id() return self._id end
function Handle:method() return self._method end
function Handle:path() return self._path end
function Handle:query(all) return http.parse_query(self._query, all) end
function Handle:query_string() return self._query end
function Handle:target() return self._target end
function Handle:body() return self._body end
function Handle.remote(_) return "127.0.0.1", 0 end
function Handle:alive() return self.response == nil end
function Handle.start_ms(_) return 0 end
function Handle.version_minor(_) return 1 end
function Handle.is_upgrade(_) return false end
function Handle:headers()
  local out = {}
  for k, v in pairs(self._headers) do out[k:lower()] = v end
  return out
end
function Handle:header(name)
  name = name:lower()
  for k, v in pairs(self._headers) do
    if k:lower() == name then return v end
  end
  return nil
end
function Handle:respond(status, body, content_type, headers)
  if self.response then return nil, "the request was already answered", "answered" end
  local why = response.check(status, body, content_type, headers) -- the C server's checks
  if why then return nil, why, "invalid" end
  local h = {}
  for k, v in pairs(headers or {}) do h[k:lower()] = type(v) == "table" and table.concat(v, ", ") or tostring(v) end
  -- as the C server: a Content-Type among the headers replaces the argument
  if content_type and h["content-type"] == nil then h["content-type"] = content_type end
  self.response = { status = status, body = body or "", headers = h }
  return true
end

local function encode_query(q)
  if type(q) == "string" then return q end
  local parts = {}
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local function esc(s)
    return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
  end
  for _, k in ipairs(keys) do
    local v = q[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do parts[#parts + 1] = esc(k) .. "=" .. esc(x) end
    else
      parts[#parts + 1] = esc(k) .. "=" .. esc(v)
    end
  end
  return table.concat(parts, "&")
end

local Client = {}
Client.__index = Client

--- Start the app in-process: container, interceptors' startup, routes.
-- app: a Microservice or the path of an app file. opts.otlp = true: export
-- over OTLP as the server would (Microservice.otlp, OTEL_*); without it a
-- test run exports nothing (not to a collector the developer's shell
-- happens to name). Raises on startup errors.
function M.client(app, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("testing.client(app, opts): opts must be a table, got " .. type(opts), 2)
  end
  if type(app) == "string" then
    local loaded, err = runtime.load_app(app)
    if not loaded then error(err, 2) end
    app = loaded
  elseif not microservice.is_microservice(app) then
    error("testing.client(app): app must be a Microservice or an app file path", 2)
  end
  -- startup runs in its own task so its context does not leak into the spec
  local ok, rt = sched.spawn(runtime.start, app, "http", { otlp = opts ~= nil and opts.otlp == true }):wait()
  if not ok then error(rt, 0) end
  -- a bad route: stop what startup started (databases, interceptors) first
  local bok, tbl = pcall(server.build_routes, rt)
  if not bok then
    sched.spawn(function() return rt:stop() end):wait()
    error(tbl, 0)
  end
  return setmetatable({ rt = rt, router = tbl.router, dispatch = server.make_dispatch(rt, tbl) }, Client)
end

--- Send one request. opts: query (table or string), headers, body (string),
--- json (a value, encoded and sent with Content-Type: application/json).
--- Returns { status, headers (lower-case names), body, json (decoded, when JSON) }.
function Client:request(method, target, opts)
  opts = opts or {}
  local path, query = target:match("^([^?]*)%??(.*)$")
  if opts.query then
    local extra = encode_query(opts.query)
    query = (query ~= "" and (query .. "&") or "") .. extra
  end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local body = opts.body or ""
  if opts.json ~= nil then
    body = assert(json.encode(opts.json))
    if not headers["Content-Type"] and not headers["content-type"] then
      headers["Content-Type"] = "application/json"
    end
  end
  counter = counter + 1
  local decoded = http.url_decode(path)
  if not decoded then
    return { status = 400, headers = {}, body = '{"detail":"malformed request"}' }
  end
  method = method:upper()
  local h = setmetatable({
    _id = "test-" .. counter, _query = query, _target = target, _body = body, _headers = headers,
    _method = method, _path = decoded,
  }, Handle)
  -- routed like the C server does before dispatch: id, params | nil, 404 | nil, 405, allow
  local id, params, code, allow = self.router:match(method, decoded)
  if not id then params = code == "not_found" and 404 or 405 end
  sched.spawn(self.dispatch, h, id, params, allow):wait()
  local res = h.response or { status = 0, headers = {}, body = "" }
  if method == "HEAD" then res.body = "" end
  if (res.headers["content-type"] or ""):find("json", 1, true) and res.body ~= "" then
    res.json = json.decode(res.body)
  end
  return res
end

for _, m in ipairs { "get", "post", "put", "patch", "delete", "head" } do
  Client[m] = function(self, target, opts) return self:request(m, target, opts) end
end

--- Run the interceptors' shutdown (reverse order). Returns what
--- runtime:stop() returns: true | nil, message, "error", the errors raised.
function Client:close()
  if self.closed then return true end
  self.closed = true
  local rt = self.rt
  -- (the stop task is no one else's: its wait can only answer true, ...)
  return select(2, assert(sched.spawn(function() return rt:stop() end):wait()))
end

-- ---- temporary files ----
local temps = {}

--- A fresh temporary directory (removed with everything in it by cleanup()).
function M.temp_dir()
  local path = os.tmpname()
  os.remove(path)
  os.execute("mkdir -p '" .. path .. "'")
  temps[#temps + 1] = path
  return path
end

--- The path of a database file that does not exist yet, in a temp dir.
function M.temp_database(name)
  return M.temp_dir() .. "/" .. (name or "test.db")
end

-- ---- environment ----
-- Apps read their configuration from the environment (os.getenv, config
-- interceptors). These set it for this process (children inherit it) and
-- put back what was there before.

local saved = {} -- { name, previous value or false }, in the order changed

local function pack(...) return { n = select("#", ...), ... } end

local function check_env_name(what, name)
  if type(name) ~= "string" or name == "" or name:find("[=%z]") then
    error(("%s: the name must be a non-empty string without '=' or NUL, got %s"):format(what,
      type(name) == "string" and ("%q"):format(name) or type(name)), 3)
  end
end

-- value: a string or number sets, nil or false unsets.
local function env_value(what, name, value)
  local tv = type(value)
  if tv == "number" then return tostring(value) end
  if value == nil or value == false or tv == "string" then
    if tv == "string" and value:find("%z") then
      error(("%s: the value of %s contains a NUL byte"):format(what, name), 3)
    end
    return value or nil
  end
  error(("%s: the value of %s must be a string, a number, or nil/false to unset it, got %s"):format(what,
    name, tv), 3)
end

local function set_raw(name, value)
  local ok, err = sys.setenv(name, value)
  if not ok then error(("cannot set the environment variable %s: %s"):format(name, tostring(err)), 0) end
end

--- Set (value: a string or number) or unset (nil or false) an environment
--- variable until testing.restore_env() or testing.cleanup() puts back the
--- value it had before.
function M.setenv(name, value)
  check_env_name("testing.setenv(name, value)", name)
  value = env_value("testing.setenv(name, value)", name, value)
  saved[#saved + 1] = { name, os.getenv(name) or false }
  set_raw(name, value)
  return true
end

--- Put back every variable testing.setenv changed (latest change first).
function M.restore_env()
  for i = #saved, 1, -1 do
    local e = saved[i]
    saved[i] = nil
    set_raw(e[1], e[2] or nil)
  end
end

--- with_env(vars, fn, ...): set vars ({ NAME = "value" | number | false to
--- unset }), run fn(...) and put the previous values back, also when fn
--- raises (the error is raised again, as it was). Returns fn's results.
function M.with_env(vars, fn, ...)
  if type(vars) ~= "table" then
    error("testing.with_env(vars, fn, ...): vars must be a table { NAME = value | false }, got " .. type(vars), 2)
  end
  if type(fn) ~= "function" then
    error("testing.with_env(vars, fn, ...): fn must be a function, got " .. type(fn), 2)
  end
  local names, values = {}, {}
  for name, value in pairs(vars) do
    check_env_name("testing.with_env(vars, fn)", name)
    names[#names + 1] = name
    values[name] = env_value("testing.with_env(vars, fn)", name, value)
  end
  table.sort(names)
  local before = {}
  for _, name in ipairs(names) do
    before[name] = os.getenv(name) or false
    set_raw(name, values[name])
  end
  local res = pack(pcall(fn, ...))
  for _, name in ipairs(names) do set_raw(name, before[name] or nil) end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

--- Remove every temp dir made so far and restore the environment
--- (testing.restore_env()).
function M.cleanup()
  for i = #temps, 1, -1 do
    local p = temps[i]
    if p:match("^/tmp/") then os.execute("rm -rf '" .. p .. "'") end
    temps[i] = nil
  end
  M.restore_env()
end

return M
