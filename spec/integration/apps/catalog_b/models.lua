-- catalog_b's schemas: the same names as catalog_a's ("Status", "Item",
-- "ItemEvent"), other shapes (spec/integration/schema_scopes_spec.lua).
local s = require "jararaca.schema"

local M = {}

M.Status = s.enum("Status", { "in_stock", "sold_out" })

M.Item = s.object("Item", {
  { "sku", s.string { pattern = "^%u%u%-%d+$" } },
  { "price", s.number { minimum = 0 } },
  { "status", s.ref("Status") },
})

s.expose(s.object("ItemEvent", { { "sku", s.string() } }))

return M
