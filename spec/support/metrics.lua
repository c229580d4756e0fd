-- spec/support/metrics.lua: read the Prometheus text the server answers.
--
--   local metrics = require "spec.support.metrics"
--   metrics.value(body, 'jararaca_http_requests_total{method="GET",route="/x",status="200"}')  --> 3 | nil
local M = {}

--- The value of the sample line naming exactly this series, or nil.
function M.value(body, series)
  for line in body:gmatch("[^\n]+") do
    if line:sub(1, #series + 1) == series .. " " then return tonumber(line:sub(#series + 2)) end
  end
end

return M
