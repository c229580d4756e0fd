-- jararaca.core.cron: the Lua face of core/cron.c and core/tz.c. The
-- engine's thousands of croniter vectors are checked in spec/c/test_cron.c;
-- here: the binding's shapes, errors and argument handling.
local cron = require "jararaca.core.cron"

-- 2023-11-14T22:13:20Z, a Tuesday
local T0 = 1700000000

local function utc(t) return os.date("!%Y-%m-%d %H:%M:%S", t) end

local function next_of(expr, after, zone)
  local c = assert(cron.parse(expr))
  return c:next(after, zone)
end

describe("jararaca.core.cron", function()
  it("parses 5- and 6-field expressions and computes the next fire in UTC", function()
    local c = assert(cron.parse("*/5 * * * *"))
    assert.is_false(c:has_seconds())
    assert.equal("2023-11-14 22:15:00", utc(c:next(T0)))
    local s = assert(cron.parse("* * * * * */3"))
    assert.is_true(s:has_seconds())
    assert.equal("2023-11-14 22:13:21", utc(s:next(T0)))
    assert.equal("2023-11-14 22:13:24", utc(s:next(T0 + 1)))
  end)

  it("returns the first fire strictly after `after`, whole seconds", function()
    local c = assert(cron.parse("* * * * * *"))
    assert.equal(T0 + 1, c:next(T0))
    assert.equal(T0 + 1, c:next(T0 + 0.5))
    assert.equal(T0, c:next(T0 - 0.25))
  end)

  it("tostring gives the expression as written", function()
    assert.equal("0 9 * * MON-FRI", tostring(assert(cron.parse("0 9 * * MON-FRI"))))
    assert.equal("@daily", tostring(assert(cron.parse("@daily"))))
  end)

  it("applies the day-of-month / day-of-week OR rule", function()
    -- the 13th or any Friday: Friday the 17th comes first
    assert.equal("2023-11-17 00:00:00", utc(next_of("0 0 13 * fri", T0)))
    -- only one day field restricted: both must hold (AND)
    assert.equal("2023-12-01 00:00:00", utc(next_of("0 0 1 * *", T0)))
    assert.equal("2023-11-17 00:00:00", utc(next_of("0 0 * * 5", T0)))
  end)

  it("rejects bad expressions with the expression, the position and the reason", function()
    local cases = {
      {"61 * * * *", "position 1: minute 61 is out of range %(0%-59%)"},
      {"* * *", "position 6: too few fields: 3"},
      {"* * * * * * *", "position 13: too many fields"},
      {"*/0 * * * *", "position 3: step 0 is not allowed"},
      {"1,,2 * * * *", "position 3: empty item in the minute field"},
      {"* * * foo *", "position 7: unknown month name 'foo'"},
      {"5-1 * * * *", "position 1: range 5%-1 is reversed"},
      {"@sometimes", "position 1: unknown alias '@sometimes'"},
      {"", "position 1: empty expression"},
      {"0 0 L * *", "position 5: expected a number or '%*' in the day%-of%-month field"},
    }
    for _, case in ipairs(cases) do
      local c, msg, code = cron.parse(case[1])
      assert.is_nil(c, case[1])
      assert.equal("invalid", code)
      assert.equal('"' .. case[1] .. '": ', msg:sub(1, #case[1] + 4))
      assert.truthy(msg:find(case[2]), msg)
    end
  end)

  it("says when an expression never fires", function()
    local c = assert(cron.parse("0 0 30 2 *"))
    local t, msg, code = c:next(T0)
    assert.is_nil(t)
    assert.equal("never", code)
    assert.equal('"0 0 30 2 *" never fires (no fire time within 50 years)', msg)
  end)

  it("raises on misuse", function()
    assert.has_error(function() cron.parse(42 < 1) end)
    local c = assert(cron.parse("* * * * *"))
    assert.has_error(function() c:next("soon") end)
    assert.has_error(function() c:next(0 / 0) end)
    assert.has_error(function() c:next(1 / 0) end)
    assert.has_error(function() c:next(T0, c) end)
    assert.has_error(function() c:next(T0, 3) end)
    assert.has_error(function() c:next(1e15) end)     -- past the year 9999
    assert.has_error(function() c:next(-1e12) end)    -- before the year 1
  end)

  it("computes wall-clock fires in a named zone, across DST (docs/cron.md)", function()
    local berlin = assert(cron.zone("Europe/Berlin"))
    assert.equal("Europe/Berlin", tostring(berlin))
    assert.equal(7200, berlin:offset(1719792000))  -- 2024-07-01: CEST
    assert.equal(3600, berlin:offset(1733011200))  -- 2024-12-01: CET
    -- 2024-03-31 02:00 CET -> 03:00 CEST: 02:30 does not exist that day
    assert.equal("2024-04-01 00:30:00", utc(next_of("30 2 * * *", 1711800000, berlin)))
    -- 2024-10-27 03:00 CEST -> 02:00 CET: 02:30 happens twice
    local daily = assert(cron.parse("30 2 * * *"))
    assert.equal("2024-10-28 01:30:00", utc(daily:next(1729989000, berlin)))   -- once
    local hourly = assert(cron.parse("30 * * * *"))
    assert.equal("2024-10-27 01:30:00", utc(hourly:next(1729989000, "Europe/Berlin")))  -- both
    -- UTC by default
    assert.equal("2024-10-27 02:30:00", utc(daily:next(1729989000)))
  end)

  it("loads zones by name and reports unknown ones", function()
    local z = assert(cron.zone("UTC"))
    assert.equal("UTC", z:name())
    assert.equal("UTC", tostring(z))
    assert.equal(0, z:offset(T0))
    assert.equal(z, cron.zone("UTC"))
    local none, msg, code = cron.zone("America/Nowhere")
    assert.is_nil(none)
    assert.equal("not_found", code)
    assert.truthy(msg:find("America/Nowhere", 1, true))
    local c = assert(cron.parse("* * * * *"))
    assert.equal(T0 + 40, c:next(T0, z))
    assert.equal(T0 + 40, c:next(T0, "UTC"))
    local t, msg2, code2 = c:next(T0, "America/Nowhere")
    assert.is_nil(t)
    assert.equal("not_found", code2)
    assert.truthy(msg2:find("America/Nowhere", 1, true))
  end)
end)
