-- examples/hello_rpc/rpc_server.lua: the HelloRPC service the HelloService
-- (app.lua) calls.
--   jararaca server examples/hello_rpc/rpc_server.lua --port 8001
--   curl localhost:8001/hello/ping                 -> {"message":"pong"}
--   curl 'localhost:8001/hello/wait/3?ms=200'      -> {"index":3,"waited_ms":200,"in_flight":1}
local j = require "jararaca"
local s = j.schema
local contract = require "hello_rpc" -- (the app's directory is on package.path)

local HelloRPCController = j.RestController("/hello", { name = "HelloRPCController" })

HelloRPCController.ping = j.Get("/ping", { response = contract.HelloResponse }, function()
  j.log.info("ping")
  return { message = "pong" }
end)

-- Wait ms milliseconds; report how many waits were running at the end.
local in_flight = 0
HelloRPCController.wait = j.Get("/wait/{index:int}", {
  query = { ms = s.integer { minimum = 0, maximum = 10000 }:default(0) },
  response = contract.Waited,
}, function(_, req)
  in_flight = in_flight + 1
  local ok, err = pcall(j.sleep, req.query.ms / 1000)
  local running = in_flight
  in_flight = in_flight - 1
  if not ok then error(err, 0) end
  j.log.info("waited ", req.params.index)
  return { index = req.params.index, waited_ms = req.query.ms, in_flight = running }
end)

return j.Microservice {
  name = "hello_rpc",
  controllers = { HelloRPCController },
  tracing = { sample = 1.0 }, -- log lines carry the caller's trace id
}
