-- jararaca.http.dispatch: what runs for each request, from the route the C
-- server matched to the one answer.
--
-- bindings/l_http.c matches every request against the router before any Lua
-- runs and starts entry(h, id, params) in a new task, or entry(h, nil, 404) /
-- entry(h, nil, 405, allow) when no route matches. Then:
--
--   app-wide middlewares (Microservice.middlewares), if any: they see every
--   request, 404/405 and OPTIONS included, and get the final answer back
--     -> interceptors' enter, route middlewares, validation, the handler
--     -> interceptors' exit (reverse order)
--   -> one answer: h:respond(status, body, content_type, headers)
--
-- Every request gets exactly one answer:
--   * an HTTPError answers its status, {"detail": ...} and headers;
--   * any other error answers 500 {"detail":"Internal Server Error",
--     "request_id": ...}, logged with the error as raised, a traceback and
--     the request id;
--   * an answer the server refuses (a status that is not an integer in
--     200..599, a header name that is not a token, a header value that is
--     not a string/number or has CR/LF/NUL, ...) is logged and answered 500;
--   * an interceptor's exit that suppresses the error: answered as if the
--     handler had returned nothing: req.response.status, else 204;
--   * error answers carry the headers set on req.response;
--   * if the task still ends without an answer (a framework bug), the C
--     server answers 500 itself (bindings/l_http.c, on_task_end);
--   * a WebSocket request whose handler accepted the connection
--     (req._ws, jararaca.ws.socket) gets no HTTP answer: the connection is
--     closed when the transaction ends, with 1000, or 1011 after an error,
--     which is logged like a 500.
-- The transaction's staged actions (jararaca.staged) run once the chain
-- succeeded and are dropped when it failed (interceptors.xrun settles them;
-- here for routes run without a chain).
-- Nothing here calls tostring on a user's value outside a protected call.
local request = require "jararaca.http.request"
local response = require "jararaca.http.response"
local middleware = require "jararaca.http.middleware"
local interceptors = require "jararaca.interceptors"
local errors = require "jararaca.errors"
local context = require "jararaca.context"
local log = require "jararaca.log"
local staged = require "jararaca.staged"
local tracing_state = require "jararaca.tracing.state"

local M = {}

local xpcall, pcall, traceback, setmetatable, rawget, rawset, rawequal =
  xpcall, pcall, debug.traceback, setmetatable, rawget, rawset, rawequal
local encode, build, merge, late_headers, request_headers, check =
  response.encode, response.build, response.merge, response.late_headers, response.request_headers,
  response.check
local new_request = request.new
local bind, current = context.bind, context.current
local is_http_error = errors.is_http_error
local run_chain = interceptors.xrun
local settle = staged.settle

-- jararaca.ws.socket, loaded by the first accepted WebSocket connection
local function ws_socket() return require "jararaca.ws.socket" end

local JSON = "application/json"
local NOT_FOUND = encode({ detail = "Not Found" })
local NOT_ALLOWED = encode({ detail = "Method Not Allowed" })

-- A readable rendering of any error value; never raises.
local describe = errors.describe
M.describe = describe

-- The xpcall handler of everything beneath a request: the error value goes
-- on as raised (interceptors' exit gets it unchanged); the traceback is kept
-- aside in the context, for the log line of the 500. HTTPErrors are
-- expected answers and need none.
local function keep_traceback(e)
  if not is_http_error(e) then
    local ctx = current()
    if ctx then
      rawset(ctx, "_error", e)
      rawset(ctx, "_traceback", traceback("", 2))
    end
  end
  return e
end
M.keep_traceback = keep_traceback

local function internal_body(req)
  -- the request id is [A-Za-z0-9._-] (core/http.c): no escaping needed
  return '{"detail":"Internal Server Error","request_id":"' .. req._h:id() .. '"}'
end

local function failure_text(req, err, why)
  local where = describe(req.method) .. " " .. describe(req.path)
  if err == nil then return where .. ": " .. why end
  local msg = "unhandled error in " .. where .. ": " .. describe(err)
  if why then msg = msg .. " (" .. why .. ")" end
  local ctx = current()
  if ctx and rawequal(rawget(ctx, "_error"), err) then msg = msg .. rawget(ctx, "_traceback") end
  return msg
end

-- Log a 500: the error (or, err nil, why the answer could not be sent).
local function log_failure(req, err, why)
  local ok, msg = pcall(failure_text, req, err, why)
  log.error(ok and msg or "unhandled error in a request (it cannot be described)")
end

local function render_error(req, err)
  local extra = request_headers(req)
  if is_http_error(err) then
    local okb, body = pcall(encode, { detail = err.detail })
    if okb then return err.status, body, JSON, merge(extra, err.headers) end
    log_failure(req, err, "its detail cannot be encoded as JSON: " .. describe(body))
  else
    log_failure(req, err)
  end
  return 500, internal_body(req), JSON, extra
end

-- An accepted WebSocket connection's transaction failed: there is no HTTP
-- answer to give, so the error is logged (with its traceback) and the
-- connection closed with 1011.
local function ws_failed(req, ws, err)
  log_failure(req, err, "in a WebSocket connection: closed with 1011")
  ws_socket().finish(ws, false)
  return 500, internal_body(req), JSON
end

--- The answer to an error raised beneath a request: status, body,
--- content_type, headers. Never raises.
local function error_answer(req, err)
  if err == nil then err = "error raised with a nil value" end
  local ws = rawget(req, "_ws")
  if ws then return ws_failed(req, ws, err) end
  local ok, st, b, ct, hd = pcall(render_error, req, err)
  if ok then return st, b, ct, hd end
  log_failure(req, err, "and its answer could not be built: " .. describe(st))
  return 500, internal_body(req), JSON
end
M.error_answer = error_answer

-- Send the answer; one the server refuses becomes a logged 500.
local function refused(h, req, msg)
  log_failure(req, nil, "the answer cannot be sent: " .. msg)
  h:respond(500, internal_body(req), JSON)
  return 500
end

-- Tracing on: the request's root span (jararaca.tracing) is echoed as a
-- `traceparent` response header and ended with the answer's status.
local tracer
local function tracing()
  if tracer == nil then tracer = require "jararaca.tracing" end
  return tracer
end

-- holder: the request's context (or the request) when tracing is on: its
-- root span ends with the answer (jararaca.tracing.answer), else nil.
local function send_span(h, req, holder, st, b, ct, hd)
  local ws = rawget(req, "_ws")
  if ws then
    if holder then tracing().answer(holder, h, 101) end
    return ws_socket().finish(ws, true) -- (a no-op after ws_failed)
  end
  if holder then hd = tracing().answer_headers(holder, hd) end
  local ok, msg, code = h:respond(st, b, ct, hd)
  -- "closed": the client is gone; "invalid": a logged 500 instead
  if not ok and code == "invalid" then st = refused(h, req, msg) end
  -- (the span ends once answered: with the status sent)
  if holder then tracing().answer(holder, h, st) end
  return st
end

local function send(h, req, st, b, ct, hd)
  return send_span(h, req, tracing_state.on and (current() or req), st, b, ct, hd)
end

-- After the interceptor chain: an exit that suppressed the error leaves no
-- result (answered as if the handler returned nothing); headers an exit put
-- on req.response after the body was built are added.
local function after_chain(req, st, b, ct, hd)
  if st == nil then return build(req, nil, nil) end
  return st, b, ct, late_headers(req, hd)
end

local function finish(req, ok, st, b, ct, hd)
  if ok then return st, b, ct, hd end
  return error_answer(req, st)
end

local function finish_chain(req, ok, st, b, ct, hd)
  if not ok then return error_answer(req, st) end
  return finish(req, pcall(after_chain, req, st, b, ct, hd))
end

-- The context of a request: kind, container, controller, member, route
-- come from the route's metatable (one small table per request, made with
-- the `_staged` slot jararaca.staged.settle fills, so settling does not
-- grow it);
-- request_id is computed on first use (the logger and 500s read it).
local function ctx_meta(container, route)
  local static = { kind = route and route.websocket and "websocket" or "http", container = container }
  if route then
    static.controller, static.member, static.route = route.controller, route.member, route
  end
  return {
    __index = function(ctx, k)
      local v = static[k]
      if v ~= nil then return v end
      if k == "request_id" then
        -- pcall: a task the handler spawned may log after the request is over
        local ok, id = pcall(ctx.request._h.id, ctx.request._h)
        if not ok then return nil end
        rawset(ctx, "request_id", id)
        return id
      end
    end,
  }
end

local function app_middlewares(app)
  local list = app and app.middlewares or {}
  local out = {}
  for i = 1, #list do out[i] = middleware.check(list[i], ("Microservice.middlewares[%d]"):format(i)) end
  return out
end

-- The per-request entry function: it returns the status it answered
-- (jararaca.metrics.http counts it).
local function make_entry(rt, tbl)
  local routes = tbl.routes
  local chain = rt.interceptors
  local has_chain = chain ~= nil and #chain > 0
  for _, route in pairs(routes) do route.ctx_mt = ctx_meta(rt.container, route) end
  local unrouted_mt = ctx_meta(rt.container, nil)

  -- route.run (jararaca.http.typed) runs route middlewares, validation, the
  -- handler and shapes its result; inside the interceptor chain when there
  -- is one. Never raises.
  local function run_route(route, req, ctx)
    if has_chain then
      return finish_chain(req, run_chain(chain, ctx, keep_traceback, route.run, route, req))
    end
    local ok, st, b, ct, hd = xpcall(route.run, keep_traceback, route, req)
    settle(ctx, ok)
    return finish(req, ok, st, b, ct, hd)
  end

  local mws = app_middlewares(rt.app)
  if #mws == 0 then
    -- the hot path: no table, closure or string beyond what the route needs
    return function(h, id, params, allow)
      if id == nil then
        if params == 404 then h:respond(404, NOT_FOUND, JSON) else h:respond(405, NOT_ALLOWED, JSON, { Allow = allow }) end
        return params
      end
      local route = routes[id]
      local req = new_request(h, params)
      if tracing_state.on then
        -- (the context has a slot for its root span: set, it does not grow)
        local ctx = setmetatable({ request = req, _staged = false, _span = nil }, route.ctx_mt)
        bind(ctx)
        tracing().start_http(ctx, req, route)
        return send_span(h, req, ctx, run_route(route, req, ctx))
      end
      local ctx = setmetatable({ request = req, _staged = false }, route.ctx_mt)
      bind(ctx) -- the trampoline unbinds when the task ends
      if has_chain or route.websocket then return send(h, req, run_route(route, req, ctx)) end
      -- run_route, finish and send inlined: a few calls and vararg passes
      -- less per request on the path every plain route takes
      local ok, st, b, ct, hd = xpcall(route.run, keep_traceback, route, req)
      settle(ctx, ok)
      if not ok then st, b, ct, hd = error_answer(req, st) end
      local sent, msg, code = h:respond(st, b, ct, hd)
      if sent or code ~= "invalid" then return st end
      return refused(h, req, msg)
    end
  end

  -- With app-wide middlewares: they run first, for every request; next()
  -- gives them the answer of the route (or the 404/405), errors included.
  local function app_core(req)
    local ctx = current()
    local route = ctx.route
    local st, b, ct, hd
    if route then
      st, b, ct, hd = run_route(route, req, ctx)
      if rawget(req, "_ws") then return 204 end -- an accepted WebSocket: no answer is sent
    elseif rawget(ctx, "_unrouted") == 405 then
      st, b, ct, hd = 405, NOT_ALLOWED, JSON, { Allow = rawget(ctx, "_allow") }
    else
      st, b, ct = 404, NOT_FOUND, JSON
    end
    -- a bad answer becomes its 500 here, so the middlewares see the answer
    -- that is sent (and their headers reach it)
    local why = check(st, b, ct, hd)
    if why then
      log_failure(req, nil, "the answer cannot be sent: " .. why)
      return 500, internal_body(req), JSON
    end
    return st, b, ct, hd
  end
  local run_app = middleware.compose(mws, app_core, { handler = keep_traceback, answer = error_answer })

  return function(h, id, params, allow)
    local route = id and routes[id]
    local req, ctx
    if route then
      req = new_request(h, params)
      ctx = setmetatable({ request = req, _staged = false }, route.ctx_mt)
    else
      req = new_request(h, nil)
      ctx = setmetatable({ request = req, _staged = false, _unrouted = params, _allow = allow }, unrouted_mt)
    end
    bind(ctx)
    if route and tracing_state.on then tracing().start_http(ctx, req, route) end
    return send(h, req, finish(req, xpcall(run_app, keep_traceback, req)))
  end
end

--- The per-request entry function for a started runtime and its routing
--- table ({ router, routes, metrics }): entry(h, id, params) / entry(h, nil,
--- status [, allow]), h a request handle (bindings/l_http.c or
--- jararaca.testing). With metrics on, wrapped by jararaca.metrics.http.
function M.make(rt, tbl)
  local entry = make_entry(rt, tbl)
  if not tbl.metrics then return entry end
  return require("jararaca.metrics.http").wrap(entry, tbl.routes)
end

return M
