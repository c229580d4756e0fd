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

local function merge(a, b)
  if not a or next(a) == nil then return b end
  if not b or next(b) == nil then return a end
  local out = {}
  for k, v in pairs(a) do out[k] = v end
  for k, v in pairs(b) do out[k] = v end
  return out
end

--- Compute status, body, content_type, headers for a handler's return values.
function M.build(req, route_status, body, status, headers)
  local resp = rawget(req, "response")
  if resp then
    status = status or resp.status
    headers = merge(resp.headers, headers)
  end
  local tb = type(body)
  if tb == "table" then
    if getmetatable(body) == ResponseMT then
      local b = body.body
      local ct = body.content_type
      if type(b) == "table" then b = encode(b); ct = ct or JSON end
      return body.status or status or route_status or 200, b, ct, merge(headers, body.headers)
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
--- merged over the built ones.
function M.late_headers(req, headers)
  local resp = rawget(req, "response")
  if not resp then return headers end
  return merge(headers, resp.headers)
end

M.encode = encode
return M
