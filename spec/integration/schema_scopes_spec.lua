-- Two apps that define the same schema names (and each its own models.lua)
-- loaded in one run: each validates, documents and generates with its own
-- shapes. One app defining a name twice still fails, naming both places.
local testing = require "jararaca.testing"
local runtime = require "jararaca.runtime"
local openapi = require "jararaca.openapi"
local tsgen = require "jararaca.tsgen"

local A = "spec/integration/apps/catalog_a/app.lua"
local B = "spec/integration/apps/catalog_b/app.lua"

local ITEM_A = { id = 1, name = "lamp", status = "draft" }
local ITEM_B = { sku = "AB-12", price = 9.5, status = "sold_out" }

local function error_fields(res)
  local out = {}
  for _, e in ipairs(res.json.detail) do out[#out + 1] = table.concat(e.loc, ".") end
  table.sort(out)
  return table.concat(out, " ")
end

describe("two apps with the same schema names in one run", function()
  local a, b
  setup(function()
    a = testing.client(A)
    b = testing.client(B) -- loads after a: its own "Item", "Status" and models.lua
  end)
  teardown(function()
    assert.is_true((a:close()))
    assert.is_true((b:close()))
  end)

  it("each validates bodies against its own Item (the object and a ref by name)", function()
    for _, path in ipairs { "/items", "/items/by-ref" } do
      local res = a:post(path, { json = ITEM_A })
      assert.equal(path == "/items" and 201 or 200, res.status, res.body)
      assert.same({ id = 1, name = "lamp", status = "draft", related = {} }, res.json)
      res = b:post(path, { json = ITEM_B })
      assert.equal(path == "/items" and 201 or 200, res.status, res.body)
      assert.same(ITEM_B, res.json)

      res = a:post(path, { json = ITEM_B })
      assert.equal(422, res.status)
      assert.equal("body.id body.name body.status", error_fields(res))
      res = b:post(path, { json = ITEM_A })
      assert.equal(422, res.status)
      assert.equal("body.price body.sku body.status", error_fields(res))
    end
  end)

  it("refs inside a schema resolve in the app that made them (Status, recursive Item)", function()
    local res = a:post("/items", { json = { id = 1, name = "x", status = "sold_out" } })
    assert.equal(422, res.status)
    assert.equal("body.status", error_fields(res))
    assert.truthy(res.json.detail[1].msg:find("'draft' or 'published'", 1, true), res.body)
    res = a:post("/items", { json = { id = 1, name = "x", status = "draft", related = { ITEM_A, ITEM_B } } })
    assert.equal(422, res.status)
    assert.equal("body.related.2.id body.related.2.name body.related.2.status", error_fields(res))
  end)

  it("each app's OpenAPI document has its own components", function()
    local da = openapi.document(a.rt.app)
    local db = openapi.document(b.rt.app)
    local ia, ib = da.components.schemas.Item, db.components.schemas.Item
    assert.same({ "id", "name", "related", "status" }, (function()
      local k = {}
      for name in pairs(ia.properties) do k[#k + 1] = name end
      table.sort(k)
      return k
    end)())
    assert.is_nil(ia.properties.sku)
    assert.truthy(ib.properties.sku and ib.properties.price)
    assert.is_nil(ib.properties.id)
    assert.same({ "draft", "published" }, da.components.schemas.Status.enum)
    assert.same({ "in_stock", "sold_out" }, db.components.schemas.Status.enum)
  end)

  it("each app's TypeScript has its own types, exposed ones included", function()
    local ta = assert(tsgen.generate(a.rt.app))
    local tb = assert(tsgen.generate(b.rt.app))
    assert.truthy(ta:find("export interface Item {\n  id: number;", 1, true), ta)
    assert.truthy(tb:find("export interface Item {\n  sku: string;", 1, true), tb)
    assert.truthy(ta:find("export interface ItemEvent {\n  item_id: number;", 1, true), ta)
    assert.truthy(tb:find("export interface ItemEvent {\n  sku: string;", 1, true), tb)
    assert.falsy(ta:find("sold_out", 1, true))
    assert.falsy(tb:find("published", 1, true))
  end)

  it("the first app loaded again is still itself (its models.lua again, not the other's)", function()
    local again = testing.client(A)
    assert.equal(201, again:post("/items", { json = ITEM_A }).status)
    assert.equal(422, again:post("/items", { json = ITEM_B }).status)
    again:close()
    -- and the other app, already started, is unchanged
    assert.equal(201, b:post("/items", { json = ITEM_B }).status)
  end)
end)

describe("one app that defines a schema name twice", function()
  it("fails to load, naming both places", function()
    local app, err = runtime.load_app("spec/integration/apps/schema_clash.lua")
    assert.is_nil(app)
    assert.truthy(err:find("schema_clash.lua:7: schema name 'Item' is already defined at "
      .. "spec/integration/apps/schema_clash.lua:6 (both in app spec/integration/apps/schema_clash.lua)", 1, true), err)
  end)
end)
