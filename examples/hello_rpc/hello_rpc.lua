-- examples/hello_rpc/hello_rpc.lua: the contract between the two services,
-- shared by both sides: the schemas, and HelloRPC, the declarative client
-- the HelloService (app.lua) calls the HelloRPC service (rpc_server.lua) with.
local j = require "jararaca"
local s = j.schema

local M = {}

M.HelloResponse = s.object("HelloResponse", { { "message", s.string() } })

M.Waited = s.object("Waited", {
  { "index", s.integer() },
  { "waited_ms", s.integer() },
  { "in_flight", s.integer() }, -- waits the server was running when this one ended (this one included)
})

M.HelloRPC = j.RestClient("/hello", {
  name = "HelloRPC",
  ping = j.rpc.Get("/ping", { response = M.HelloResponse }),
  wait = j.rpc.Get("/wait/{index:int}", {
    params = { index = s.integer { minimum = 0 } },
    query = { ms = s.integer { minimum = 0, maximum = 10000 } },
    response = M.Waited,
  }),
  -- idempotent GETs: retried on 502/503/504 and on a refused or dropped
  -- connection (three tries, 0.1 s then 0.2 s apart)
  retry = { attempts = 3, backoff = 0.1 },
  timeout = 5,
})

return M
