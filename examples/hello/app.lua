-- examples/hello: the smallest jararaca service, used by the benchmarks.
--   jararaca server examples/hello/app.lua --port 8000
--   curl 'localhost:8000/hello?name=x'     -> {"message":"Hello x"}
--   curl localhost:8000/items/42           -> {"id":42}
--   curl -d '{"a":1}' localhost:8000/echo  -> {"a":1}
--   curl -d @user.json localhost:8000/users   (a typed body: see User below)
--   open http://localhost:8000/docs         (generated from the routes)
local j = require "jararaca"
local s = j.schema

-- A provider: a plain class table. DI builds one instance per process.
local Greeter = { __name = "Greeter" }
Greeter.__index = Greeter
function Greeter:greet(name) return "Hello " .. name end

local HelloController = j.RestController("", {
  name = "HelloController",
  inject = { greeter = Greeter },   -- field = token: self.greeter is the Greeter
})

HelloController.hello = j.Get("/hello", { summary = "Say hello" }, function(self, req)
  return { message = self.greeter:greet(req.query.name or "world") }
end)

HelloController.item = j.Get("/items/{id:int}", { summary = "Echo an item id" }, function(self, req)
  return { id = req.params.id }
end)

HelloController.echo = j.Post("/echo", { summary = "Echo any JSON body" }, function(self, req)
  local body = req.json
  if body == nil then error(j.HTTPError(400, "send a JSON body")) end
  return body
end)

-- A typed route: the body is validated (422 lists every error), defaults are
-- applied and the response is shaped by its schema.
local User = s.object("User", {
  { "id", s.uuid() },
  { "name", s.string { min_length = 1, max_length = 100 } },
  { "email", s.string { pattern = "^[^@%s]+@[^@%s]+$", format = "email" } },
  { "age", s.integer { minimum = 0, maximum = 150 } },
  { "score", s.number { minimum = 0 } },
  { "active", s.boolean():default(true) },
  { "role", s.enum("Role", { "admin", "user", "guest" }) },
  { "created_at", s.datetime() },
  { "tags", s.array(s.string { max_length = 20 }, { max_items = 10 }):default({}) },
  { "nickname", s.string():nullable():optional() },
})

HelloController.create_user = j.Post("/users", {
  summary = "Validate a user", body = User, response = User, status = 201,
}, function(self, req)
  return req.json
end)

return j.Microservice {
  name = "hello",
  providers = { Greeter },
  controllers = { HelloController },
}
