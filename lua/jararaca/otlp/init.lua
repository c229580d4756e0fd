--- jararaca.otlp: traces, metrics and logs exported over OTLP/HTTP
-- (docs/otlp.md). The runtime starts it in every server, worker and
-- scheduler process (after the fork: one exporter, with its own thread, per
-- process) and stops it at shutdown.
--
--   otlp.start(app, kind)   -- config from Microservice.otlp + OTEL_* (jararaca.otlp.config);
--                           -- no endpoint: nothing is exported, nothing costs
--   otlp.stop()             -- last metrics, flush (bounded), close
--
-- Traces: finished sampled spans, when tracing is on and the app's
-- tracing.exporter is nil or "otlp" (one `Span` pushed per span end).
-- Logs: every line jararaca.log writes. Metrics: every registry series,
-- every export interval and at stop. The exporter's failures (its stats)
-- are logged at most once per interval.
local sched = require "jararaca.sched"
local log = require "jararaca.log"
local enc = require "jararaca.core.otlp_encode"
local now_us = require("jararaca.tracing.span").now_us

local M = {}

--- The longest a stop waits for what is queued to be exported.
M.FLUSH_TIMEOUT = 5

local current -- { exporter, task, start_us, seen = { signal -> stats } } of this process

local SIGNALS = { "traces", "metrics", "logs" }

local function signal_on(cfg, name)
  local s = cfg[name]
  return type(s) == "table" and s.enabled ~= false
end

-- Log what the exporter gave up on (dropped: queue full; failed: given up
-- after retries, or rejected by a 2xx's partial_success; rejected: in the
-- collector's unit) since the last report: one line per signal, not per batch.
local function report(st)
  for _, signal in ipairs(SIGNALS) do
    if signal_on(st.cfg, signal) then
      local s = st.exporter:stats(signal)
      local seen = st.seen[signal] or { dropped = 0, failed = 0, rejected = 0 }
      local dropped, failed = (s.dropped or 0) - seen.dropped, (s.failed or 0) - seen.failed
      local rejected = (s.rejected or 0) - seen.rejected
      if dropped > 0 or failed > 0 or rejected > 0 then
        log.warn(("otlp %s export: %d dropped (queue full), %d failed%s%s"):format(signal, dropped, failed,
          rejected > 0 and (", " .. rejected .. " rejected by the collector") or "",
          s.last_error and s.last_error ~= "" and (" (last error: " .. s.last_error .. ")") or ""))
      end
      st.seen[signal] = { dropped = s.dropped or 0, failed = s.failed or 0, rejected = s.rejected or 0 }
    end
  end
end

local function push_and_report(st)
  if signal_on(st.cfg, "metrics") then require("jararaca.otlp.metrics").push(st.exporter, st.start_us) end
  report(st)
end

-- Every interval: the metrics, then the failures report. An error in one
-- round is logged and the next round runs (sleep stays outside the pcall:
-- stop cancels the task there).
local function tick(st, interval)
  while true do
    sched.sleep(interval)
    local ok, err = pcall(push_and_report, st)
    if not ok then log.warn("otlp: metrics export round failed: ", tostring(err)) end
  end
end

--- Start exporting for app (kind: "http" | "worker" | "scheduler"). Raises
--- a startup error when Microservice.otlp or an OTEL_* variable is bad.
function M.start(app, kind)
  M.stop()
  local config = require "jararaca.otlp.config"
  local cfg, err = config.from(app.otlp, os.getenv, app.name)
  local tr = app.tracing
  local want_spans = tr ~= nil and tr.enabled ~= false and (tr.exporter == nil or tr.exporter == "otlp")
  if not cfg then
    if err then error(err, 0) end
    if want_spans and tr.exporter == "otlp" then
      log.warn("Microservice.tracing.exporter = \"otlp\" but no OTLP endpoint is configured ",
        "(OTEL_EXPORTER_OTLP_ENDPOINT or Microservice.otlp.endpoint): spans are not exported")
    end
    return nil
  end
  cfg.resource = assert(enc.resource(cfg.resource_attributes or {}))
  cfg.scope_name, cfg.scope_version = "jararaca", require("jararaca.core.sys").version
  local e, eerr = require("jararaca.core.otlp").new(cfg)
  if not e then error("OTLP exporter: " .. tostring(eerr), 0) end
  local st = { cfg = cfg, exporter = e, start_us = now_us(), seen = {}, kind = kind }
  current = st
  if want_spans and signal_on(cfg, "traces") then
    require("jararaca.tracing").set_sink(require("jararaca.otlp.traces").sink(e), e)
  end
  if signal_on(cfg, "logs") then log.set_sink(require("jararaca.otlp.logs").sink(e)) end
  -- the built-in families are exported: counted from now (this runs before
  -- the bus and the scheduler start), not from the first push, an interval
  -- later (a worker without an admin port turns them on nowhere else)
  if signal_on(cfg, "metrics") then require("jararaca.metrics.builtin").enable() end
  local interval = signal_on(cfg, "metrics") and cfg.metrics.interval_ms and cfg.metrics.interval_ms / 1000 or 60
  st.task = sched.spawn(tick, st, interval)
  return e
end

--- The exporter of this process (nil when export is off).
function M.exporter() return current and current.exporter end

--- Stop: push the metrics one last time, export what is queued (waiting at
--- most M.FLUSH_TIMEOUT seconds), close. Idempotent.
function M.stop()
  local st = current
  if not st then return end
  current = nil
  if st.task then st.task:cancel() end
  if package.loaded["jararaca.tracing"] then require("jararaca.tracing").set_sink(nil) end
  log.set_sink(nil)
  if signal_on(st.cfg, "metrics") then
    local ok, err = pcall(require("jararaca.otlp.metrics").push, st.exporter, st.start_us)
    if not ok then log.warn("otlp: last metrics export failed: ", tostring(err)) end
  end
  local ok, msg = st.exporter:flush(M.FLUSH_TIMEOUT)
  pcall(report, st)
  if not ok then log.warn("otlp: shutdown flush: ", msg) end
  st.exporter:close(0)
end

return M
