-- jararaca.http.request: the request object handed to handlers.
--
-- Fields computed on first access (nothing is parsed unless asked for):
--   req.params       path parameters (routing ran in C; nil for a route without any)
--   req.method, req.path                  the path is percent-decoded
--   req.query        { name = first value }       req.query_all  { name = { values } }
--   req.headers      { lower-case name = value }   req:header(name)  (case-insensitive)
--   req.body         raw body string               req.json          decoded JSON body (cached)
--   req.id           request id (X-Request-Id or generated)
--   req.remote_addr, req.remote_port
--   req.response     { status = nil, headers = {} }: set status/headers from a handler
-- The request is valid while its task runs: a field first read after the
-- request's task ended (in a task spawned by the handler that outlives it)
-- raises; read what such a task needs before the handler returns.
local json = require "jararaca.json"
local errors = require "jararaca.errors"

local decode = json.decode
local ERROR_MT = json.object_mt({ "loc", "msg", "type" })
local rawget, rawset, setmetatable, pcall, tostring = rawget, rawset, setmetatable, pcall, tostring

local M = {}

local getters = {}

function getters.method(req) return req._h:method() end
function getters.path(req) return req._h:path() end

function getters.query(req)
  return req._h:query()
end

function getters.query_all(req)
  local q, all = req._h:query(true)
  if rawget(req, "query") == nil then rawset(req, "query", q) end
  return all
end

function getters.headers(req) return req._h:headers() end
function getters.body(req) return req._h:body() end
function getters.id(req) return req._h:id() end
function getters.target(req) return req._h:target() end
function getters.query_string(req) return req._h:query_string() end

function getters.remote_addr(req)
  local a, p = req._h:remote()
  rawset(req, "remote_port", p)
  return a
end

function getters.remote_port(req)
  local a, p = req._h:remote()
  rawset(req, "remote_addr", a)
  return p
end

function getters.response()
  return { status = nil, headers = {} }
end

function getters.json(req)
  local body = req.body
  if body == "" then return nil end
  local v, err = decode(body)
  if v == nil and err then
    errors.raise_http(422, {
      setmetatable({ loc = { "body" }, msg = "JSON decode error: " .. tostring(err), type = "json_invalid" },
        ERROR_MT),
    })
  end
  if v == json.null then return nil end
  return v
end

local Request = {}

function Request.header(req, name)
  return req._h:header(name)
end

local mt = {
  __index = function(req, k)
    local g = getters[k]
    if g then
      local v = g(req)
      rawset(req, k, v)
      return v
    end
    return Request[k]
  end,
  __tostring = function(req)
    local ok, m, p = pcall(function() return req.method, req.path end)
    if not ok then return "Request(over)" end
    return "Request(" .. tostring(m) .. " " .. tostring(p) .. ")"
  end,
}

--- Wrap the C request handle h (params: the route's path parameters or nil).
function M.new(h, params)
  return setmetatable({ _h = h, params = params }, mt)
end

M.Request = Request
M.getters = getters
return M
