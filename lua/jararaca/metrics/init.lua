-- jararaca.metrics: metrics for users and the framework's own, served as
-- `GET /metrics` in the Prometheus text format (docs/metrics.md).
--
--   local m = require("jararaca").metrics      -- or require "jararaca.metrics"
--   local jobs = m.counter("app_jobs_total", "Jobs done.", { "kind" })
--   jobs:inc { kind = "mail" }
--   local queue = m.updown_counter("app_queue_length", "Jobs waiting.")
--   local t = m.histogram("app_job_seconds", "Job time.", { "kind" }, { 0.1, 1, 10 })
--
-- These register in the process's default registry (what /metrics
-- serves); a name can be registered once per process. m.registry() makes
-- a separate one (tests), m.render(reg...) writes the text.
local registry = require "jararaca.metrics.registry"
local text = require "jararaca.metrics.text"

local M = {}

M.default = registry.new()
M.DEFAULT_BUCKETS = registry.DEFAULT_BUCKETS
M.CONTENT_TYPE = text.CONTENT_TYPE
M.registry = registry.new

local function reg_fn(kind)
  local method = registry.new()[kind] -- the Registry method
  return function(...)
    -- error levels: the user's call is 2 levels up from the registry method
    local ok, m = pcall(method, M.default, ...)
    if not ok then error(m, 2) end
    return m
  end
end

M.counter = reg_fn("counter")
M.updown_counter = reg_fn("updown_counter")
M.histogram = reg_fn("histogram")

--- The exposition text of the default registry (and the built-in ones).
function M.render(...)
  if select("#", ...) > 0 then return text.render(...) end
  return text.render(M.default)
end

return M
