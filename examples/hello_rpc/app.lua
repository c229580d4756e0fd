-- examples/hello_rpc/app.lua: the seed's HelloService, calling the HelloRPC
-- service (rpc_server.lua, another process) through a declarative client.
--   jararaca server examples/hello_rpc/rpc_server.lua --port 8001 &
--   HELLO_RPC_URL=http://127.0.0.1:8001 jararaca server examples/hello_rpc/app.lua --port 8000
--   curl localhost:8000/ping                 -> {"message":"pong"} (from the other process)
--   curl 'localhost:8000/hello?gather=true'  -> ten waits at once: about the longest one
--   curl 'localhost:8000/hello'              -> one after the other: about their sum
local j = require "jararaca"
local s = j.schema
local contract = require "hello_rpc" -- (the app's directory is on package.path)

local Config = s.object("HelloConfig", {
  { "hello_rpc_url", s.string():default("http://127.0.0.1:8001") }, -- HELLO_RPC_URL
})

-- The seed's HelloService: a provider; its methods are traced (a span each).
local HelloService = { __name = "HelloService", inject = { hello_rpc = "HELLO_RPC" } }
HelloService.__index = HelloService

HelloService.ping = j.TracedFunc("ping", function(self)
  return self.hello_rpc:ping() -- value | nil, message, code, response
end)

HelloService.random_await = j.TracedFunc("random-await", function(self, index)
  j.log.info("Random await ", index)
  local ms = 50 + math.random(0, 150)
  local waited = assert(self.hello_rpc:wait({ index = index, ms = ms }))
  j.log.info("Random await ", index, " done")
  return waited
end)

HelloService.hello = j.TracedFunc("hello-service", function(self, gather)
  local t0 = j.now()
  local results = {}
  if gather then
    local waits = {}
    for i = 1, 10 do waits[i] = function() return self:random_await(i - 1) end end
    results = { j.gather(unpack(waits)) }
  else
    for i = 1, 10 do results[i] = self:random_await(i - 1) end
  end
  local most = 0
  for _, r in ipairs(results) do most = math.max(most, r.in_flight) end
  return {
    message = ("Elapsed time: %.3f"):format(j.now() - t0),
    most_in_flight = most, -- how many waits the HelloRPC service ran at once
  }
end)

local HelloController = j.RestController("", { name = "HelloController", inject = { service = HelloService } })

HelloController.ping = j.Get("/ping", { response = contract.HelloResponse }, function(self)
  local pong, msg, code = self.service:ping()
  if not pong then error(j.HTTPError(502, { message = msg, code = code })) end
  return pong
end)

HelloController.hello = j.Get("/hello", {
  query = { gather = s.boolean():default(false) },
  response = s.object { { "message", s.string() }, { "most_in_flight", s.integer() } },
}, function(self, req)
  return self.service:hello(req.query.gather)
end)

return j.Microservice {
  name = "hello_service",
  providers = {
    -- the client, built once the configuration is read (base URL from HELLO_RPC_URL)
    j.ProviderSpec { provide = "HELLO_RPC", inject = { cfg = "HelloConfig" }, after_interceptors = true,
      use_factory = function(d) return j.rpc.build(contract.HelloRPC, { base_url = d.cfg.hello_rpc_url }) end },
    j.ProviderSpec { provide = HelloService, use_class = HelloService, after_interceptors = true },
  },
  controllers = { HelloController },
  interceptors = { j.config.AppConfigurationInterceptor { token = "HelloConfig", schema = Config } },
  tracing = { sample = 1.0 }, -- spans for each call; traceparent sent to the HelloRPC service
}
