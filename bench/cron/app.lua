-- bench/cron/app.lua: the app of bench/cron/run.sh. One `jararaca server
-- --scheduler` process serves GET /ping while an every-second action logs
-- its tick and when it fired:
--   cron tick=<epoch s> fired_at=<epoch s, µs>
-- (a warn line, so `--log-level warn` keeps only these). The run does no
-- I/O besides that line: what is measured is when the timer got the loop.
local j = require "jararaca"

local Bench = j.RestController("", { name = "Bench" })

Bench.ping = j.Get("/ping", function() return { ok = true } end)

local format = string.format
Bench.beat = j.ScheduledAction("* * * * * *", function(_, run)
  j.log.warn(format("cron tick=%d fired_at=%.6f", run.tick, run.fired_at))
end)

return j.Microservice { name = "cronbench", controllers = { Bench } }
