-- The app of catalog_a/ and catalog_b/ (spec/integration/schema_scopes_spec.lua),
-- built from each one's own models.lua. A module outside both app
-- directories: loaded once and shared, while the refs it makes when an app
-- file calls it belong to that app.
local j = require "jararaca"
local s = require "jararaca.schema"

return function(letter, models)
  local Items = j.RestController("/items", { name = "Catalog" .. letter .. "Items" })

  Items.create = j.Post("", { body = models.Item, response = models.Item, status = 201 }, function(self, req)
    return req.json
  end)

  -- by name: s.ref resolves in this app's names
  Items.by_ref = j.Post("/by-ref", { body = s.ref("Item"), response = s.ref("Item") }, function(self, req)
    return req.json
  end)

  return j.Microservice { name = "catalog-" .. letter:lower(), controllers = { Items } }
end
