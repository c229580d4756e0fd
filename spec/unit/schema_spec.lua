-- Specs for jararaca.schema: constructors, validation (every kind and
-- constraint, error aggregation and locations), encoding, refs, registry,
-- modifiers and misuse.
local s = require("jararaca.schema")
local json = require("jararaca.json")
local ffi = require("ffi")

local null = json.null
local int64 = json.int64

-- Message of an error raised by fn(...), as a string.
local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- Validate and expect success; returns the cleaned value.
local function ok(sc, v, opts)
  local r, _, _, errs = sc:validate(v, opts)
  assert.is_nil(errs, errs and s.describe_errors(errs))
  return r
end

-- Validate and expect exactly one error of `typ` at `loc`; returns it.
local function bad(sc, v, typ, loc, opts)
  local r, msg, code, errs = sc:validate(v, opts)
  assert.is_nil(r)
  assert.are.equal("invalid", code)
  assert.are.equal(s.describe_errors(errs), msg)
  assert.is_table(errs, "expected errors")
  assert.are.equal(1, #errs, s.describe_errors(errs))
  local e = errs[1]
  assert.are.equal(typ, e.type)
  assert.are.same(loc or {}, e.loc)
  assert.is_string(e.msg)
  return e
end

-- { "type@a.b.1", ... } for compact assertions on several errors.
local function summary(errs)
  local out = {}
  for i, e in ipairs(errs) do
    local loc = {}
    for j, k in ipairs(e.loc) do loc[j] = tostring(k) end
    out[i] = e.type .. "@" .. table.concat(loc, ".")
  end
  return out
end

local function is_int64(v)
  return type(v) == "cdata" and ffi.istype("int64_t", v)
end

describe("jararaca.schema", function()
  before_each(function()
    s._reset_registry()
  end)

  -------------------------------------------------------------------------
  describe("string", function()
    it("accepts strings and keeps them", function()
      assert.are.equal("hello", ok(s.string(), "hello"))
      assert.are.equal("", ok(s.string(), ""))
    end)

    it("rejects other types, null included, with string_type", function()
      local e = bad(s.string(), 42, "string_type")
      assert.are.equal("Input should be a valid string", e.msg)
      bad(s.string(), true, "string_type")
      bad(s.string(), null, "string_type")
      bad(s.string(), {}, "string_type")
    end)

    it("checks min_length and max_length in code points", function()
      local sc = s.string { min_length = 3, max_length = 5 }
      assert.are.equal("abc", ok(sc, "abc"))
      assert.are.equal("abcde", ok(sc, "abcde"))
      assert.are.equal("ção", ok(sc, "ção"))        -- 5 bytes, 3 code points
      assert.are.equal("ççççç", ok(sc, "ççççç"))    -- 10 bytes, 5 code points
      local e = bad(sc, "ab", "string_too_short")
      assert.are.equal("String should have at least 3 characters", e.msg)
      e = bad(sc, "abcdef", "string_too_long")
      assert.are.equal("String should have at most 5 characters", e.msg)
      bad(sc, "çç", "string_too_short")
      e = bad(s.string { min_length = 1 }, "", "string_too_short")
      assert.are.equal("String should have at least 1 character", e.msg)
    end)

    it("checks the pattern (a Lua pattern, anchored by the author)", function()
      local sc = s.string { pattern = "^%l+$" }
      assert.are.equal("abc", ok(sc, "abc"))
      local e = bad(sc, "aBc", "string_pattern_mismatch")
      assert.are.equal("String should match pattern '^%l+$'", e.msg)
    end)

    it("keeps format as documentation only", function()
      local sc = s.string { format = "email" }
      assert.are.equal("email", sc.format)
      assert.are.equal("not an email", ok(sc, "not an email"))
    end)

    it("is a plain table of the documented shape", function()
      local sc = s.string { min_length = 1, max_length = 2, pattern = "^a", description = "d", title = "t", deprecated = true }
      assert.are.equal("string", sc.kind)
      assert.are.equal(1, sc.min_length)
      assert.are.equal(2, sc.max_length)
      assert.are.equal("^a", sc.pattern)
      assert.are.equal("d", sc.description)
      assert.are.equal("t", sc.title)
      assert.is_true(sc.deprecated)
      assert.is_false(sc.is_optional)
      assert.is_false(sc.has_default)
      assert.is_true(s.is_schema(sc))
      assert.is_false(s.is_schema({ kind = "string" }))
    end)
  end)

  -------------------------------------------------------------------------
  describe("integer", function()
    it("accepts integer-valued numbers", function()
      assert.are.equal(42, ok(s.integer(), 42))
      assert.are.equal(-7, ok(s.integer(), -7))
      assert.are.equal(0, ok(s.integer(), 0))
      assert.are.equal(3, ok(s.integer(), 3.0))
    end)

    it("rejects fractions with int_from_float, and non-numbers with int_type", function()
      local e = bad(s.integer(), 1.5, "int_from_float")
      assert.are.equal("Input should be a valid integer, got a number with a fractional part", e.msg)
      e = bad(s.integer(), "42", "int_type")          -- strings only with from_string
      assert.are.equal("Input should be a valid integer", e.msg)
      bad(s.integer(), true, "int_type")
      bad(s.integer(), null, "int_type")
      bad(s.integer(), {}, "int_type")
    end)

    it("rejects NaN and infinities with finite_number", function()
      bad(s.integer(), 0 / 0, "finite_number")
      bad(s.integer(), math.huge, "finite_number")
      bad(s.integer(), -math.huge, "finite_number")
    end)

    it("checks the four bounds with pydantic messages", function()
      local sc = s.integer { minimum = 1, maximum = 10 }
      assert.are.equal(1, ok(sc, 1))
      assert.are.equal(10, ok(sc, 10))
      local e = bad(sc, 0, "greater_than_equal")
      assert.are.equal("Input should be greater than or equal to 1", e.msg)
      e = bad(sc, 11, "less_than_equal")
      assert.are.equal("Input should be less than or equal to 10", e.msg)
      local ex = s.integer { exclusive_minimum = 0, exclusive_maximum = 5 }
      assert.are.equal(1, ok(ex, 1))
      assert.are.equal(4, ok(ex, 4))
      e = bad(ex, 0, "greater_than")
      assert.are.equal("Input should be greater than 0", e.msg)
      e = bad(ex, 5, "less_than")
      assert.are.equal("Input should be less than 5", e.msg)
    end)

    it("turns int64 cdata within 2^53 into numbers and keeps larger ones exact", function()
      local small = ok(s.integer(), int64("123"))
      assert.are.equal("number", type(small))
      assert.are.equal(123, small)
      assert.are.equal(9007199254740992, ok(s.integer(), int64("9007199254740992")))
      local big = ok(s.integer(), int64("9007199254740993"))
      assert.is_true(is_int64(big))
      assert.are.equal("9007199254740993LL", tostring(big))
      local min = ok(s.integer(), int64("-9223372036854775808"))
      assert.are.equal("-9223372036854775808LL", tostring(min))
      assert.are.equal(5, ok(s.integer(), ffi.new("uint64_t", 5)))
      bad(s.integer(), 18446744073709551615ULL, "int_parsing_size")
      bad(s.integer(), ffi.new("double", 1), "int_type")
    end)

    it("checks bounds exactly beyond 2^53", function()
      local sc = s.integer { maximum = int64("9007199254740993") }
      assert.are.equal("9007199254740993LL", tostring(ok(sc, int64("9007199254740993"))))
      local e = bad(sc, int64("9007199254740994"), "less_than_equal")
      assert.are.equal("Input should be less than or equal to 9007199254740993", e.msg)
      -- a number bound against int64 values: 2^53 + 1 > 2^53
      bad(s.integer { maximum = 2 ^ 53 }, int64("9007199254740993"), "less_than_equal")
      ok(s.integer { minimum = 2 ^ 53 }, int64("9007199254740993"))
      bad(s.integer { exclusive_maximum = 2 ^ 53 + 0.5 }, int64("9007199254740993"), "less_than")
      bad(s.integer { minimum = 0 }, int64("-9007199254740993"), "greater_than_equal")
      ok(s.integer { minimum = -1e30 }, int64("-9223372036854775808"))
    end)

    it("keeps large integer-valued doubles exact as int64, rejects beyond int64", function()
      local v = ok(s.integer(), 2 ^ 60)
      assert.is_true(is_int64(v))
      assert.are.equal("1152921504606846976LL", tostring(v))
      local e = bad(s.integer(), 1e20, "int_parsing_size")
      assert.are.equal("Unable to parse input as an integer, exceeded maximum size", e.msg)
    end)

    it("parses digit strings with from_string", function()
      local fs = { from_string = true }
      assert.are.equal(42, ok(s.integer(), "42", fs))
      assert.are.equal(-42, ok(s.integer(), "-42", fs))
      assert.are.equal(7, ok(s.integer(), "+007", fs))
      assert.are.equal(0, ok(s.integer(), "000", fs))
      assert.are.equal(12, ok(s.integer(), " 12 ", fs))
      assert.are.equal(999999999999999, ok(s.integer(), "999999999999999", fs))
      local big = ok(s.integer(), "12345678901234567", fs)
      assert.are.equal("12345678901234567LL", tostring(big))
      assert.are.equal(9007199254740992, ok(s.integer(), "9007199254740992", fs))
      assert.are.equal("-9223372036854775808LL", tostring(ok(s.integer(), "-9223372036854775808", fs)))
      local e = bad(s.integer(), "4x", "int_parsing", nil, fs)
      assert.are.equal("Input should be a valid integer, unable to parse string as an integer", e.msg)
      bad(s.integer(), "1.5", "int_parsing", nil, fs)
      bad(s.integer(), "", "int_parsing", nil, fs)
      bad(s.integer(), "0x10", "int_parsing", nil, fs)
      bad(s.integer(), "9223372036854775808", "int_parsing_size", nil, fs)
      bad(s.integer(), "100000000000000000000", "int_parsing_size", nil, fs)
      bad(s.integer { maximum = 10 }, "11", "less_than_equal", nil, fs)
    end)
  end)

  -------------------------------------------------------------------------
  describe("number", function()
    it("accepts numbers", function()
      assert.are.equal(1.5, ok(s.number(), 1.5))
      assert.are.equal(2, ok(s.number(), 2))
    end)

    it("rejects non-numbers with float_type and NaN/inf with finite_number", function()
      local e = bad(s.number(), "1.5", "float_type")
      assert.are.equal("Input should be a valid number", e.msg)
      bad(s.number(), true, "float_type")
      bad(s.number(), null, "float_type")
      bad(s.number(), 0 / 0, "finite_number")
      bad(s.number(), math.huge, "finite_number")
    end)

    it("checks bounds, exclusive ones included", function()
      local sc = s.number { exclusive_minimum = 0, maximum = 1 }
      assert.are.equal(0.5, ok(sc, 0.5))
      assert.are.equal(1, ok(sc, 1))
      bad(sc, 0, "greater_than")
      local e = bad(sc, 1.25, "less_than_equal")
      assert.are.equal("Input should be less than or equal to 1", e.msg)
      e = bad(s.number { minimum = 0.5 }, 0.25, "greater_than_equal")
      assert.are.equal("Input should be greater than or equal to 0.5", e.msg)
      bad(s.number { exclusive_maximum = 2 }, 2, "less_than")
    end)

    it("converts int64 cdata only when a double is exact, else keeps it", function()
      local v = ok(s.number(), int64("9007199254740992"))
      assert.are.equal("number", type(v))
      v = ok(s.number(), int64("18014398509481984")) -- 2^54: exact as a double
      assert.are.equal("number", type(v))
      assert.are.equal(2 ^ 54, v)
      v = ok(s.number(), int64("9007199254740993"))   -- 2^53 + 1: not exact
      assert.is_true(is_int64(v))
      bad(s.number { maximum = 2 ^ 53 }, int64("9007199254740993"), "less_than_equal")
    end)

    it("parses decimal strings with from_string", function()
      local fs = { from_string = true }
      assert.are.equal(1.5, ok(s.number(), "1.5", fs))
      assert.are.equal(-2, ok(s.number(), "-2", fs))
      assert.are.equal(0.5, ok(s.number(), ".5", fs))
      assert.are.equal(1e3, ok(s.number(), "1e3", fs))
      assert.is_true(is_int64(ok(s.number(), "9007199254740993", fs)))
      local e = bad(s.number(), "abc", "float_parsing", nil, fs)
      assert.are.equal("Input should be a valid number, unable to parse string as a number", e.msg)
      bad(s.number(), "0x10", "float_parsing", nil, fs)
      bad(s.number(), "inf", "float_parsing", nil, fs)
      bad(s.number(), "nan", "float_parsing", nil, fs)
      bad(s.number(), "1e999", "float_parsing", nil, fs)
    end)
  end)

  -------------------------------------------------------------------------
  describe("boolean", function()
    it("accepts true and false only", function()
      assert.is_true(ok(s.boolean(), true))
      assert.is_false(ok(s.boolean(), false))
      local e = bad(s.boolean(), "true", "bool_type")
      assert.are.equal("Input should be a valid boolean", e.msg)
      bad(s.boolean(), 1, "bool_type")
      bad(s.boolean(), null, "bool_type")
    end)

    it("parses true/false/1/0 (and yes/no/on/off) with from_string", function()
      local fs = { from_string = true }
      for _, t in ipairs { "true", "1", "yes", "on", "TRUE", "True" } do
        assert.is_true(ok(s.boolean(), t, fs), t)
      end
      for _, f in ipairs { "false", "0", "no", "off", "False" } do
        assert.is_false(ok(s.boolean(), f, fs), f)
      end
      local e = bad(s.boolean(), "maybe", "bool_parsing", nil, fs)
      assert.are.equal("Input should be a valid boolean, unable to interpret input", e.msg)
    end)
  end)

  -------------------------------------------------------------------------
  describe("uuid", function()
    it("accepts 8-4-4-4-12 hex and normalises to lower case", function()
      assert.are.equal("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ok(s.uuid(), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))
      assert.are.equal("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ok(s.uuid(), "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"))
      assert.are.equal("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ok(s.uuid(), "A0EEBC999C0B4EF8BB6D6BB9BD380A11"))
    end)

    it("rejects malformed ones with uuid_parsing, non-strings with uuid_type", function()
      local e = bad(s.uuid(), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", "uuid_parsing")
      assert.are.equal("Input should be a valid UUID", e.msg)
      bad(s.uuid(), "a0eebc99_9c0b-4ef8-bb6d-6bb9bd380a11", "uuid_parsing")
      bad(s.uuid(), "a0eebc999c0b-4ef8-bb6d-6bb9bd380a11-", "uuid_parsing")
      bad(s.uuid(), "", "uuid_parsing")
      bad(s.uuid(), 42, "uuid_type")
      bad(s.uuid(), null, "uuid_type")
    end)
  end)

  -------------------------------------------------------------------------
  describe("date", function()
    it("accepts valid calendar dates", function()
      assert.are.equal("2026-11-27", ok(s.date(), "2026-11-27"))
      assert.are.equal("2024-02-29", ok(s.date(), "2024-02-29"))
      assert.are.equal("2000-02-29", ok(s.date(), "2000-02-29"))
      assert.are.equal("2026-12-31", ok(s.date(), "2026-12-31"))
    end)

    it("rejects impossible dates and other formats with date_parsing", function()
      local e = bad(s.date(), "2026-02-29", "date_parsing")
      assert.are.equal("Input should be a valid date in the format YYYY-MM-DD, day value is outside expected range", e.msg)
      bad(s.date(), "1900-02-29", "date_parsing")
      bad(s.date(), "2026-02-30", "date_parsing")
      bad(s.date(), "2026-04-31", "date_parsing")
      bad(s.date(), "2026-13-01", "date_parsing")
      bad(s.date(), "2026-00-10", "date_parsing")
      bad(s.date(), "0000-01-01", "date_parsing")
      bad(s.date(), "2026-1-01", "date_parsing")
      bad(s.date(), "2026/01/01", "date_parsing")
      bad(s.date(), "2026-01-01T00:00:00Z", "date_parsing")
      bad(s.date(), "", "date_parsing")
      bad(s.date(), 20260101, "date_type")
    end)
  end)

  -------------------------------------------------------------------------
  describe("datetime", function()
    it("accepts RFC 3339 with Z, an offset and a fraction", function()
      assert.are.equal("2026-11-27T21:00:00Z", ok(s.datetime(), "2026-11-27T21:00:00Z"))
      assert.are.equal("2026-11-27T21:00:00+02:00", ok(s.datetime(), "2026-11-27T21:00:00+02:00"))
      assert.are.equal("2026-11-27T21:00:00-03:30", ok(s.datetime(), "2026-11-27T21:00:00-03:30"))
      assert.are.equal("2026-11-27T21:00:00.123456Z", ok(s.datetime(), "2026-11-27T21:00:00.123456Z"))
      assert.are.equal("2024-02-29T23:59:59.5+00:00", ok(s.datetime(), "2024-02-29T23:59:59.5+00:00"))
    end)

    it("normalises t, z and a space separator", function()
      assert.are.equal("2026-11-27T21:00:00Z", ok(s.datetime(), "2026-11-27t21:00:00z"))
      assert.are.equal("2026-11-27T21:00:00.5Z", ok(s.datetime(), "2026-11-27 21:00:00.5z"))
      assert.are.equal("2026-11-27T21:00:00+01:00", ok(s.datetime(), "2026-11-27 21:00:00+01:00"))
    end)

    it("rejects invalid dates, times, offsets and missing timezones", function()
      local e = bad(s.datetime(), "2026-02-30T10:00:00Z", "datetime_parsing")
      assert.are.equal("Input should be a valid datetime, day value is outside expected range", e.msg)
      bad(s.datetime(), "2026-11-27T24:00:00Z", "datetime_parsing")
      bad(s.datetime(), "2026-11-27T23:60:00Z", "datetime_parsing")
      bad(s.datetime(), "2026-11-27T23:59:60Z", "datetime_parsing")
      e = bad(s.datetime(), "2026-11-27T21:00:00", "datetime_parsing")
      assert.are.equal("Input should be a valid datetime, timezone offset is required", e.msg)
      bad(s.datetime(), "2026-11-27T21:00:00+25:00", "datetime_parsing")
      bad(s.datetime(), "2026-11-27T21:00:00+0200", "datetime_parsing")
      bad(s.datetime(), "2026-11-27T21:00:00.Z", "datetime_parsing")
      bad(s.datetime(), "2026-11-27T21:00:00Zjunk", "datetime_parsing")
      bad(s.datetime(), "2026-11-27T21:00Z", "datetime_parsing")
      bad(s.datetime(), "2026-11-27", "datetime_parsing")
      bad(s.datetime(), "yesterday", "datetime_parsing")
      bad(s.datetime(), true, "datetime_type")
      bad(s.datetime(), null, "datetime_type")
    end)

    it("turns Unix seconds into UTC strings", function()
      assert.are.equal("1970-01-01T00:00:00Z", ok(s.datetime(), 0))
      assert.are.equal("2023-11-14T22:13:20Z", ok(s.datetime(), 1700000000))
      assert.are.equal("2023-11-14T22:13:20.5Z", ok(s.datetime(), 1700000000.5))
      assert.are.equal("1969-12-31T23:59:59Z", ok(s.datetime(), -1))
      assert.are.equal("2000-02-29T12:00:00Z", ok(s.datetime(), 951825600))
      bad(s.datetime(), 1e15, "datetime_parsing")
      assert.are.equal("2023-11-14T22:13:20Z", ok(s.datetime(), "1700000000", { from_string = true }))
    end)
  end)

  -------------------------------------------------------------------------
  describe("enum", function()
    it("accepts one of the strings", function()
      local sc = s.enum { "open", "done" }
      assert.are.equal("open", ok(sc, "open"))
      assert.are.same({ "open", "done" }, sc.values)
      assert.is_nil(sc.name)
    end)

    it("rejects anything else with enum and lists the values", function()
      local e = bad(s.enum { "a", "b" }, "c", "enum")
      assert.are.equal("Input should be 'a' or 'b'", e.msg)
      e = bad(s.enum { "a", "b", "c" }, 1, "enum")
      assert.are.equal("Input should be 'a', 'b' or 'c'", e.msg)
      e = bad(s.enum { "only" }, "x", "enum")
      assert.are.equal("Input should be 'only'", e.msg)
      bad(s.enum { "a" }, null, "enum")
    end)

    it("registers named enums", function()
      local Status = s.enum("Status", { "open", "done" }, { description = "state" })
      assert.are.equal("Status", Status.name)
      assert.are.equal("state", Status.description)
      assert.are.equal(Status, s.lookup("Status"))
      assert.are.same({ Status }, s.named())
    end)
  end)

  -------------------------------------------------------------------------
  describe("literal", function()
    it("accepts exactly the value", function()
      assert.are.equal("task", ok(s.literal("task"), "task"))
      assert.are.equal(3, ok(s.literal(3), 3))
      assert.are.equal(3, ok(s.literal(3), int64("3")))
      assert.is_true(ok(s.literal(true), true))
      assert.are.equal("task", s.literal("task").value)
    end)

    it("rejects anything else with literal_error", function()
      local e = bad(s.literal("task"), "note", "literal_error")
      assert.are.equal("Input should be 'task'", e.msg)
      e = bad(s.literal(3), 4, "literal_error")
      assert.are.equal("Input should be 3", e.msg)
      e = bad(s.literal(false), true, "literal_error")
      assert.are.equal("Input should be false", e.msg)
      bad(s.literal(3), "3", "literal_error")
      bad(s.literal("x"), null, "literal_error")
    end)

    it("coerces strings with from_string", function()
      local fs = { from_string = true }
      assert.are.equal(3, ok(s.literal(3), "3", fs))
      assert.is_true(ok(s.literal(true), "true", fs))
      bad(s.literal(3), "4", "literal_error", nil, fs)
    end)
  end)

  -------------------------------------------------------------------------
  describe("array", function()
    it("returns a new array table with json.array_mt", function()
      local input = { 1, 2, 3 }
      local r = ok(s.array(s.integer()), input)
      assert.are.same({ 1, 2, 3 }, r)
      assert.are_not.equal(input, r)
      assert.are.equal(json.array_mt, getmetatable(r))
      local empty = ok(s.array(s.integer()), {})
      assert.are.equal("[]", json.encode(empty))
      assert.are.equal("[]", json.encode(ok(s.array(s.integer()), json.decode("[]"))))
    end)

    it("reports every failing item with its 1-based index", function()
      local r, _, _, errs = s.array(s.string()):validate({ "a", 2, "c", false })
      assert.is_nil(r)
      assert.are.same({ "string_type@2", "string_type@4" }, summary(errs))
    end)

    it("checks min_items and max_items", function()
      local sc = s.array(s.integer(), { min_items = 1, max_items = 2 })
      local e = bad(sc, {}, "too_short")
      assert.are.equal("List should have at least 1 item after validation, not 0", e.msg)
      e = bad(sc, { 1, 2, 3 }, "too_long")
      assert.are.equal("List should have at most 2 items after validation, not 3", e.msg)
      assert.are.equal(2, sc.max_items)
      assert.are.equal(1, sc.min_items)
    end)

    it("rejects non-lists with list_type", function()
      local e = bad(s.array(s.integer()), "1,2", "list_type")
      assert.are.equal("Input should be a valid list", e.msg)
      bad(s.array(s.integer()), { a = 1 }, "list_type")
      bad(s.array(s.integer()), null, "list_type")
      bad(s.array(s.integer()), 1, "list_type")
    end)

    it("with from_string, takes a string as a one-element list and coerces items", function()
      local fs = { from_string = true }
      assert.are.same({ 42 }, ok(s.array(s.integer()), "42", fs))
      assert.are.same({ 1, 2 }, ok(s.array(s.integer()), { "1", "2" }, fs))
      bad(s.array(s.integer()), { "1", "x" }, "int_parsing", { 2 }, fs)
    end)
  end)

  -------------------------------------------------------------------------
  describe("map", function()
    it("validates every value and keeps the keys", function()
      local r = ok(s.map(s.integer()), { a = 1, b = 2 })
      assert.are.same({ a = 1, b = 2 }, r)
      assert.are.equal("{}", json.encode(ok(s.map(s.integer()), {})))
    end)

    it("reports failing values at their key", function()
      local r, _, _, errs = s.map(s.integer()):validate({ a = 1, b = "x", c = 1.5 })
      assert.is_nil(r)
      table.sort(errs, function(x, y) return x.loc[1] < y.loc[1] end)
      assert.are.same({ "int_type@b", "int_from_float@c" }, summary(errs))
    end)

    it("rejects lists and scalars with dict_type", function()
      local e = bad(s.map(s.integer()), { 1, 2 }, "dict_type")
      assert.are.equal("Input should be a valid dictionary", e.msg)
      bad(s.map(s.integer()), json.decode("[]"), "dict_type")
      bad(s.map(s.integer()), "x", "dict_type")
    end)

    it("rejects non-string keys", function()
      local _, _, _, errs = s.map(s.integer()):validate({ [true] = 1 })
      assert.are.equal("string_type", errs[1].type)
    end)
  end)

  -------------------------------------------------------------------------
  describe("object", function()
    local function task()
      return s.object("Task", {
        { "id", s.uuid() },
        { "title", s.string { min_length = 1 } },
        { "done", s.boolean():default(false) },
        { "tags", s.array(s.string()):default({}) },
        { "note", s.string():nullable():optional() },
      })
    end

    it("builds the documented field entries in declaration order (list form)", function()
      local Task = task()
      assert.are.equal("object", Task.kind)
      assert.are.equal("Task", Task.name)
      assert.are.equal("drop", Task.additional)
      local names = {}
      for i, f in ipairs(Task.fields) do names[i] = f.name end
      assert.are.same({ "id", "title", "done", "tags", "note" }, names)
      local done = Task.fields[3]
      assert.is_false(done.required)
      assert.is_true(done.has_default)
      assert.is_false(done.default)
      assert.are.equal("boolean", done.schema.kind)
      assert.is_true(Task.fields[1].required)
      assert.is_false(Task.fields[1].has_default)
      assert.is_false(Task.fields[5].required)
      assert.are.equal("nullable", Task.fields[5].schema.kind)
      assert.are.equal(Task.fields, Task.own_fields)
      assert.is_nil(Task.extends)
    end)

    it("orders the map form by name", function()
      local sc = s.object { zeta = s.integer(), alpha = s.integer(), mid = s.integer() }
      local names = {}
      for i, f in ipairs(sc.fields) do names[i] = f.name end
      assert.are.same({ "alpha", "mid", "zeta" }, names)
      assert.are.equal('{"alpha":1,"mid":2,"zeta":3}', sc:encode({ zeta = 3, mid = 2, alpha = 1 }))
    end)

    it("applies defaults, drops unknown fields, keeps absent optionals absent", function()
      local Task = task()
      local r = ok(Task, { id = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", title = "x", extra = 1 })
      assert.are.same({ id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", title = "x", done = false, tags = {} }, r)
      assert.is_nil(r.extra)
      assert.is_nil(r.note)
      assert.are.equal('{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","title":"x","done":false,"tags":[]}',
        json.encode(r))
    end)

    it("does not share table defaults between calls", function()
      local Task = task()
      local a = ok(Task, { id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", title = "x" })
      table.insert(a.tags, "mutated")
      local b = ok(Task, { id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", title = "y" })
      assert.are.same({}, b.tags)
      assert.are.equal(json.array_mt, getmetatable(b.tags))
      assert.are.same({}, Task.fields[4].default)
    end)

    it("preserves null versus absent through validate and encode", function()
      local Task = task()
      local id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
      local with_null = ok(Task, json.decode('{"id":"' .. id .. '","title":"x","note":null}'))
      assert.are.equal(null, with_null.note)
      assert.matches('"note":null', json.encode(with_null))
      local absent = ok(Task, json.decode('{"id":"' .. id .. '","title":"x"}'))
      assert.is_nil(absent.note)
      assert.is_nil(json.encode(absent):find("note", 1, true))
    end)

    it("encodes in the schema's field order with one metatable per schema", function()
      local Task = task()
      local v = { note = "n", tags = { "a" }, done = true, title = "t", id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" }
      assert.are.equal('{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","title":"t","done":true,"tags":["a"],"note":"n"}',
        Task:encode(v))
      local a, b = ok(Task, v), ok(Task, v)
      assert.are_not.equal(a, b)
      assert.are.equal(getmetatable(a), getmetatable(b))
      assert.are.same({ "id", "title", "done", "tags", "note" }, getmetatable(a).__order)
      assert.are.equal(getmetatable(a), getmetatable(ok(Task:describe("copy"), v)))
    end)

    it("reports every failing field at once, missing ones included", function()
      local Task = task()
      local r, _, _, errs = Task:validate({ id = "nope", title = "", done = "yes", tags = { "a", 1 } })
      assert.is_nil(r)
      assert.are.same({ "uuid_parsing@id", "string_too_short@title", "bool_type@done", "string_type@tags.2" },
        summary(errs))
      r, _, _, errs = Task:validate({})
      assert.is_nil(r)
      assert.are.same({ "missing@id", "missing@title" }, summary(errs))
      assert.are.equal("Field required", errs[1].msg)
    end)

    it("carries full paths for nested errors", function()
      local Item = s.object("Item", { { "name", s.string { max_length = 3 } }, { "qty", s.integer { minimum = 1 } } })
      local Order = s.object("Order", { { "items", s.array(Item) }, { "meta", s.object { ref = s.string() } } })
      local r, _, _, errs = Order:validate({
        items = { { name = "ok", qty = 1 }, { name = "toolong", qty = 0 }, { qty = 2 } },
        meta = { ref = 5 },
      })
      assert.is_nil(r)
      assert.are.same({ "string_too_long@items.2.name", "greater_than_equal@items.2.qty",
        "missing@items.3.name", "string_type@meta.ref" }, summary(errs))
      assert.are.same({ "items", 2, "name" }, errs[1].loc)
    end)

    it("rejects non-objects with model_type (null included)", function()
      local Task = task()
      local e = bad(Task, "x", "model_type")
      assert.are.equal("Input should be a valid dictionary or instance of Task", e.msg)
      bad(Task, null, "model_type")
      bad(Task, { 1, 2 }, "model_type")
      bad(Task, json.decode("[]"), "model_type")
      e = bad(s.object { a = s.integer() }, 1, "model_type")
      assert.are.equal("Input should be a valid dictionary", e.msg)
    end)

    it("forbids unknown fields with additional = 'forbid'", function()
      local sc = s.object({ a = s.integer() }, { additional = "forbid" })
      assert.are.same({ a = 1 }, ok(sc, { a = 1 }))
      local e = bad(sc, { a = 1, b = 2 }, "extra_forbidden", { "b" })
      assert.are.equal("Extra inputs are not permitted", e.msg)
    end)

    it("reads fields through __index (objects with a class)", function()
      local Point = { __index = function(_, k) if k == "x" then return 1 elseif k == "y" then return 2 end end }
      local sc = s.object { x = s.integer(), y = s.integer() }
      assert.are.same({ x = 1, y = 2 }, ok(sc, setmetatable({}, Point)))
    end)

    it("validates objects with many fields (the non-unrolled path)", function()
      local fields, v = {}, {}
      for i = 1, 200 do
        fields[i] = { "f" .. i, s.integer() }
        v["f" .. i] = i
      end
      fields[201] = { "d", s.string():default("x") }
      local sc = s.object(fields)
      local r = ok(sc, v)
      assert.are.equal(200, r.f200)
      assert.are.equal("x", r.d)
      v.f7 = "bad"
      v.f150 = nil
      local _, _, _, errs = sc:validate(v)
      assert.are.same({ "int_type@f7", "missing@f150" }, summary(errs))
    end)
  end)

  -------------------------------------------------------------------------
  describe("nullable", function()
    it("accepts null or the inner value", function()
      local sc = s.nullable(s.integer())
      assert.are.equal("nullable", sc.kind)
      assert.are.equal("integer", sc.of.kind)
      assert.are.equal(null, ok(sc, null))
      assert.are.equal(3, ok(sc, 3))
      bad(sc, "x", "int_type")
    end)

    it("is idempotent and the :nullable() modifier is the same", function()
      local n = s.string():nullable()
      assert.are.equal("nullable", n.kind)
      assert.are.equal(n, n:nullable())
      assert.are.equal(n, s.nullable(n))
    end)

    it("carries the field flags to the wrapper", function()
      local n = s.string():default("x"):nullable()
      assert.is_true(n.has_default)
      assert.is_true(n.is_optional)
      assert.are.equal("x", n.default_value)
      local sc = s.object { a = n }
      assert.are.same({ a = "x" }, ok(sc, {}))
      assert.are.equal(null, ok(sc, { a = null }).a)
    end)
  end)

  -------------------------------------------------------------------------
  describe("one_of", function()
    it("returns the first variant that validates", function()
      local sc = s.one_of(s.integer(), s.string())
      assert.are.equal("one_of", sc.kind)
      assert.are.equal(2, #sc.variants)
      assert.are.equal(3, ok(sc, 3))
      assert.are.equal("x", ok(sc, "x"))
      local Cat = s.object("Cat", { { "kind", s.literal("cat") }, { "meows", s.boolean() } })
      local Dog = s.object("Dog", { { "kind", s.literal("dog") }, { "barks", s.boolean() } })
      local pet = s.one_of(Cat, Dog)
      local d = ok(pet, { kind = "dog", barks = true, meows = false })
      assert.are.same({ kind = "dog", barks = true }, d)
      assert.are.equal('{"kind":"dog","barks":true}', json.encode(d))
    end)

    it("reports one union_no_match error when no variant matches", function()
      s.object("Pet", {})
      local e = bad(s.one_of(s.integer(), s.string(), s.ref("Pet"):nullable(), { description = "d" }), true, "union_no_match")
      assert.are.equal("Input should match one of: integer, string, Pet or null", e.msg)
      local Cat = s.object("Cat", { { "meows", s.boolean() } })
      local _, _, _, errs = s.object { pet = s.one_of(Cat, s.integer()) }:validate({ pet = {} })
      assert.are.same({ "union_no_match@pet" }, summary(errs))
    end)
  end)

  -------------------------------------------------------------------------
  describe("ref and recursive types", function()
    it("validates a tree through a self-reference", function()
      local Node = s.object("Node", {
        { "name", s.string() },
        { "children", s.array(s.ref("Node")):default({}) },
      })
      local r = ok(Node, { name = "root", children = { { name = "a", children = { { name = "a1" } } }, { name = "b" } } })
      assert.are.equal("a1", r.children[1].children[1].name)
      assert.are.same({}, r.children[2].children)
      assert.are.equal(getmetatable(r), getmetatable(r.children[1].children[1]))
      assert.are.equal('{"name":"root","children":[{"name":"a","children":[{"name":"a1","children":[]}]},' ..
        '{"name":"b","children":[]}]}', json.encode(r))
      local _, _, _, errs = Node:validate({ name = "root", children = { { name = "a", children = { { name = 5 } } } } })
      assert.are.same({ "string_type@children.1.children.1.name" }, summary(errs))
    end)

    it("supports mutual recursion and refs defined later", function()
      local A = s.object("A", { { "b", s.ref("B"):nullable() } })
      s.object("B", { { "a", s.ref("A"):optional() } })
      local r = ok(A, { b = { a = { b = null } } })
      assert.are.equal(null, r.b.a.b)
      assert.are.equal("ref", A.fields[1].schema.of.kind)
      assert.are.equal("B", A.fields[1].schema.of.name)
    end)

    it("raises when an undefined name is reached", function()
      local sc = s.object { x = s.ref("Nowhere"):optional() }
      assert.are.same({}, ok(sc, {}))                 -- not reached: fine
      assert.matches("no schema named 'Nowhere'", err_of(sc.validate, sc, { x = {} }))
    end)
  end)

  -------------------------------------------------------------------------
  describe("extend", function()
    it("puts the base fields first and keeps both field lists", function()
      local Base = s.object("Base", { { "id", s.integer() }, { "created_at", s.datetime() } })
      local Task = s.extend(Base, "TaskX", { { "title", s.string() }, { "done", s.boolean():default(false) } })
      assert.are.equal("object", Task.kind)
      assert.are.equal(Base, Task.extends)
      local names, own = {}, {}
      for i, f in ipairs(Task.fields) do names[i] = f.name end
      for i, f in ipairs(Task.own_fields) do own[i] = f.name end
      assert.are.same({ "id", "created_at", "title", "done" }, names)
      assert.are.same({ "title", "done" }, own)
      assert.are.equal(Task, s.lookup("TaskX"))
      assert.are.equal('{"id":1,"created_at":"1970-01-01T00:00:00Z","title":"t","done":false}',
        Task:encode({ title = "t", created_at = 0, id = 1 }))
      local _, _, _, errs = Task:validate({ title = 1 })
      assert.are.same({ "missing@id", "missing@created_at", "string_type@title" }, summary(errs))
    end)

    it("replaces a redeclared base field in place", function()
      local Base = s.object { a = s.integer(), b = s.integer() }
      local Ext = s.extend(Base, { a = s.string(), c = s.integer() })
      local names = {}
      for i, f in ipairs(Ext.fields) do names[i] = f.name end
      assert.are.same({ "a", "b", "c" }, names)
      assert.are.equal("string", Ext.fields[1].schema.kind)
      assert.is_nil(Ext.name)
    end)

    it("accepts a ref to a defined object as the base", function()
      s.object("Base", { { "id", s.integer() } })
      local Ext = s.extend(s.ref("Base"), "Ext", { { "x", s.integer() } })
      assert.are.equal(s.lookup("Base"), Ext.extends)
    end)
  end)

  -------------------------------------------------------------------------
  describe("any", function()
    it("passes anything through", function()
      local t = { 1, { a = 2 } }
      assert.are.equal(t, ok(s.any(), t))
      assert.are.equal(null, ok(s.any(), null))
      assert.are.equal("x", ok(s.any(), "x"))
    end)
  end)

  -------------------------------------------------------------------------
  describe("validate options and nil", function()
    it("prefixes locs with opts.loc", function()
      local sc = s.object { a = s.integer() }
      local _, _, _, errs = sc:validate({ a = "x" }, { loc = { "body" } })
      assert.are.same({ "body", "a" }, errs[1].loc)
      _, _, _, errs = sc:validate({ a = "x" }, { loc = "body" })
      assert.are.same({ "body", "a" }, errs[1].loc)
      _, _, _, errs = sc:validate(nil, { loc = { "body" } })
      assert.are.same({ "missing@body" }, summary(errs))
    end)

    it("treats nil as missing, unless optional (nil, no errors) or defaulted", function()
      local r, _, _, errs = s.integer():validate(nil)
      assert.is_nil(r)
      assert.are.same({ "missing@" }, summary(errs))
      r, _, _, errs = s.integer():optional():validate(nil)
      assert.is_nil(r)
      assert.is_nil(errs)
      local d = s.array(s.integer()):default({ 1 })
      local a, b = d:validate(nil), d:validate(nil)
      assert.are.same({ 1 }, a)
      assert.are_not.equal(a, b)
    end)

    it("offers function forms s.validate and s.encode", function()
      assert.are.equal(3, s.validate(s.integer(), 3))
      assert.are.equal("3", s.encode(s.integer(), 3))
      assert.matches("must be a schema", err_of(s.validate, {}, 3))
    end)

    it("fails with nil, a sentence, \"invalid\" and the errors (docs/errors.md)", function()
      local sc = s.object { { "n", s.integer() }, { "name", s.string { min_length = 1 } } }
      local r, msg, code, errs = sc:validate({ n = "x", name = "" })
      assert.is_nil(r)
      assert.are.equal("invalid", code)
      assert.are.equal("n: Input should be a valid integer (int_type); " ..
        "name: String should have at least 1 character (string_too_short)", msg)
      assert.are.same({ "int_type@n", "string_too_short@name" }, summary(errs))
      assert.matches("n: Field required (missing); name: Field required (missing)",
        err_of(function() assert(sc:validate({})) end), 1, true)
      local text, emsg, ecode, eerrs = s.encode(sc, { n = 1 })
      assert.is_nil(text)
      assert.are.same({ "name: Field required (missing)", "invalid" }, { emsg, ecode })
      assert.are.same({ "missing@name" }, summary(eerrs))
    end)
  end)

  -------------------------------------------------------------------------
  describe("encode", function()
    it("validates then encodes", function()
      local sc = s.object("Ev", { { "at", s.datetime() }, { "n", s.integer() } })
      assert.are.equal('{"at":"2026-11-27T21:00:00Z","n":1}', sc:encode({ n = 1, at = "2026-11-27t21:00:00z" }))
      local text, _, _, errs = sc:encode({ n = "x" })
      assert.is_nil(text)
      assert.are.same({ "missing@at", "int_type@n" }, summary(errs))
      text, _, _, errs = sc:encode(nil)
      assert.is_nil(text)
      assert.are.same({ "missing@" }, summary(errs))
    end)

    it("reports values json cannot encode", function()
      local text, _, _, errs = s.any():encode({ f = print })
      assert.is_nil(text)
      assert.are.equal("serialization_error", errs[1].type)
    end)

    it("encodes errors as pydantic-shaped JSON", function()
      local _, _, _, errs = s.object { a = s.integer() }:validate({}, { loc = { "body" } })
      assert.are.equal('[{"type":"missing","loc":["body","a"],"msg":"Field required"}]', json.encode(errs))
    end)

    it("round-trips integers beyond 2^53 exactly (decode -> validate -> encode)", function()
      local decoded = json.decode('{"id":9007199254740993,"neg":-9223372036854775808,"small":42,"x":1.5}')
      assert.are.equal("cdata", type(decoded.id))
      local sc = s.object("Big", { { "id", s.integer() }, { "neg", s.integer() }, { "small", s.integer() }, { "x", s.number() } })
      local r = ok(sc, decoded)
      assert.is_true(is_int64(r.id))
      assert.are.equal("number", type(r.small))
      assert.are.equal('{"id":9007199254740993,"neg":-9223372036854775808,"small":42,"x":1.5}', json.encode(r))
      assert.are.equal('{"id":9007199254740993,"neg":-9223372036854775808,"small":42,"x":1.5}', sc:encode(decoded))
    end)
  end)

  -------------------------------------------------------------------------
  describe("validate_fields", function()
    it("coerces strings and applies defaults", function()
      local query = { page = s.integer { minimum = 0 }:default(0), q = s.string():optional(), flag = s.boolean():default(false) }
      assert.are.same({ page = 0, flag = false }, s.validate_fields(query, {}))
      assert.are.same({ page = 2, q = "x", flag = true }, s.validate_fields(query, { page = "2", q = "x", flag = "1", other = "y" }))
      assert.are.same({ page = 0, flag = false }, s.validate_fields(query, nil))
    end)

    it("reports every failing value with loc = { loc_prefix, name }", function()
      local query = { page = s.integer { minimum = 0 }, size = s.integer(), id = s.uuid() }
      local r, _, _, errs = s.validate_fields(query, { page = "-1", size = "x" }, { loc_prefix = "query" })
      assert.is_nil(r)
      assert.are.same({ "missing@query.id", "greater_than_equal@query.page", "int_parsing@query.size" }, summary(errs))
      assert.are.same({ "query", "page" }, errs[2].loc)
    end)

    it("accepts a string or a list of strings for array fields", function()
      local query = { tag = s.array(s.string()):default({}), n = s.array(s.integer()):optional() }
      assert.are.same({ tag = { "a" } }, s.validate_fields(query, { tag = "a" }))
      assert.are.same({ tag = { "a", "b" }, n = { 1, 2 } }, s.validate_fields(query, { tag = { "a", "b" }, n = { "1", "2" } }))
    end)

    it("accepts the list form and object schemas, and from_string = false", function()
      local list = { { "id", s.integer() } }
      assert.are.same({ id = 5 }, s.validate_fields(list, { id = "5" }))
      local obj = s.object { id = s.integer() }
      assert.are.same({ id = 5 }, s.validate_fields(obj, { id = "5" }))
      local _, _, _, errs = s.validate_fields(obj, { id = "5" }, { from_string = false, loc_prefix = "body" })
      assert.are.same({ "int_type@body.id" }, summary(errs))
    end)

    it("raises for a bad field map", function()
      assert.matches("validate_fields", err_of(s.validate_fields, 42, {}))
      assert.matches("must be a schema", err_of(s.validate_fields, { a = 1 }, {}))
      assert.matches("expected a table", err_of(s.validate_fields, s.integer(), {}))
    end)
  end)

  -------------------------------------------------------------------------
  describe("modifiers", function()
    it("return new schemas and leave the original unchanged", function()
      local base = s.string { min_length = 1 }
      local opt = base:optional()
      local def = base:default("x")
      local desc = base:describe("text")
      local ex = base:example("e1"):example("e2")
      local nul = base:nullable()
      for _, m in ipairs { opt, def, desc, ex, nul } do assert.are_not.equal(base, m) end
      assert.is_false(base.is_optional)
      assert.is_false(base.has_default)
      assert.is_nil(base.default_value)
      assert.is_nil(base.description)
      assert.is_nil(base.examples)
      assert.is_true(opt.is_optional)
      assert.is_false(opt.has_default)
      assert.is_true(def.is_optional)
      assert.is_true(def.has_default)
      assert.are.equal("x", def.default_value)
      assert.are.equal("text", desc.description)
      assert.are.same({ "e1", "e2" }, ex.examples)
      assert.are.equal(1, opt.min_length)
      assert.are.equal("string", desc.kind)
    end)

    it("accepts common options in every constructor", function()
      local sc = s.integer { description = "d", title = "T", example = 3, deprecated = true }
      assert.are.same({ 3 }, sc.examples)
      assert.are.same({ 1, 2 }, s.number { examples = { 1, 2 } }.examples)
      for _, mk in ipairs {
        function(o) return s.string(o) end, function(o) return s.boolean(o) end,
        function(o) return s.uuid(o) end, function(o) return s.date(o) end,
        function(o) return s.datetime(o) end, function(o) return s.any(o) end,
        function(o) return s.enum({ "a" }, o) end, function(o) return s.literal(1, o) end,
        function(o) return s.array(s.any(), o) end, function(o) return s.map(s.any(), o) end,
        function(o) return s.object({}, o) end, function(o) return s.nullable(s.any(), o) end,
        function(o) return s.one_of(s.any(), o) end, function(o) return s.ref("X", o) end,
        function(o) return s.extend(s.object {}, {}, o) end,
      } do
        local x = mk { description = "d", title = "T", deprecated = true }
        assert.are.equal("d", x.description)
        assert.are.equal("T", x.title)
        assert.is_true(x.deprecated)
      end
    end)

    it("validate defaults at definition time and store the cleaned value", function()
      assert.are.equal("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        s.uuid():default("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").default_value)
      assert.matches("default does not validate.*String should have at least 3 characters",
        err_of(function() return s.string { min_length = 3 }:default("x") end))
      assert.matches("schema_spec.lua:%d+:", err_of(function() local x = s.integer():default("1"); return x end))
      assert.matches("use :optional", err_of(function() return s.integer():default(nil) end))
      assert.matches("int_type", err_of(function() return s.integer():default(null) end))
      assert.are.equal(null, s.integer():nullable():default(null).default_value)
    end)

    it("raise when not called as methods", function()
      assert.matches("call it as a method", err_of(function() return s.string().optional() end))
    end)
  end)

  -------------------------------------------------------------------------
  describe("registry", function()
    it("raises on a second definition of a name, naming the first", function()
      s.object("Task", { { "id", s.integer() } })
      local msg = err_of(function() return s.object("Task", {}) end)
      assert.matches("schema name 'Task' is already defined at .*schema_spec.lua:%d+", msg)
      assert.matches("schema name 'Task' is already defined", err_of(function() return s.enum("Task", { "a" }) end))
    end)

    it("looks up and lists named schemas sorted by name", function()
      local B = s.object("Beta", {})
      local A = s.object("Alpha", {})
      local E = s.enum("Color", { "red" })
      s.object {}                                      -- anonymous: not listed
      assert.are.equal(A, s.lookup("Alpha"))
      assert.is_nil(s.lookup("Nope"))
      assert.are.same({ A, B, E }, s.named())
    end)

    it("_reset_registry forgets names (test-only)", function()
      s.object("Task", {})
      s._reset_registry()
      assert.is_nil(s.lookup("Task"))
      s.object("Task", {})
    end)

    it("expose / exposed keep named schemas in order, once", function()
      local A = s.object("A", {})
      local E = s.enum("E", { "x" })
      assert.are.equal(E, s.expose(E))
      s.expose(A)
      s.expose(E)
      assert.are.same({ E, A }, s.exposed())
      assert.matches("named object or enum", err_of(s.expose, s.object {}))
      assert.matches("named object or enum", err_of(s.expose, s.integer()))
    end)
  end)

  -------------------------------------------------------------------------
  describe("scopes (one per app file)", function()
    -- what an app file defines, run in the scope `key` as runtime.load_app does
    local function app(key, status_values, field)
      return s.with_scope(key, function()
        local Status = s.enum("Status", status_values)
        local Item = s.object("Item", { { field, s.string() }, { "status", s.ref("Status") } })
        s.expose(Item)
        return { __schemas = s.scope(key), Status = Status, Item = Item, ItemRef = s.ref("Item"):optional() }
      end)
    end

    it("two scopes define the same names; each resolves its own, refs included", function()
      local a = app("a.lua", { "draft" }, "name")
      local b = app("b.lua", { "sold" }, "sku")
      assert.are_not.equal(a.Item, b.Item)
      assert.are.equal(a.Item, s.lookup("Item", a))
      assert.are.equal(b.Item, s.lookup("Item", b))
      assert.are.equal(b.Status, s.lookup("Status", s.scope("b.lua")))
      assert.are.same({ name = "x", status = "draft" }, ok(a.Item, { name = "x", status = "draft" }))
      bad(a.Item, { name = "x", status = "sold" }, "enum", { "status" })
      -- a ref (and a modified copy of one) resolves in the scope it was made in
      assert.are.same({ sku = "y", status = "sold" }, ok(b.ItemRef, { sku = "y", status = "sold" }))
      bad(a.ItemRef, { sku = "y", status = "draft" }, "missing", { "name" })
      assert.are.equal(a.Item, s.lookup("Item", a.ItemRef))
    end)

    it("the root's names are seen from every scope; a scope's own name wins", function()
      local Shared = s.object("Shared", {})
      local Root = s.object("Item", { { "root", s.integer() } })
      local a = app("a.lua", { "draft" }, "name")
      assert.are.equal(Shared, s.lookup("Shared", a))
      assert.are.equal(a.Item, s.lookup("Item", a))
      assert.are.equal(Root, s.lookup("Item"))
      assert.are.same({ a.Item, Shared, a.Status }, s.named(a))
      assert.are.same({ Root, Shared }, s.named())
    end)

    it("outside any scope, a name defined once anywhere is found; twice is ambiguous", function()
      local a = app("a.lua", { "draft" }, "name")
      s.with_scope("c.lua", function() s.object("OnlyInC", {}) end)
      assert.are.equal(s.lookup("OnlyInC", s.scope("c.lua")), s.lookup("OnlyInC"))
      -- from another app too (a module two apps share is in the first one's scope)
      assert.are.equal(s.lookup("OnlyInC", s.scope("c.lua")), s.lookup("OnlyInC", a))
      app("b.lua", { "sold" }, "sku")
      local found, why = s.lookup("Item")
      assert.is_nil(found)
      assert.are.equal("schema name 'Item' is defined by several apps (a.lua, b.lua); look it up in one app's scope", why)
      -- a ref made outside both cannot pick one either
      assert.matches("ref%('Item'%): schema name 'Item' is defined by several apps",
        err_of(s.validate, s.ref("Item"), {}))
    end)

    it("while a scope is current, a name-only lookup sees that scope and the root only", function()
      s.with_scope("a.lua", function() s.object("ItemPage", {}) end)
      local A = s.lookup("ItemPage", s.scope("a.lua"))
      s.with_scope("b.lua", function()
        -- so a helper that names a schema unless the name is taken (Paginated)
        -- defines b's own instead of seeing a's
        assert.is_nil(s.lookup("ItemPage"))
        -- an explicit scope takes a single definition elsewhere, as refs do
        assert.are.equal(A, s.lookup("ItemPage", s.scope("b.lua")))
      end)
    end)

    it("one scope defining a name twice at two places fails, naming the first place and the app", function()
      local msg = err_of(s.with_scope, "a.lua", function()
        s.object("Item", {})
        s.object("Item", { { "other", s.string() } })
      end)
      assert.matches("schema_spec.lua:%d+: schema name 'Item' is already defined at .*schema_spec.lua:%d+ %(both in app a%.lua%)", msg)
    end)

    it("running the same definitions again in the same scope replaces them (an app loaded twice)", function()
      local first = app("a.lua", { "draft" }, "name")
      local second = app("a.lua", { "draft" }, "name")
      assert.are.equal(second.Item, s.lookup("Item", first))
      assert.are.same({ second.Item }, s.exposed(s.scope("a.lua")))
    end)

    it("exposed types are per scope, plus the root's", function()
      local R = s.expose(s.object("RootEvent", {}))
      local a = app("a.lua", { "draft" }, "name")
      local b = app("b.lua", { "sold" }, "sku")
      assert.are.same({ R, a.Item }, s.exposed(a))
      assert.are.same({ R, b.Item }, s.exposed(b))
      assert.are.same({ R }, s.exposed())
      assert.are.same({ R, b.Item }, s.registry(b).exposed())
      assert.are.equal(b.Item, s.registry(b).lookup("Item"))
      assert.are.equal(R, s.registry({}).lookup("RootEvent"))
    end)

    it("with_scope restores the previous scope when fn raises, and raises the same value", function()
      local e = { boom = true }
      local done, err = pcall(s.with_scope, "a.lua", function() s.object("Inside", {}); error(e) end)
      assert.is_false(done)
      assert.are.equal(e, err)
      s.object("Outside", {})
      assert.is_nil(s.scope("a.lua").names.Outside)
      assert.is_not_nil(s.lookup("Outside", s.scope("a.lua")))
    end)

    it("extend of a ref resolves the ref in its scope", function()
      local a = app("a.lua", { "draft" }, "name")
      app("b.lua", { "sold" }, "sku")
      local Ext = s.extend(a.ItemRef, { { "extra", s.integer() } })
      assert.are.equal(a.Item, Ext.extends)
    end)

    it("misuse raises", function()
      assert.matches("key must be a non%-empty string", err_of(s.with_scope, nil, function() end))
      assert.matches("fn must be a function", err_of(s.with_scope, "a.lua", 1))
    end)
  end)

  -------------------------------------------------------------------------
  describe("describe_errors", function()
    it("renders one line for logs", function()
      local Item = s.object { name = s.string { max_length = 2 } }
      local _, _, _, errs = s.object { items = s.array(Item), n = s.integer() }:validate({ items = { {}, { name = "abc" } } }, { loc = { "body" } })
      assert.are.equal("body.items[1].name: Field required (missing); " ..
        "body.items[2].name: String should have at most 2 characters (string_too_long); " ..
        "body.n: Field required (missing)", s.describe_errors(errs))
      local _, _, _, top = s.integer():validate("x")
      assert.are.equal("Input should be a valid integer (int_type)", s.describe_errors(top))
    end)
  end)

  -------------------------------------------------------------------------
  describe("misuse", function()
    it("raises for bad options at the caller", function()
      local msg = err_of(function() local x = s.string { min_length = "x" }; return x end)
      assert.matches("schema_spec.lua:%d+: schema.string: option min_length must be a non%-negative integer", msg)
      assert.matches("unknown option \"min_lenght\"", err_of(s.string, { min_lenght = 3 }))
      assert.matches("min_length %(5%) is greater than max_length %(2%)", err_of(s.string, { min_length = 5, max_length = 2 }))
      assert.matches("valid Lua pattern", err_of(s.string, { pattern = "[a" }))
      assert.matches("option maximum must be a finite number", err_of(s.integer, { maximum = "10" }))
      assert.matches("option minimum must be a finite number", err_of(s.number, { minimum = 0 / 0 }))
      assert.matches("minimum %(3%) is greater than maximum %(1%)", err_of(s.integer, { minimum = 3, maximum = 1 }))
      assert.matches("option description must be a string", err_of(s.boolean, { description = 1 }))
      assert.matches("options must be a table", err_of(s.uuid, "x"))
      assert.matches("min_items", err_of(s.array, s.any(), { min_items = -1 }))
      assert.matches("additional", err_of(s.object, {}, { additional = "keep" }))
    end)

    it("raises for bad constructor arguments", function()
      assert.matches("of must be a schema", err_of(s.array, 42))
      assert.matches("of must be a schema", err_of(s.map, {}))
      assert.matches("x must be a schema", err_of(s.nullable, "x"))
      assert.matches("at least one variant", err_of(s.one_of))
      assert.matches("variant 2 must be a schema", err_of(s.one_of, s.any(), 3))
      assert.matches("name must be a schema name", err_of(s.ref, 3))
      assert.matches("non%-empty list of strings", err_of(s.enum, {}))
      assert.matches("values%[2%] must be a string", err_of(s.enum, { "a", 2 }))
      assert.matches("listed twice", err_of(s.enum, { "a", "a" }))
      assert.matches("literal%(v%)", err_of(s.literal, {}))
      assert.matches("literal%(v%)", err_of(s.literal, 0 / 0))
      assert.matches("must be an identifier", err_of(s.object, "Not A Name", {}))
      assert.matches("Base must be an object schema", err_of(s.extend, s.integer(), {}))
      assert.matches("not defined", err_of(s.extend, s.ref("Later"), {}))
    end)

    it("points misuse errors at the caller's line", function()
      local cases = {
        function() local x = s.string { min_length = -1 }; return x end,
        function() local x = s.string { max_length = 1, min_length = 2 }; return x end,
        function() local x = s.integer "x"; return x end,
        function() local x = s.enum { 1 }; return x end,
        function() local x = s.enum("E1", {}); return x end,
        function() local x = s.literal(nil); return x end,
        function() local x = s.array(nil); return x end,
        function() local x = s.map(s.any(), { bogus = 1 }); return x end,
        function() local x = s.object { { "a", 1 } }; return x end,
        function() local x = s.object("O1", { a = 1 }); return x end,
        function() local x = s.extend(s.object {}, "X1", { 1 }); return x end,
        function() local x = s.extend(1, {}); return x end,
        function() local x = s.nullable(nil); return x end,
        function() local x = s.one_of(s.any(), 1); return x end,
        function() local x = s.ref(""); return x end,
        function() local x = s.any():describe(1); return x end,
        function() local x = s.any():example(nil); return x end,
        function() local x = s.expose(1); return x end,
        function() local x = s.validate_fields(1, {}); return x end,
        function() local x = s.validate_fields({}, {}, "query"); return x end,
        function() local x = s.integer():validate(1, true); return x end,
      }
      for i, fn in ipairs(cases) do
        assert.matches("^[^ ]*schema_spec.lua:%d+: ", err_of(fn), nil, false, "case " .. i)
      end
    end)

    it("raises for bad field declarations", function()
      assert.matches("fields must be a table", err_of(s.object, "T1", 3))
      assert.matches("field 'a' must be a schema", err_of(s.object, { a = 3 }))
      assert.matches("field names must be non%-empty strings", err_of(s.object, { [true] = s.any() }))
      assert.matches("fields%[1%] must be { name, schema }", err_of(s.object, { 3 }))
      assert.matches("fields%[1%]%[1%] must be a field name", err_of(s.object, { { 1, s.any() } }))
      assert.matches("field 'a' must be a schema", err_of(s.object, { { "a", 1 } }))
      assert.matches("declared twice", err_of(s.object, { { "a", s.any() }, { "a", s.any() } }))
      assert.matches("mixes the list form", err_of(s.object, { { "a", s.any() }, b = s.any() }))
    end)
  end)
end)
