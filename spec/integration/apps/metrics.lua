-- The app of spec/integration/metrics_spec.lua: built-in HTTP metrics on
-- (GET /metrics, or JARARACA_METRICS_PATH), a user counter and histogram.
local j = require "jararaca"

local jobs = j.metrics.counter("app_jobs_total", "Jobs done, by kind.", { "kind" })
local sizes = j.metrics.histogram("app_job_size_bytes", 'Job sizes "in bytes".\nSecond line.', { "kind" },
  { 10, 100, 1000 })

local Api = j.RestController("/api", { name = "MetricsApi" })

Api.item = j.Get("/items/{id}", function(_, req) return { id = req.params.id } end)

Api.job = j.Post("/jobs/{kind}", { status = 201 }, function(_, req)
  local kind = req.params.kind
  jobs:inc { kind = kind }
  sizes:observe(#kind * 10, { kind = kind })
  return { kind = kind }
end)

Api.boom = j.Get("/boom", function() error("kaboom") end)

return j.Microservice { name = "metrics-app", controllers = { Api }, metrics = true }
