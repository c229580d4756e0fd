-- Not a spec of the suite (no _spec suffix): spec/integration/cli_spec.lua
-- runs it as `jararaca test <this file>` to see what a test run prints when
-- an app applies its migrations on start through the test client.
local testing = require "jararaca.testing"

describe("an app that migrates on start", function()
  it("starts through the test client and answers", function()
    local c = testing.with_env({
      MIGRATE_DB = testing.temp_database(),
      MIGRATE_DIR = false, -- the default: migrations/ next to the app file
      MIGRATE_ON_START = "1",
    }, testing.client, "spec/integration/apps/migrations_app.lua")
    -- the migrations ran: 0005_seed.lua inserted one row
    assert.same({ n = 1 }, c:get("/items/count").json)
    c:close()
    testing.cleanup()
  end)
end)
