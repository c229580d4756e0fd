-- jararaca.metrics.schedule: the scheduler's built-in metrics.
--
--   jararaca_scheduler_runs_total{action,outcome}      counter (ok|error|timeout|published)
--   jararaca_scheduler_skips_total{action,reason}      counter (busy|not_ours|missed)
--   jararaca_scheduler_failures_total{action}          counter (run error or timeout, claim or publish failed)
--   jararaca_scheduler_lateness_seconds{action}        histogram (start - scheduled tick time)
--
-- Hooks (jararaca.schedule.scheduler) call in only when M.on.
local M = { on = false }

local runs, skips, failures, lateness

-- the scheduler's counts' names -> { family, label }
local RUN = { ok = "ok", failed = "error", timeout = "timeout", published = "published" }
local SKIP = { skipped = "busy", not_ours = "not_ours", missed = "missed" }

M.LATENESS_BUCKETS = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 }

function M.enable(reg)
  runs = reg:counter("jararaca_scheduler_runs_total",
    "Ticks run (or published for a worker), by action and outcome (ok, error, timeout, published).",
    { "action", "outcome" })
  skips = reg:counter("jararaca_scheduler_skips_total",
    "Ticks not run here, by action and reason (busy: the previous run still runs; not_ours: another scheduler "
    .. "claimed it; missed: the process was stalled past the tick).", { "action", "reason" })
  failures = reg:counter("jararaca_scheduler_failures_total",
    "Ticks that failed: the run raised or timed out, or claiming or publishing the tick failed, by action.",
    { "action" })
  lateness = reg:histogram("jararaca_scheduler_lateness_seconds",
    "Time from a tick's scheduled time to its firing, by action.", { "action" }, M.LATENESS_BUCKETS)
  M.on = true
end

--- The scheduler counted `what` for action (n ticks, default 1); run:
--- whether it was a run's outcome (a claim or publish failure is not).
function M.count(action, what, n, run)
  n = n or 1
  local r, k = RUN[what], SKIP[what]
  if r and (run or what == "published") then
    local s = runs:with(action, r)
    s.value = s.value + n
  elseif k then
    local s = skips:with(action, k)
    s.value = s.value + n
  end
  if what == "failed" or what == "timeout" then
    local s = failures:with(action)
    s.value = s.value + n
  end
end

--- A tick of action fired `late` seconds after its scheduled time.
function M.late(action, late)
  lateness:with(action):observe(late > 0 and late or 0)
end

return M
