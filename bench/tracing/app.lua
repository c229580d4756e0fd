-- bench/tracing/app.lua: examples/hello with the tracing mode of
-- $JR_BENCH_TRACING (bench/tracing/run.sh):
--   off   no `tracing` in the app (compiled in, off)
--   drop  tracing on, 100 % sampling, spans handed to a sink that drops them
--   otlp  tracing on, 100 % sampling, OTLP export to $OTEL_EXPORTER_OTLP_ENDPOINT
--         (needs the OTLP exporter, issue #13)
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") or "."
local app = dofile(here .. "/../../examples/hello/app.lua")
local mode = os.getenv("JR_BENCH_TRACING") or "off"
if mode == "drop" then
  app.tracing = { sample = 1.0, exporter = function() end }
elseif mode == "otlp" then
  app.tracing = { sample = 1.0, exporter = "otlp" }
elseif mode ~= "off" then
  error("JR_BENCH_TRACING: expected off, drop or otlp, got " .. mode)
end
return app
