-- jararaca.metrics.bus: the message bus's built-in metrics.
--
--   jararaca_bus_messages_sent_total{topic}                  counter
--   jararaca_bus_messages_processed_total{handler,outcome}   counter (ack|retry|dead|release|lost)
--   jararaca_bus_handler_failures_total{handler}             counter (raised or timed out)
--   jararaca_bus_messages_in_flight{handler}                 gauge (read at scrape time)
--   jararaca_bus_handler_duration_seconds{handler}           histogram
--
-- Retries and dead letters are processed_total{outcome="retry"} and
-- {outcome="dead"}: one family, so their rates add up to the deliveries.
-- Hooks (jararaca.bus.worker, publisher, outbox) call in only when M.on.
local M = { on = false }

local pairs, ipairs = pairs, ipairs

local sent, processed, failures, in_flight, duration
local workers = setmetatable({}, { __mode = "k" }) -- running bus workers (their loops' inflight)

-- the worker's counts' names -> the outcome label
local OUTCOME = { acked = "ack", retried = "retry", dead = "dead", released = "release", lost = "lost" }

function M.enable(reg)
  sent = reg:counter("jararaca_bus_messages_sent_total", "Messages handed to the broker, by topic.", { "topic" })
  processed = reg:counter("jararaca_bus_messages_processed_total",
    "Deliveries settled, by handler and outcome (ack, retry, dead, release, lost).", { "handler", "outcome" })
  failures = reg:counter("jararaca_bus_handler_failures_total",
    "Handler runs that raised or timed out, by handler.", { "handler" })
  in_flight = reg:updown_counter("jararaca_bus_messages_in_flight", "Deliveries being handled now, by handler.",
    { "handler" })
  duration = reg:histogram("jararaca_bus_handler_duration_seconds",
    "Time a delivery's handling took (interceptors and transaction included), by handler.", { "handler" })
  reg:on_collect(function()
    for w in pairs(workers) do
      for _, loop in ipairs(w.loops) do in_flight:with(loop.handler.name).value = 0 end
    end
    for w in pairs(workers) do
      for _, loop in ipairs(w.loops) do
        local s = in_flight:with(loop.handler.name)
        s.value = s.value + loop.inflight
      end
    end
  end)
  M.on = true
end

--- msgs were handed to the broker (after their commit, when staged).
function M.sent(msgs)
  for i = 1, #msgs do
    local s = sent:with(msgs[i].topic)
    s.value = s.value + 1
  end
end

--- A bus worker started: its loops' in-flight counts are read at scrape time.
function M.worker(w)
  local names = {}
  for _, loop in ipairs(w.loops) do names[loop.handler.queue] = loop.handler.name end
  w.metric_names = names
  workers[w] = true
end

--- A delivery of queue settled (count: the worker's counts' key).
function M.settled(w, queue, count)
  local s = processed:with((w.metric_names and w.metric_names[queue]) or queue, OUTCOME[count] or count)
  s.value = s.value + 1
end

--- A handler's run ended (ok: it did not raise or time out).
function M.handled(handler, seconds, ok)
  duration:with(handler):observe(seconds)
  if not ok then
    local s = failures:with(handler)
    s.value = s.value + 1
  end
end

return M
