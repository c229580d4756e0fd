-- jararaca.http.server: routes and serving.
--
-- One router (C, core/router.c) holds every route of every controller; the
-- C server matches each request against it and runs the entry function of
-- jararaca.http.dispatch in its own task (errors become answers there and
-- never escape).
local core = require "jararaca.core.http"
local route_spec = require "jararaca.http.route_spec"
local typed = require "jararaca.http.typed"
local json = require "jararaca.json"
local response = require "jararaca.http.response"
local dispatch = require "jararaca.http.dispatch"
local sched = require "jararaca.sched"
local log = require "jararaca.log"

local M = {}

local JSON = "application/json"

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
  -- GET /metrics (Microservice.metrics, JARARACA_METRICS_PATH): built-in
  -- HTTP metrics on; the entry is wrapped (jararaca.http.dispatch)
  local mcfg, merr = require("jararaca.metrics.settings").config(rt.app)
  if merr then error(merr, 0) end
  if mcfg then require("jararaca.metrics.http").add_route(r, routes, mcfg) end
  rt.route_table = { router = r, routes = routes, metrics = mcfg ~= nil }
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

--- Make the per-request entry function for a runtime and its routing table
--- (see jararaca.http.dispatch).
M.make_dispatch = dispatch.make

--- Listen and serve until a stop signal; then drain and return.
-- opts: host, port, reuseport, grace (seconds) and the http.listen limits.
-- on_ready(server) is called once listening.
function M.serve(rt, opts, on_ready)
  local tbl = M.build_routes(rt)
  core.set_handler(dispatch.make(rt, tbl), tbl.router)
  local srv, err, code = core.listen(opts)
  if not srv then return nil, err, code end
  if on_ready then on_ready(srv) end
  return srv
end

--- Attach the WebSocket room manager to the app's backplane when the app
--- has a WebSocket endpoint (after build_routes; in each worker): true |
--- nil, message, "invalid" (a bad Microservice.websocket.backplane).
function M.start_websockets(rt)
  local tbl = M.build_routes(rt)
  for _, route in pairs(tbl.routes) do
    if route.websocket then
      local kind, channel_or_err, code = require("jararaca.ws.backplane").start(rt.app)
      if not kind then return nil, channel_or_err, code end
      if kind ~= "none" then log.info("WebSocket backplane: ", kind, kind == "redis" and (" " .. channel_or_err) or "") end
      return true
    end
  end
  return true
end

--- Stop serving: srv:shutdown(grace) drains the HTTP connections while
--- every WebSocket connection is closed with 1001; returns once both are
--- over (the WebSocket handlers get what is left of grace).
function M.shutdown(srv, grace)
  local ws = package.loaded["jararaca.ws.socket"] -- loaded by an app with a WebSocket endpoint
  if ws then require("jararaca.core.ws").shutdown() end
  local t0 = sched.now()
  srv:shutdown(grace)
  if ws then
    local ok, msg = ws.shutdown(math.max(0, grace - (sched.now() - t0)))
    if not ok then log.warn("shutdown: ", msg) end
  end
end

return M
