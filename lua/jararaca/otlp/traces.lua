--- jararaca.otlp.traces: finished sampled spans -> the exporter, one
-- encoded `Span` pushed per span at its end (no Lua-side buffer: the
-- exporter's queue and thread batch them).
local enc = require "jararaca.core.otlp_encode"

local M = {}

--- The tracing sink for exporter e: fn(span). A span that cannot be encoded
--- (a hand-made bad id) or does not fit the full queue is dropped: the
--- exporter counts what it drops, the request goes on.
function M.sink(e)
  local encode_span = enc.span
  return function(sp)
    local bytes = encode_span(sp)
    if bytes then e:push("traces", bytes) end
  end
end

return M
