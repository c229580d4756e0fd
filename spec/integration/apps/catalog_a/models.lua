-- catalog_a's schemas: the same names as catalog_b's ("Status", "Item",
-- "ItemEvent"), other shapes (spec/integration/schema_scopes_spec.lua).
local s = require "jararaca.schema"

local M = {}

M.Status = s.enum("Status", { "draft", "published" })

M.Item = s.object("Item", {
  { "id", s.integer { minimum = 1 } },
  { "name", s.string { min_length = 1 } },
  { "status", s.ref("Status") },
  { "related", s.array(s.ref("Item")):default({}) },
})

s.expose(s.object("ItemEvent", { { "item_id", s.integer() } }))

return M
