--- jararaca.otlp.logs: every log line jararaca.log writes (those its level
-- lets through) -> a `LogRecord` pushed to the exporter, with the trace and
-- span ids of the span it was written in and the transaction's request id.
local enc = require "jararaca.core.otlp_encode"
local now_us = require("jararaca.tracing.span").now_us

local M = {}

-- jararaca.log's levels -> OpenTelemetry severity numbers and texts
local SEVERITY = { [0] = 5, 9, 13, 17 }
local TEXT = { [0] = "DEBUG", "INFO", "WARN", "ERROR" }

--- The log sink for exporter e: fn(level, msg, request_id, trace_id,
--- span_id, sampled).
function M.sink(e)
  local encode = enc.log_record
  local rec = {} -- reused: encode reads it and keeps nothing
  local attrs = {}
  return function(level, msg, rid, tid, sid, sampled)
    local t = now_us()
    rec.time_us, rec.observed_us = t, t
    rec.severity_number, rec.severity_text = SEVERITY[level], TEXT[level]
    rec.body = msg
    attrs["request.id"] = rid
    rec.attributes = rid and attrs or nil
    rec.trace_id, rec.span_id, rec.sampled = tid, sid, tid and sampled == true or nil
    local bytes = encode(rec)
    if bytes then e:push("logs", bytes) end
  end
end

return M
