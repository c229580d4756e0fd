-- The test client and OTLP: a test run exports nothing, whatever OTEL_*
-- the developer's shell sets, unless the test asks with
-- testing.client(app, { otlp = true }) (then it exports as a server does).
local j = require "jararaca"
local testing = require "jararaca.testing"
local log = require "jararaca.log"
local jotlp = require "jararaca.otlp"
local otlp = require "spec.support.otlp"

local C = j.RestController("/t", { name = "OtlpTesting" })
C.get = j.Get("/ping", function() return { ok = true } end)

local function app(name) return j.Microservice { name = name, controllers = { C } } end

describe("testing.client and OTLP", function()
  local rcv
  setup(function() rcv = otlp.start() end)
  teardown(function()
    if rcv then rcv:stop() end
    testing.cleanup()
  end)

  it("does not export when OTEL_EXPORTER_OTLP_ENDPOINT is set but the test did not ask", function()
    testing.with_env({ OTEL_EXPORTER_OTLP_ENDPOINT = rcv.endpoint }, function()
      local client = testing.client(app("otlp-quiet"))
      assert.is_nil(jotlp.exporter())
      assert.equal(200, client:get("/t/ping").status)
      assert.is_true(client:close())
    end)
  end)

  it("exports as a server does with { otlp = true }", function()
    testing.with_env({ OTEL_EXPORTER_OTLP_ENDPOINT = rcv.endpoint, OTEL_BLRP_SCHEDULE_DELAY = "50" }, function()
      local client = testing.client(app("otlp-asked"), { otlp = true })
      assert.is_not_nil(jotlp.exporter())
      log.info("asked for export")
      rcv:wait_for("logs", function(items)
        for _, l in ipairs(items) do
          if l.body and l.body.stringValue == "asked for export" then return true end
        end
      end)
      assert.is_true(client:close())
      assert.is_nil(jotlp.exporter())
    end)
  end)

  it("refuses opts that are not a table", function()
    assert.has_error(function() testing.client(app("otlp-bad"), true) end,
      "testing.client(app, opts): opts must be a table, got boolean")
  end)
end)
