--- jararaca.rpc.call: one RPC call, from its request to its answer.
--
--   local value, res = call.run(plan, transport, req)
--     --> value (the decoded, validated body; the response for raw routes;
--         true for an empty body), res { status, headers, body [, json] }
--     --> nil, message, code [, res]
--
-- Steps: a CLIENT span when tracing is on (traceparent, tracestate and
-- baggage of that span sent), the middlewares (request -> request), the
-- tries (retries on listed statuses and transport failures, exponential
-- backoff), the response hooks, the success check, the decoding.
-- Codes: the transport's (timeout, refused, resolve, closed, tls,
-- too_large, invalid), "status" (a status that is not a success; res with
-- the decoded body as 4th value), "invalid" (a response that is not JSON or
-- does not fit the response schema; res as 4th value, res.errors the
-- schema's errors), a middleware's own code.
-- @module jararaca.rpc.call
local json = require "jararaca.json"
local sched = require "jararaca.sched"
local tstate = require "jararaca.tracing.state"
local url = require "jararaca.rpc.url"

local M = {}

local type, tostring, format, lower, find, min, error =
  type, tostring, string.format, string.lower, string.find, math.min, error
local sleep, CANCELLED = sched.sleep, sched.CANCELLED
local decode = json.decode
local retry_after = require("jararaca.core.http_client").retry_after
local query_string = url.query

local tracing -- loaded when tracing is on

local function full_url(req)
  local u = req.base_url .. req.path
  if #req.query > 0 then u = u .. "?" .. query_string(req.query) end
  return u
end

-- The delay before try n + 1: backoff * 2^(n-1), at most max_backoff; a
-- Retry-After (seconds or an HTTP-date) asks for longer (up to max_backoff).
local function delay(retry, n, res)
  local d = min(retry.backoff * 2 ^ (n - 1), retry.max_backoff)
  local ra = res and res.headers and retry_after(res.headers["retry-after"])
  if ra and ra > d then d = min(ra, retry.max_backoff) end
  return d
end
M.delay = delay

local function is_json(res)
  local ct = res.headers and res.headers["content-type"]
  if type(ct) ~= "string" then return false end
  ct = lower(ct)
  return find(ct, "^application/json") ~= nil or find(ct, "^[^;]*%+json") ~= nil
end

-- "HelloRPC.ping: GET http://host/hello/ping/3" (no query: it may hold a key)
local function where(p, req)
  return p.label .. ": " .. req.method .. " " .. req.base_url .. req.path
end

local function fail(sp, msg, code, res)
  if sp then
    sp:set_attribute("error.type", code)
    sp:set_status("error", msg)
  end
  return nil, msg, code, res
end

local function send(p, transport, req, sp)
  local mws = p.middlewares
  if mws then
    for i = 1, #mws do
      local r, msg, code = mws[i](req)
      if r == nil and msg ~= nil then return fail(sp, p.label .. ": " .. tostring(msg), code or "error") end
      if type(r) == "table" then req = r end
    end
  end
  -- the transport reads method, url, headers, body and timeout: the
  -- request itself is handed over (no copy per call)
  req.url = full_url(req)
  local retry = p.retry
  local tries = retry and retry.attempts or 1
  local res, msg, code
  for n = 1, tries do
    res, msg, code = transport(req)
    -- the task was cancelled while it waited (j.timeout, a handler's
    -- timeout): unwind it, as a cancelled sleep or wait does
    if code == "cancelled" then error(CANCELLED, 0) end
    if res and type(res.status) ~= "number" or not res and type(code) ~= "string" then
      -- a transport of the build's that breaks its contract: a mistake in the code
      error(format("%s: the transport returned %s, not a response { status, ... } or nil, message, code",
        p.label, res == nil and "nil" or "a " .. type(res) .. " without a numeric status"), 0)
    end
    local again
    if res then
      again = n < tries and retry.on_status[res.status]
    else
      again = n < tries and retry.on_error[code]
    end
    if not again then
      if sp and n > 1 then sp:set_attribute("http.request.resend_count", n - 1) end
      break
    end
    local d = delay(retry, n, res)
    if sp then
      sp:add_event("retry", { ["http.request.resend_count"] = n, ["retry.delay_s"] = d,
        ["http.response.status_code"] = res and res.status or nil, ["error.type"] = not res and code or nil })
    end
    if d > 0 then sleep(d) end
  end
  if not res then return fail(sp, where(p, req) .. ": " .. tostring(msg), code) end
  local hooks = p.response_hooks
  if hooks then
    for i = 1, #hooks do
      local r = hooks[i](res, req)
      if type(r) == "table" then
        if type(r.status) ~= "number" then
          error(format("%s: response hook %d returned a table without a numeric status, not a response", p.label, i), 0)
        end
        res = r
      end
    end
  end
  local status = res.status
  if sp then sp:set_attribute("http.response.status_code", status) end
  local ok
  if p.success then ok = p.success[status] else ok = status >= 200 and status <= 299 end
  local body = res.body or ""
  if not ok then
    if body ~= "" and is_json(res) then res.json = decode(body) end
    return fail(sp, format("%s answered %d", where(p, req), status), "status", res)
  end
  if p.raw then return res, res end
  local sc = p.response
  if body == "" then
    if sc and not sc.is_optional then
      return fail(sp, where(p, req) .. ": the response has no body, its schema wants one", "invalid", res)
    end
    return true, res
  end
  if not sc and not is_json(res) then return body, res end
  local v, derr = decode(body)
  if v == nil then
    return fail(sp, where(p, req) .. ": the response is not JSON: " .. tostring(derr), "invalid", res)
  end
  res.json = v
  if sc then
    local cleaned, smsg, _, errs = sc:validate(v)
    if cleaned == nil and errs then
      res.errors = errs
      return fail(sp, where(p, req) .. ": the response does not match its schema: " .. smsg, "invalid", res)
    end
    v = cleaned
  end
  return v, res
end

local SPAN_OPTS = { kind = "client" }

local function traced(sp, p, transport, req)
  if sp.attributes then
    sp:set_attribute("http.request.method", req.method)
    sp:set_attribute("url.full", req.base_url .. req.path) -- no query: it may carry a key
    sp:set_attribute("url.template", p.template)
    sp:set_attribute("server.address", p.host)
    if p.port then sp:set_attribute("server.port", p.port) end
    sp:set_attribute("rpc.client.method", p.label)
  end
  tracing.inject(nil, req.headers, sp) -- the call's span (no look-up of the current one)
  return send(p, transport, req, sp)
end

--- Run one call (see the module comment).
function M.run(p, transport, req)
  if p.tracing and tstate.on then
    if not tracing then tracing = require "jararaca.tracing" end
    return tracing.start_span(p.span_name, SPAN_OPTS, traced, p, transport, req)
  end
  return send(p, transport, req, nil)
end

return M
