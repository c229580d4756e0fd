-- Every way a handler, middleware or interceptor can get its answer wrong:
-- each must still end in exactly one answer (spec/integration/answers_spec.lua).
local j = require "jararaca"
local s = j.schema
local sched_core = require "jararaca.core.sched"

-- An error value whose __tostring raises.
local Nasty = setmetatable({}, { __tostring = function() error("__tostring raised too") end })
-- One whose __tostring returns a table.
local Odd = setmetatable({}, { __tostring = function() return {} end })

-- An interceptor whose behaviour depends on the route's member:
--   enter raises Nasty for "enter_nasty"; exit suppresses the error for
--   "suppressed*"; every exit reports what it saw in response headers.
local Probe = {}
function Probe:enter(ctx)
  if self ~= Probe then error("enter was not called as a method") end
  if ctx.member == "enter_nasty" then error(Nasty) end
  ctx.request.response.headers["X-Trace"] = "t1" -- must survive 422/500/HTTPError answers
end
function Probe:exit(ctx, err)
  local h = ctx.request.response.headers
  h["X-Ctx"] = table.concat({ ctx.kind, tostring(ctx.member), tostring(ctx.controller.__name),
    tostring(ctx.route.path), tostring(ctx.request_id ~= nil), tostring(ctx.container ~= nil) }, ",")
  if type(err) == "string" then
    h["X-Exit-Err"] = err:gsub("[\r\n]", "|")
  elseif err ~= nil then
    h["X-Exit-Err"] = type(err)
  end
  if ctx.member == "suppressed" or ctx.member == "suppressed_status" then return true end
end

-- Entered before Probe: its exit sees the error of Probe's enter.
local Outer = {}
function Outer:exit(ctx, err)
  if err ~= nil then ctx.request.response.headers["X-Outer-Err"] = type(err) end
end

local A = j.RestController("", { name = "Answers" })

A.ok = j.Get("/ok", function() return { ok = true } end)
-- a Content-Type among the returned headers replaces the default one
A.csv = j.Get("/csv", function() return "a,b", 200, { ["content-type"] = "text/csv" } end)

A.suppressed = j.Get("/suppressed", function() error("swallowed by the interceptor") end)
A.suppressed_status = j.Get("/suppressed-status", function(self, req)
  req.response.status = 409
  error("swallowed, with a status set first")
end)

A.nasty = j.Get("/nasty", function() error(Nasty) end)
A.odd = j.Get("/odd", function() error(Odd) end)
A.enter_nasty = j.Get("/enter-nasty", function() return "never" end)
A.nil_error = j.Get("/nil-error", function() error(nil) end)

A.string_status = j.Get("/string-status", function() return "x", "Created" end)
A.table_status_mw = j.Get("/table-status-mw", {
  middlewares = { function() return { a = 1 }, { 201 } end },
}, function() return "never" end)
A.float_status = j.Get("/float-status", function() return "x", 200.5 end)
A.bool_header = j.Get("/bool-header", function() return "x", 200, { ["X-Flag"] = true } end)
A.bad_header_name = j.Get("/bad-header-name", function() return "x", 200, { ["X Bad"] = "v" } end)
A.crlf_header = j.Get("/crlf-header", function() return "x", 200, { ["X-A"] = "a\r\nInjected: 1" } end)
A.headers_not_table = j.Get("/headers-not-table", function() return "x", 200, "X-A: 1" end)
A.response_bad_body = j.Get("/response-bad-body", function() return j.Response { status = 200, body = true } end)
A.http_error_bad_header = j.Get("/http-error-bad-header", function()
  error(j.HTTPError(400, "x", { ["X-A"] = "a\nb" }))
end)
A.http_error_unencodable = j.Get("/http-error-unencodable", function()
  error(j.HTTPError(400, { f = function() end }))
end)

A.http_error = j.Get("/http-error", function() error(j.HTTPError(404, "no such thing", { ["X-Why"] = "gone" })) end)
A.plain_error = j.Get("/plain-error", function() error("plain failure") end)
A.invalid = j.Get("/invalid", { query = { n = s.integer() } }, function(self, req) return { n = req.query.n } end)

A.cancelled = j.Get("/cancelled", function()
  local h, g = sched_core.current()
  j.spawn(function() sched_core.cancel(h, g) end)
  j.sleep(10)
  return "not cancelled"
end)

return j.Microservice {
  name = "answers",
  controllers = { A },
  interceptors = { Outer, Probe },
  openapi = false,
}
