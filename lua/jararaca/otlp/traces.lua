--- jararaca.otlp.traces: finished sampled spans -> the exporter, each
-- encoded at its end straight into the exporter's queue (e:push_span: no
-- Lua string, no Lua-side buffer: the exporter's queue and thread batch
-- them). An HTTP server span whose attributes nothing read has them written
-- from its request by the encoder (no attribute table made).

local M = {}

--- The tracing sink for exporter e: fn(span). A span that cannot be encoded
--- (a hand-made bad id) or does not fit the full queue is dropped: the
--- exporter counts what it drops, the request goes on.
function M.sink(e)
  local push_span = e.push_span
  -- (pcall: an exporter closed meanwhile, at shutdown, raises; a sink must not)
  return function(sp) pcall(push_span, e, sp) end
end

return M
