--- jararaca.errors: error values that carry an HTTP meaning.
--
-- An `HTTPError` is the `HTTPException` of the original: raise it anywhere
-- beneath a request (controller, middleware, provider, interceptor) and the
-- dispatcher answers with its status, detail and headers instead of a 500.
--
--     local errors = require "jararaca.errors"
--     local e = errors.HTTPError(404, "task not found")   -- returns, raises nothing
--     error(e)                                              -- or:
--     errors.raise_http(404, "task not found", { ["X-Reason"] = "gone" })
--
--     errors.is_http_error(e)  --> true
--     tostring(e)              --> "HTTPError 404: task not found"
--
-- Fields of an HTTPError: `status` (integer 200..599), `detail` (any
-- JSON-able value; defaults to the reason phrase of the status, like
-- Starlette) and `headers` (table of name -> value, or nil).
--
-- Misuse (status not an integer in 200..599, headers not a table) raises
-- `error(msg, 2)` at the caller.
-- @module jararaca.errors
local M = {}

local type, tostring, setmetatable, getmetatable, error, pairs =
  type, tostring, setmetatable, getmetatable, error, pairs
local floor, concat, sort, format = math.floor, table.concat, table.sort, string.format

--- Standard reason phrases (used as the default detail).
local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols",
  [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [406] = "Not Acceptable", [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [411] = "Length Required", [412] = "Precondition Failed",
  [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable",
  [417] = "Expectation Failed", [418] = "I'm a teapot",
  [422] = "Unprocessable Content", [423] = "Locked", [425] = "Too Early",
  [426] = "Upgrade Required", [428] = "Precondition Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [451] = "Unavailable For Legal Reasons",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}
M.REASONS = REASONS

--- The reason phrase of a status ("Not Found"), or nil when unknown.
function M.reason(status)
  return REASONS[status]
end

-- Short human rendering of a detail value for __tostring (not JSON; the
-- dispatcher encodes the real body).
local function display(v, depth)
  local t = type(v)
  if t == "string" then
    return depth == 0 and v or format("%q", v)
  elseif t ~= "table" then
    return tostring(v)
  elseif depth > 2 then
    return "{...}"
  end
  local n = #v
  local parts = {}
  for i = 1, n do parts[i] = display(v[i], depth + 1) end
  local keys, orig = {}, {}
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and floor(k) == k) then
      local s = tostring(k)
      keys[#keys + 1] = s
      orig[s] = k
    end
  end
  sort(keys) -- plain string sort, no Lua comparator
  for i = 1, #keys do
    local s = keys[i]
    parts[#parts + 1] = s .. "=" .. display(v[orig[s]], depth + 1)
  end
  return "{" .. concat(parts, ", ") .. "}"
end

--- A readable rendering of any error value; never raises (an error
--- object's __tostring may raise or return a non-string).
function M.describe(v)
  if type(v) == "string" then return v end
  local ok, text = pcall(tostring, v)
  if ok and type(text) == "string" then return text end
  return ("(a %s error value that cannot be shown: its __tostring failed)"):format(type(v))
end

local HTTPError = {}
HTTPError.__index = HTTPError
HTTPError.__name = "HTTPError"

function HTTPError.__tostring(e)
  return "HTTPError " .. e.status .. ": " .. display(e.detail, 0)
end

local function new(level, status, detail, headers)
  if type(status) ~= "number" or floor(status) ~= status or status < 200 or status > 599 then
    error(format("HTTPError: status must be an integer in 200..599, got %s",
      type(status) == "number" and tostring(status) or type(status)), level + 1)
  end
  if headers ~= nil and type(headers) ~= "table" then
    error("HTTPError: headers must be a table or nil, got " .. type(headers), level + 1)
  end
  if detail == nil then detail = REASONS[status] or ("HTTP " .. status) end
  return setmetatable({ status = status, detail = detail, headers = headers }, HTTPError)
end

--- Build an HTTP error value (does not raise).
-- @tparam integer status 200..599 (normally 4xx/5xx)
-- @param[opt] detail any JSON-able value; default: the reason phrase
-- @tparam[opt] table headers extra response headers
-- @treturn table the error object
function M.HTTPError(status, detail, headers)
  local e = new(2, status, detail, headers) -- not a tail call: keeps error levels right
  return e
end

--- Raise an HTTPError: `error(HTTPError(status, detail, headers), 2)`.
function M.raise_http(status, detail, headers)
  error(new(2, status, detail, headers), 2)
end

--- True when v is an HTTPError object.
function M.is_http_error(v)
  return type(v) == "table" and getmetatable(v) == HTTPError
end

return M
