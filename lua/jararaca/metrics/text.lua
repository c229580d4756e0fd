-- jararaca.metrics.text: a registry in the Prometheus text exposition
-- format 0.0.4 (what `GET /metrics` answers; `promtool check metrics`
-- accepts it).
--
--   # HELP name help (backslash and line feed escaped)
--   # TYPE name counter|gauge|histogram
--   name{label="value"} 42
--   name_bucket{label="value",le="0.5"} 3     cumulative, then le="+Inf"
--   name_sum{label="value"} 1.25
--   name_count{label="value"} 3
--
-- Metrics come in registration order, series in the order they were first
-- seen; a metric with labels and no series yet writes only its HELP and
-- TYPE lines.
local registry = require "jararaca.metrics.registry"

local M = {}

local concat = table.concat
local number_text = registry.number_text

M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

local function escape_help(s)
  return (s:gsub("[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" }))
end

local function histogram(out, n, m, s)
  local name, les, counts, prefix = m.name, m.le_texts, s.counts, s.le_prefix
  local cum = 0
  for i = 1, #les do
    cum = cum + counts[i]
    n = n + 1
    out[n] = name .. "_bucket" .. prefix .. les[i] .. '"} ' .. number_text(cum)
  end
  out[n + 1] = name .. "_sum" .. s.text .. " " .. number_text(s.sum)
  out[n + 2] = name .. "_count" .. s.text .. " " .. number_text(s.count)
  return n + 2
end

--- The exposition text of one or more registries (later ones after the
--- first; a name in two of them is written twice: keep names apart).
function M.render(...)
  local out, n = {}, 0
  for r = 1, select("#", ...) do
    local reg = select(r, ...)
    if reg.run_collectors then reg:run_collectors() end
    for _, m in ipairs(reg.list) do
      out[n + 1] = "# HELP " .. m.name .. " " .. escape_help(m.help)
      out[n + 2] = "# TYPE " .. m.name .. " " .. m.type
      n = n + 2
      for _, s in ipairs(m.list) do
        if m.kind == "histogram" then
          n = histogram(out, n, m, s)
        else
          n = n + 1
          out[n] = m.name .. s.text .. " " .. number_text(s.value)
        end
      end
    end
  end
  out[n + 1] = ""
  return concat(out, "\n")
end

return M
