-- An app configured by the environment, read when the file loads
-- (spec/unit/testing_spec.lua: testing.with_env around testing.client).
local j = require "jararaca"

local greeting = os.getenv("GREETING") or "hello"

local Api = j.RestController("", { name = "EnvApi" })

Api.greeting = j.Get("/greeting", function()
  return { greeting = greeting }
end)

return j.Microservice { name = "env", controllers = { Api } }
