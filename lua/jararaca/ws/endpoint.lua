--- jararaca.ws.endpoint: what runs for a request to a WebSocket endpoint
-- (`j.WebSocketEndpoint(path, [opts], fn)`), between dispatch and fn.
--
-- The upgrade request is routed like a GET and runs inside the interceptor
-- chain like any request (the whole connection is one transaction, context
-- kind "websocket"); then, in jararaca.http.typed's place:
--   1. the upgrade is checked (RFC 6455 §4.2.1): no `Upgrade: websocket`
--      -> 426 with `Upgrade: websocket`; another Sec-WebSocket-Version ->
--      426 with `Sec-WebSocket-Version: 13`; no `Connection: upgrade` or a
--      malformed Sec-WebSocket-Key -> 400. All JSON, before any middleware;
--   2. the controller's and route's middlewares, then the declared params,
--      query and headers are validated (422) as for a GET;
--   3. fn(self, ws) runs with ws = jararaca.ws.socket.new(req). Until
--      ws:accept() it answers HTTP: an error answers as for any route; a
--      return answers what it returns, or 403 when it returns nothing.
--      After accept the request has no HTTP answer: dispatch closes the
--      connection when the transaction ends (1000, or 1011 after an error,
--      which is logged with its traceback).
-- @module jararaca.ws.endpoint
local errors = require "jararaca.errors"
local response = require "jararaca.http.response"
local socket = require "jararaca.ws.socket"

local M = {}

local rawget, error, type = rawget, error, type
local HTTPError, build = errors.HTTPError, response.build
local lower, find = string.lower, string.find

-- A comma-separated header value contains token (case-insensitive)?
local function has_token(v, token)
  for item in lower(v):gmatch("[^,]+") do
    if item:match("^%s*(.-)%s*$") == token then return true end
  end
  return false
end

-- A Sec-WebSocket-Key is the base64 of 16 bytes: 22 characters, the last
-- of which carries 2 bits only, then "==".
local function valid_key(k)
  return type(k) == "string" and #k == 24 and find(k, "^[%w+/]+==$") ~= nil and find("AQgw", k:sub(22, 22), 1, true)
    ~= nil
end

local NOT_UPGRADE = "this is a WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)"

--- Raise the HTTPError that answers req when it is not a WebSocket
--- handshake this server speaks; nothing when it is.
function M.check_upgrade(req)
  local up = req:header("upgrade")
  if not up or not has_token(up, "websocket") then
    error(HTTPError(426, NOT_UPGRADE, { Upgrade = "websocket" }), 0)
  end
  local version = req:header("sec-websocket-version")
  if version ~= "13" then
    error(HTTPError(426, "unsupported Sec-WebSocket-Version " .. (version or "(none)") .. ": this server speaks 13",
      { Upgrade = "websocket", ["Sec-WebSocket-Version"] = "13" }), 0)
  end
  local conn = req:header("connection")
  if not conn or not has_token(conn, "upgrade") then
    error(HTTPError(400, "a WebSocket handshake needs Connection: Upgrade"), 0)
  end
  if not valid_key(req:header("sec-websocket-key")) then
    error(HTTPError(400, "the Sec-WebSocket-Key is not the base64 of 16 bytes"), 0)
  end
end

local REFUSED = {
  invalid = 400, nomem = 503, error = 503, closed = 503,
}

--- The part of the route's run that replaces the handler call of an HTTP
--- route (jararaca.http.typed): core(req) -> status, body, content_type,
--- headers. validate(req) checks the declared inputs (or is nil).
function M.core(route, validate)
  local fn, instance, cfg = route.fn, route.instance, route.spec.websocket
  return function(req)
    if validate then validate(req) end
    local ws = socket.new(req, cfg)
    local body, status, headers = fn(instance, ws)
    if rawget(ws, "_u") then return nil end -- accepted: dispatch answers nothing
    local refused = rawget(ws, "_refused")
    -- "closed": the server is stopping, or the client left (then the answer
    -- goes nowhere, and is dropped quietly); either way the upgrade failed
    if refused then
      error(HTTPError(REFUSED[refused] or 503, "the WebSocket connection could not be accepted (" .. refused .. ")"), 0)
    end
    if body == nil and status == nil then
      return build(req, 403, { detail = "the WebSocket connection was not accepted" })
    end
    return build(req, nil, body, status, headers)
  end
end

return M
