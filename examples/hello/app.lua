-- examples/hello: the smallest jararaca service, used by the benchmarks.
--   jararaca server examples/hello/app.lua --port 8000
--   curl 'localhost:8000/hello?name=x'     -> {"message":"Hello x"}
--   curl localhost:8000/items/42           -> {"id":42}
--   curl -d '{"a":1}' localhost:8000/echo  -> {"a":1}
local j = require "jararaca"

-- A provider: a plain class table. DI builds one instance per process.
local Greeter = { __name = "Greeter" }
Greeter.__index = Greeter
function Greeter:greet(name) return "Hello " .. name end

local HelloController = j.RestController("", {
  name = "HelloController",
  inject = { greeter = Greeter },   -- field = token: self.greeter is the Greeter
})

HelloController.hello = j.Get("/hello", function(self, req)
  return { message = self.greeter:greet(req.query.name or "world") }
end)

HelloController.item = j.Get("/items/{id:int}", function(self, req)
  return { id = req.params.id }
end)

HelloController.echo = j.Post("/echo", function(self, req)
  local body = req.json
  if body == nil then error(j.HTTPError(400, "send a JSON body")) end
  return body
end)

return j.Microservice {
  providers = { Greeter },
  controllers = { HelloController },
}
