-- One app that defines the schema name "Item" twice with two shapes: loading
-- it fails, naming both places (spec/integration/schema_scopes_spec.lua).
local j = require "jararaca"
local s = require "jararaca.schema"

local Item = s.object("Item", { { "id", s.integer() } })
local Other = s.object("Item", { { "sku", s.string() } })

local Api = j.RestController("/clash", { name = "ClashApi" })
Api.get = j.Post("", { body = Item, response = Other }, function(self, req) return req.json end)

return j.Microservice { name = "clash", controllers = { Api } }
