-- jararaca.http.response: turning what a handler returns into bytes.
--
-- A handler returns  body [, status [, headers]]:
--   table      -> JSON (application/json)
--   string     -> text/plain; charset=utf-8
--   nil        -> 204 No Content (unless a status is given)
--   Response{} -> exactly what it says: Response{ status=, body=, headers=, content_type= }
-- The status comes from (first found): the returned status, req.response.status,
-- the route's `status` option, else 200 (204 for nil).
local json = require "jararaca.json"

local M = {}
local json_encode = json.encode
local function encode(v)
  local s, err = json_encode(v)
  if s == nil then error("cannot encode the response as JSON: " .. tostring(err), 0) end
  return s
end
local type, pairs, setmetatable, getmetatable = type, pairs, setmetatable, getmetatable


local ResponseMT = { __name = "Response" }

--- A raw response: Response{ status = 200, body = "...", content_type = "text/html", headers = {} }
function M.Response(t)
  if type(t) ~= "table" then error("Response{...} expects a table", 2) end
  return setmetatable(t, ResponseMT)
end

function M.is_response(v) return type(v) == "table" and getmetatable(v) == ResponseMT end

local JSON = "application/json"
local TEXT = "text/plain; charset=utf-8"

local function headers_table(h, what)
  if h ~= nil and type(h) ~= "table" then
    error(what .. " must be a table of name = value, got a " .. type(h), 0)
  end
  return h
end

-- b over a (header tables or nil; callers check user-given ones with
-- headers_table); a new table only when both have entries.
local function merge(a, b)
  if not a or next(a) == nil then return b end
  if not b or next(b) == nil then return a end
  local out = {}
  for k, v in pairs(a) do out[k] = v end
  for k, v in pairs(b) do out[k] = v end
  return out
end
M.merge = merge

--- Compute status, body, content_type, headers for a handler's return values.
function M.build(req, route_status, body, status, headers)
  if headers ~= nil then headers_table(headers, "the headers returned with the body") end
  local resp = rawget(req, "response")
  if resp then
    status = status or resp.status
    headers = merge(headers_table(resp.headers, "req.response.headers"), headers)
  end
  local tb = type(body)
  if tb == "table" then
    if getmetatable(body) == ResponseMT then
      local b = body.body
      local ct = body.content_type
      if type(b) == "table" then b = encode(b); ct = ct or JSON end
      return body.status or status or route_status or 200, b, ct,
        merge(headers, headers_table(body.headers, "Response.headers"))
    end
    local text, err = json_encode(body)
    if not text then error("cannot encode the response as JSON: " .. tostring(err), 0) end
    return status or route_status or 200, text, JSON, headers
  elseif tb == "string" then
    return status or route_status or 200, body, TEXT, headers
  elseif body == nil then
    return status or route_status or 204, nil, nil, headers
  elseif tb == "number" or tb == "boolean" then
    return status or route_status or 200, encode(body), JSON, headers
  end
  error("handler returned a " .. tb .. "; return a table (JSON), a string, nil or Response{}", 0)
end

--- Headers set on req.response after build() ran (by interceptors' exit):
--- added to the built ones (which win on the same name, as in build).
function M.late_headers(req, headers)
  local resp = rawget(req, "response")
  if not resp then return headers end
  -- the built headers win, as in build(): what the handler returned beats
  -- req.response; only the names an exit() added are new here
  return merge(headers_table(resp.headers, "req.response.headers"), headers)
end

--- The headers a handler or interceptor put on req.response (nil if none):
--- error answers (422, 500, HTTPError) carry them too.
function M.request_headers(req)
  local resp = rawget(req, "response")
  local h = resp and resp.headers
  if type(h) == "table" and next(h) ~= nil then return h end
  return nil
end

local floor = math.floor

local function bad_text(v)
  return v:find("[\r\n%z]") ~= nil
end

local function check_value(name, v)
  local tv = type(v)
  if tv == "number" then return nil end
  if tv ~= "string" then return ("the value of the header %q must be a string or a number, got a %s"):format(name, tv) end
  if bad_text(v) then return ("the value of the header %q contains CR, LF or NUL"):format(name) end
  return nil
end

--- Why the answer (status, body, content_type, headers) cannot be sent, or
--- nil: the checks of the C server's respond (bindings/l_http.c), for code
--- that must know before sending (app-wide middlewares see the 500 that
--- replaces a bad answer; the in-process test client).
function M.check(status, body, content_type, headers)
  if type(status) ~= "number" or status ~= status or floor(status) ~= status or status < 200 or status > 599 then
    return ("the status must be an integer in 200..599 (a 1xx is not a final answer), got %s"):format(
      type(status) == "number" and tostring(status) or ("a " .. type(status)))
  end
  if body ~= nil and type(body) ~= "string" then return "the body must be a string, got a " .. type(body) end
  if content_type ~= nil and (type(content_type) ~= "string" or bad_text(content_type)) then
    return "the content type must be a string without CR, LF or NUL"
  end
  if headers == nil then return nil end
  if type(headers) ~= "table" then return "the headers must be a table, got a " .. type(headers) end
  local lines = content_type ~= nil and 1 or 0 -- the C server sends at most 64 lines of ours
  for name, v in pairs(headers) do
    if type(name) ~= "string" then return "a header name must be a string, got a " .. type(name) end
    if not name:find("^[%w!#$%%&'*+%-.^_`|~]+$") then
      return ("the header name %q is not a token (letters, digits, !#$%%&'*+-.^_`|~)"):format(name)
    end
    if type(v) == "table" then
      for i = 1, #v do
        local why = check_value(name, v[i])
        if why then return why end
      end
      lines = lines + #v
    else
      local why = check_value(name, v)
      if why then return why end
      lines = lines + 1
    end
    if lines > 64 then return ("the header %q is one header line too many (at most 64)"):format(name) end
  end
  return nil
end

M.encode = encode
return M
