-- One of two apps with the same schema names and a module of the same name
-- (models.lua), loaded in one run by spec/integration/schema_scopes_spec.lua.
local j = require "jararaca"
local s = require "jararaca.schema"
local models = require "models"

local Items = j.RestController("/items", { name = "CatalogAItems" })

Items.create = j.Post("", { body = models.Item, response = models.Item, status = 201 }, function(self, req)
  return req.json
end)

-- by name: s.ref resolves in this app's names
Items.by_ref = j.Post("/by-ref", { body = s.ref("Item"), response = s.ref("Item") }, function(self, req)
  return req.json
end)

return j.Microservice { name = "catalog-a", controllers = { Items } }
