--- jararaca.otlp.metrics: the metric registries' series as OTLP `Metric`s
-- (cumulative: counters as monotonic sums, up-down counters as
-- non-monotonic sums, histograms with their explicit bounds), pushed once
-- per export interval and at shutdown. Not a hot path.
local enc = require "jararaca.core.otlp_encode"
local now_us = require("jararaca.tracing.span").now_us

local M = {}

-- The registries of this process: the users' (jararaca.metrics.default) and
-- the built-in HTTP ones when that module is in use.
local function registries()
  local regs = { require("jararaca.metrics").default }
  local http = package.loaded["jararaca.metrics.http"]
  if http and http.builtin then regs[#regs + 1] = http.builtin().registry end
  return regs
end
M.registries = registries

-- A metric's series as data points.
local function points(m, series)
  local pts = {}
  for i, s in ipairs(series) do
    local attrs
    if #m.labels > 0 then
      attrs = {}
      for k, name in ipairs(m.labels) do attrs[name] = s.values[k] end
    end
    if m.kind == "histogram" then
      pts[i] = { attributes = attrs, count = s.count, sum = s.sum, bounds = m.buckets, counts = s.counts }
    else
      pts[i] = { attributes = attrs, value = s.value }
    end
  end
  return pts
end

--- Encode every metric that has series: a list of `Metric` bytes.
--- start_us: the cumulative series' start (the process's export start).
function M.encode(start_us, regs)
  local out, t = {}, now_us()
  for _, reg in ipairs(regs or registries()) do
    local by_metric, order = {}, {}
    reg:collect(function(m, s)
      local l = by_metric[m]
      if not l then
        l = {}
        by_metric[m] = l
        order[#order + 1] = m
      end
      l[#l + 1] = s
    end)
    for _, m in ipairs(order) do
      local bytes = enc.metric {
        name = m.name, description = m.help,
        type = m.kind == "histogram" and "histogram" or "sum",
        monotonic = m.kind == "counter",
        start_us = start_us, time_us = t, points = points(m, by_metric[m]),
      }
      if bytes then out[#out + 1] = bytes end
    end
  end
  return out
end

--- Push every metric to exporter e: the number pushed.
function M.push(e, start_us)
  local n = 0
  for _, bytes in ipairs(M.encode(start_us)) do
    if e:push("metrics", bytes) then n = n + 1 end
  end
  return n
end

return M
