-- An app for spec/integration/trace_root_spec.lua: tracing on, exported over
-- OTLP (OTEL_EXPORTER_OTLP_ENDPOINT: the test receiver), so the C server
-- keeps a request's root span until Lua asks for it.
--   GET /plain/{id}   touches no span (the span stays in C); answers the
--                     worker's pid
--   GET /touch/{id}   sets an attribute on the current span (Lua takes it
--                     over mid-request) and answers its ids
--   GET /peek/{id}    reads the current span's ids only (Lua takes it over,
--                     its attributes are never read in Lua)
--   GET /logs/{id}    writes a log line (its ids read from C)
--   GET /boom         raises: a 500
--   GET /own          answers with a traceparent header of its own
--   GET /badstatus    answers a status the server refuses (a 500 is sent)
--   GET /later        spawns a task that, once the request is over, runs a
--                     span "later" (a child of the request's root span)
-- TRACE_SAMPLE: the sampling probability (default 1.0).
local j = require "jararaca"

local T = j.RestController("", { name = "TraceRoot" })

local pid = require("jararaca.core.sys").pid
T.plain = j.Get("/plain/{id}", function(_, req) return { id = req.params.id, pid = pid() } end)

T.touch = j.Get("/touch/{id}", function(_, req)
  local sp = j.current_span()
  sp:set_attribute("touched", true)
  return { id = req.params.id, trace_id = sp.trace_id, span_id = sp.span_id }
end)

-- the span taken over by Lua, its attributes never read: the encoder
-- writes them from the request (the route's template encoded once)
T.peek = j.Get("/peek/{id}", function(_, req)
  local sp = j.current_span()
  return { id = req.params.id, trace_id = sp.trace_id, span_id = sp.span_id }
end)

-- a log line: it carries the span's ids, the span stays in C
T.logs = j.Get("/logs/{id}", function(_, req)
  j.log.info("in logs " .. req.params.id)
  return { id = req.params.id }
end)

T.boom = j.Get("/boom", function() error("boom") end)

local OWN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
T.own = j.Get("/own", function() return { ok = true }, 200, { traceparent = OWN } end)

T.badstatus = j.Get("/badstatus", function() return { ok = true }, "abc" end)

-- (the request is over when its handle says so: no sleep as a clock)
local function over(h) return not pcall(h.id, h) end
T.later = j.Get("/later", function(_, req)
  local h = req._h
  j.spawn(function()
    while not over(h) do j.sleep(0.001) end
    j.start_span("later", function() end)
  end)
  return { ok = true }
end)

return j.Microservice {
  name = "traceroot",
  controllers = { T },
  tracing = { sample = tonumber(os.getenv("TRACE_SAMPLE") or "1.0") },
}
