local j = require "jararaca"
local C = j.RestController("/c", { name = "NeedsRepo", inject = { repo = "TasksRepository" } })
C.get = j.Get("/", function(self) return {} end)
return j.Microservice { controllers = { C } }
