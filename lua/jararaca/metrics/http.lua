-- jararaca.metrics.http: the built-in HTTP metrics, and GET /metrics.
--
--   jararaca_http_requests_total{method,route,status}          counter
--   jararaca_http_request_duration_seconds{method,route}       histogram
--   jararaca_http_requests_in_flight                           gauge
--
-- route is the route's template (/tasks/{id}), never the raw path (one
-- series per route, however many ids are asked for); requests no route
-- matched count as route="unmatched". WebSocket routes are not counted
-- here (their transaction is the connection): jararaca.metrics.ws reads
-- the C core's connection and message counters at scrape time.
--
-- Why a wrapper around the dispatch entry and not code inside it: the
-- metrics stay out of the request path when they are off (the entry is
-- not wrapped), and dispatch only has to return the status it sent.
local registry = require "jararaca.metrics.registry"
local core_sched = require "jararaca.core.sched"

local M = {}

local clock = core_sched.clock

-- The built-in metrics live in their own registry, made once per process
-- (several apps in one process, as in the tests, share them).
local builtin
function M.builtin()
  if builtin then return builtin end
  local reg = registry.new()
  builtin = {
    registry = reg,
    requests = reg:counter("jararaca_http_requests_total", "HTTP requests answered, by method, route template and status.",
      { "method", "route", "status" }),
    duration = reg:histogram("jararaca_http_request_duration_seconds",
      "Time from the request's dispatch to its answer, by method and route template.", { "method", "route" }),
    in_flight = reg:updown_counter("jararaca_http_requests_in_flight", "HTTP requests being handled."),
  }
  builtin.in_flight:_single(1)
  return builtin
end

--- Whether the HTTP built-ins exist in this process (a server with metrics).
function M.loaded() return builtin ~= nil end

--- Wrap a dispatch entry (entry(h, id, params, allow) -> status sent):
--- counts every answered request. routes: { [id] = route }.
function M.wrap(entry, routes)
  local b = M.builtin()
  local requests, duration, gauge = b.requests, b.duration, b.in_flight.single
  local with_r, with_d = requests.with, duration.with
  local observe = registry.observe
  return function(h, id, params, allow)
    local route = id and routes[id]
    if route and route.websocket then return entry(h, id, params, allow) end
    local t0 = clock()
    gauge.value = gauge.value + 1
    local ok, status = pcall(entry, h, id, params, allow)
    gauge.value = gauge.value - 1
    local method, tpl
    if route then method, tpl = route.method, route.path else method, tpl = h:method(), "unmatched" end
    local s = with_r(requests, method, tpl, status or 500)
    s.value = s.value + 1
    observe(with_d(duration, method, tpl), clock() - t0, 1)
    if not ok then error(status, 0) end
    return status
  end
end

--- The route answering GET cfg.path with every registry's text (added to
--- the routing table like /openapi.json); none when cfg.port is set (the
--- admin port serves it: jararaca.metrics.admin). Turns the built-ins on.
function M.add_route(r, routes, cfg)
  M.builtin()
  require("jararaca.metrics.builtin").enable()
  if cfg.port then return end
  local workers = require "jararaca.metrics.workers"
  local started, werr = workers.start() -- --workers N: a scrape shows them all
  if not started then error(werr, 0) end
  local path = cfg.path
  local text = require "jararaca.metrics.text"
  local response = require "jararaca.http.response"
  local id = #routes + 1
  local ok, err = r:add("GET", path, id)
  if not ok then error(("metrics route GET %s: %s"):format(path, err), 0) end
  routes[id] = {
    method = "GET", path = path, member = "metrics", opts = {}, builtin = true,
    run = function(_, req)
      local res = response.Response { status = 200, body = workers.scrape(), content_type = text.CONTENT_TYPE }
      return response.build(req, nil, res)
    end,
  }
end

return M
