-- jararaca.http.server: routes, per-request dispatch, and serving.
--
-- One router (C, core/router.c) holds every route of every controller. Each
-- request runs dispatch() in its own task: match -> Request -> interceptor
-- chain around the handler -> response. Errors become responses here and
-- never escape: an HTTPError gives its status and {"detail": ...}; anything
-- else is logged with a traceback and the request id and gives a 500.
local core = require "jararaca.core.http"
local route_spec = require "jararaca.http.route_spec"
local typed = require "jararaca.http.typed"
local json = require "jararaca.json"
local request = require "jararaca.http.request"
local response = require "jararaca.http.response"
local interceptors = require "jararaca.interceptors"
local errors = require "jararaca.errors"
local context = require "jararaca.context"
local log = require "jararaca.log"

local M = {}

local xpcall, traceback, tostring, setmetatable, rawset =
  xpcall, debug.traceback, tostring, setmetatable, rawset
local encode = response.encode
local late_headers = response.late_headers
local new_request = request.new
local bind = context.bind
local is_http_error = errors.is_http_error
local run_chain = interceptors.xrun
local with_traceback = interceptors.traceback

-- request_id is read by the logger and error responses only: compute it on
-- first use (most requests never need it).
local HTTP_CTX = {
  __index = function(ctx, k)
    if k == "request_id" then
      local id = ctx.request._h:id()
      rawset(ctx, "request_id", id)
      return id
    end
  end,
}

local JSON = "application/json"
local NOT_FOUND = encode({ detail = "Not Found" })
local NOT_ALLOWED = encode({ detail = "Method Not Allowed" })

--- Build the routing table of a started runtime, once (later calls return
--- the same table): { router = <C router>, routes = { [id] = route } }.
--- Every route's options are checked first (jararaca.http.route_spec); a
--- bad one raises its message, naming the file, controller, route and
--- option (the CLI reports it as a startup error).
function M.build_routes(rt)
  if rt.route_table then return rt.route_table end
  local classes, instances = {}, {}
  for i, c in ipairs(rt.controllers) do
    classes[i] = c.cls
    instances[c.cls] = c.instance
  end
  local list, r = route_spec.routes(classes)
  if not list then error(r, 0) end
  local routes = {}
  for id, route in ipairs(list) do
    route.instance = instances[route.controller]
    route.status = route.spec.status
    local ok, run = pcall(typed.compile, route)
    if not ok then error(route_spec.message(route, run), 0) end
    route.run = run
    routes[id] = route
  end
  M.add_openapi_routes(rt, r, routes)
  rt.route_table = { router = r, routes = routes }
  return rt.route_table
end

-- GET /openapi.json and GET /docs (paths from openapi.config: app.openapi
-- = false disables both, docs_path = false only the page). Both are built
-- once, here at startup, so a schema the generator cannot express fails the
-- start instead of answering 500 later.
function M.add_openapi_routes(rt, r, routes)
  local openapi = require "jararaca.openapi"
  local cfg = openapi.config(rt.app)
  if not cfg then return end
  local function add(path, member, body, content_type)
    local id = #routes + 1
    local ok, err = r:add("GET", path, id)
    if not ok then error(("openapi route GET %s: %s"):format(path, err), 0) end
    local res = response.Response { status = 200, body = body, content_type = content_type }
    routes[id] = {
      method = "GET", path = path, member = member, opts = {}, builtin = true,
      run = function(_, req) return response.build(req, nil, res) end,
    }
  end
  add(cfg.path, "openapi", assert(json.encode(openapi.document(rt.app))), JSON)
  if cfg.docs_path then
    add(cfg.docs_path, "docs", require("jararaca.docs_page").render { spec_url = cfg.path, title = cfg.title },
      "text/html; charset=utf-8")
  end
end

local function send_error(h, ctx, err)
  if is_http_error(err) then
    -- runs outside the protected call: a detail that cannot be encoded or a
    -- bad header must still end in an answer
    local okb, body = pcall(encode, { detail = err.detail })
    if okb then
      local _, why = h:respond(err.status, body, JSON, err.headers)
      if why ~= "invalid" then return end
      err = "HTTPError with an unsendable header: " .. tostring(err)
    else
      err = "HTTPError detail cannot be encoded: " .. tostring(body)
    end
  end
  local rid = ctx.request_id
  log.error("unhandled error in ", ctx.request.method, " ", ctx.request.path, ": ", tostring(err))
  h:respond(500, encode({ detail = "Internal Server Error", request_id = rid }), JSON)
end

--- Make the per-request entry function for a runtime and its routing table.
function M.make_dispatch(rt, table_)
  local router, routes = table_.router, table_.routes
  local chain = rt.interceptors
  local has_chain = chain and #chain > 0
  local container = rt.container

  -- route.run (jararaca.http.typed) runs the handler and shapes its result
  -- under one protected call (inside the interceptor chain when there is
  -- one): a result that cannot be encoded fails the transaction like any
  -- other error.
  return function(h, method, path)
    local id, params, allow = router:match(method, path)
    if not id then
      if params == 404 then
        h:respond(404, NOT_FOUND, JSON)
      else
        h:respond(405, NOT_ALLOWED, JSON, { Allow = allow })
      end
      return
    end
    local route = routes[id]
    local req = new_request(h, method, path, params)
    local ctx = setmetatable({
      kind = "http", container = container, request = req,
      controller = route.controller, member = route.member, route = route,
    }, HTTP_CTX)
    bind(ctx) -- the trampoline unbinds when the task ends
    local ok, st, b, ct, hd
    if has_chain then
      ok, st, b, ct, hd = run_chain(chain, ctx, with_traceback, route.run, route, req)
      -- interceptors' exit() may have added headers after the body was built
      if ok then hd = late_headers(req, hd) end
    else
      ok, st, b, ct, hd = xpcall(route.run, traceback, route, req)
    end
    if ok then
      local _, why = h:respond(st, b, ct, hd)
      if why == "invalid" then
        send_error(h, ctx, ("the handler's answer cannot be sent: status %s or a header is invalid"
          .. " (status must be 100..999, header names and values without CR, LF or NUL)"):format(tostring(st)))
      end
    else
      send_error(h, ctx, st)
    end
  end
end

--- Listen and serve until a stop signal; then drain and return.
-- opts: host, port, reuseport, grace (seconds) and the http.listen limits.
-- on_ready(server) is called once listening.
function M.serve(rt, opts, on_ready)
  local tbl = M.build_routes(rt)
  core.set_handler(M.make_dispatch(rt, tbl))
  local srv, err = core.listen(opts)
  if not srv then return nil, err end
  if on_ready then on_ready(srv) end
  return srv
end

return M
