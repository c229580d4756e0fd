--- jararaca.rpc.auth: request middlewares that authenticate RPC calls.
--
--   j.rpc.bearer(token)                       Authorization: Bearer <token>
--   j.rpc.basic(user, password)               Authorization: Basic base64(user:password)
--   j.rpc.api_key(key [, { header = "x-api-key" } | { query = "api_key" }])
--
-- token and key are a string or a function(request) returning one (called
-- once per call: a token that expires can be refreshed there), or
-- nil, message, code to fail the call with that.
-- @module jararaca.rpc.auth
local b64 = require "jararaca.base64"

local M = {}

local type, error, tostring, lower = type, error, tostring, string.lower

-- A secret given as a string, or a function asked per call.
local function check_secret(v, what)
  if type(v) == "string" then
    if v == "" or v:find("[\r\n%z]") then error(what .. ": must be a non-empty string without CR, LF or NUL", 3) end
  elseif type(v) ~= "function" then
    error(what .. ": expected a string or a function(request) returning one, got " .. type(v), 3)
  end
end

local function resolve(v, req, what)
  if type(v) == "string" then return v end
  local s, msg, code = v(req)
  if s == nil then
    return nil, msg and tostring(msg) or (what .. " gave no value"), code or "error"
  end
  if type(s) ~= "string" or s == "" or s:find("[\r\n%z]") then
    return nil, what .. " gave " .. type(s) .. ", not a non-empty string without CR, LF or NUL", "invalid"
  end
  return s
end

--- Authorization: Bearer <token>.
function M.bearer(token)
  check_secret(token, "rpc.bearer(token)")
  return function(req)
    local t, msg, code = resolve(token, req, "rpc.bearer's token function")
    if not t then return nil, msg, code end
    req.headers.authorization = "Bearer " .. t
  end
end

-- Standard base64 with padding (RFC 4648 section 4), from the URL-safe one.
local STD = { ["-"] = "+", ["_"] = "/" }
local function base64(s)
  return (b64.encode(s):gsub("[-_]", STD)) .. ("="):rep((3 - #s % 3) % 3)
end
M.base64 = base64

--- Authorization: Basic base64(user ":" password) (RFC 7617).
function M.basic(user, password)
  if type(user) ~= "string" or user:find(":", 1, true) then
    error("rpc.basic(user, password): user must be a string without \":\"", 2)
  end
  if type(password) ~= "string" then error("rpc.basic(user, password): password must be a string", 2) end
  local value = "Basic " .. base64(user .. ":" .. password)
  return function(req) req.headers.authorization = value end
end

--- An API key in a header (default x-api-key) or in the query string.
function M.api_key(key, opts)
  check_secret(key, "rpc.api_key(key)")
  opts = opts or {}
  if type(opts) ~= "table" then error("rpc.api_key(key, opts): opts must be a table", 2) end
  if opts.header ~= nil and opts.query ~= nil then
    error("rpc.api_key(key, opts): give header or query, not both", 2)
  end
  local q = opts.query
  if q ~= nil and (type(q) ~= "string" or q == "") then
    error("rpc.api_key: opts.query must be a parameter name", 2)
  end
  local h = opts.header or (q == nil and "x-api-key" or nil)
  if h ~= nil and (type(h) ~= "string" or not h:find("^[%w!#$%%&'*+%-%.^_`|~]+$")) then
    error("rpc.api_key: opts.header must be a header name", 2)
  end
  h = h and lower(h)
  return function(req)
    local k, msg, code = resolve(key, req, "rpc.api_key's key function")
    if not k then return nil, msg, code end
    if h then
      req.headers[h] = k
    else
      req.query[#req.query + 1] = { q, k }
    end
  end
end

return M
