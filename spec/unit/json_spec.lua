-- jararaca.json: the C codec (bindings/l_json.c, core/json.c) through its
-- Lua API. core/json.c's own edge cases are in spec/c/test_json.c.
local json = require "jararaca.json"
local core = require "jararaca.core.json"
local cjson = require "cjson"
local ffi = require "ffi"

local encode, decode = json.encode, json.decode

-- encode, asserting success
local function enc(v)
  local s, err = encode(v)
  assert.is_nil(err)
  assert.equal("string", type(s))
  return s
end

-- decode, asserting success
local function dec(s)
  local v, err = decode(s)
  assert.is_nil(err)
  return v
end

-- encode/decode failing: nil, message, code; returns message, code
local function enc_err(v)
  local s, err, code = encode(v)
  assert.is_nil(s)
  assert.equal("string", type(err))
  assert.equal("string", type(code))
  return err, code
end

local function dec_err(s)
  local v, err, code = decode(s)
  assert.is_nil(v)
  assert.equal("string", type(err))
  assert.equal("string", type(code))
  return err, code
end

describe("json.encode", function()
  it("encodes scalars", function()
    assert.equal("null", enc(nil))
    assert.equal("null", enc(json.null))
    assert.equal("true", enc(true))
    assert.equal("false", enc(false))
    assert.equal('"hi"', enc("hi"))
    assert.equal("42", enc(42))
    assert.equal("-7", enc(-7))
    assert.equal("0", enc(0))
    assert.equal("0", enc(-0.0))
  end)

  it("prints integral numbers up to 2^53 as integers, others so they read back exactly", function()
    assert.equal("9007199254740992", enc(2 ^ 53))
    assert.equal("-9007199254740992", enc(-2 ^ 53))
    assert.equal("1000000000000000", enc(1e15))
    assert.equal("0.1", enc(0.1))
    assert.equal("1e-07", enc(1e-7))
    assert.equal("1e+308", enc(1e308))
    assert.equal("0.30000000000000004", enc(0.1 + 0.2))
    assert.equal("0.3333333333333333", enc(1 / 3))
    assert.equal("98.6", enc(98.6))
    assert.equal("5e-324", enc(5e-324))
    for _, v in ipairs { 0.1, 1e-7, 1e308, 1 / 3, 2 ^ 60, 123.456, -2.5e-300, 2 ^ 53 + 2 } do
      assert.equal(v, tonumber(enc(v)))
      assert.equal(v, dec(enc(v)))
    end
    -- a whole double beyond 2^53 keeps an exponent, so it decodes as a number again
    assert.equal("9.007199254740994e+15", enc(2 ^ 53 + 2))
    assert.equal("number", type(dec(enc(2 ^ 60))))
  end)

  it("escapes strings: quotes, backslashes, control characters; not / or non-ASCII", function()
    assert.equal([["a\"b\\c/d"]], enc('a"b\\c/d'))
    assert.equal([["\n\r\t\b\f"]], enc("\n\r\t\b\f"))
    assert.equal([["\u0000\u0001\u001f"]], enc("\0\1\31"))
    assert.equal('"é 😀 \127"', enc("é 😀 \127"))
    local long = ("x\n"):rep(10000)
    assert.equal('"' .. ("x\\n"):rep(10000) .. '"', enc(long))
  end)

  it("encodes an empty table as {} and json.array() as []", function()
    assert.equal("{}", enc({}))
    assert.equal("[]", enc(json.array()))
    assert.equal("[]", enc(json.array {}))
    assert.equal("[1,2]", enc(json.array { 1, 2 }))
    assert.equal("[[],{}]", enc { json.array(), {} })
  end)

  it("encodes tables with keys exactly 1..n as arrays, others as objects", function()
    assert.equal('[1,"a",true]', enc { 1, "a", true })
    assert.equal('{"a":1}', enc { a = 1 })
    local t = cjson.decode(enc { 1, 2, x = 3 })
    assert.same({ ["1"] = 1, ["2"] = 2, x = 3 }, t)
    t = cjson.decode(enc { [1] = "a", [3] = "c" })
    assert.same({ ["1"] = "a", ["3"] = "c" }, t)
    assert.equal('{"0":"z"}', enc { [0] = "z" })
    assert.equal('{"2":"b"}', enc { [2] = "b" })
  end)

  it("converts number keys to strings (integers without .0)", function()
    assert.equal('{"1.5":1}', enc { [1.5] = 1 })
    assert.equal('{"-1":1}', enc { [-1] = 1 })
    assert.equal('{"10":1}', enc { [10] = 1 })
    assert.equal('{"9007199254740992":1}', enc { [2 ^ 53] = 1 })
    local t = cjson.decode(enc { [1] = "a", [2] = "b", name = "n" })
    assert.same({ ["1"] = "a", ["2"] = "b", name = "n" }, t)
  end)

  it("keeps array_mt arrays as arrays of t[1..#t]", function()
    assert.equal("[1,2,3]", enc(json.array { 1, 2, 3, x = "ignored" }))
    assert.equal('[null,"b"]', enc(json.array { json.null, "b" }))
  end)

  it("encodes object_mt objects with the listed keys first, absent ones skipped", function()
    local mt = json.object_mt { "id", "name", "missing", "tags" }
    local v = setmetatable({ tags = json.array { "x" }, name = "n", id = 7 }, mt)
    assert.equal('{"id":7,"name":"n","tags":["x"]}', enc(v))
    v.extra = 1
    assert.equal('{"id":7,"name":"n","tags":["x"],"extra":1}', enc(v))
    assert.equal("{}", enc(setmetatable({}, mt)))
    local mt2 = json.object_mt { "b", "a" }
    assert.equal('{"b":null,"a":1}', enc(setmetatable({ a = 1, b = json.null }, mt2)))
    -- number keys in the order list
    assert.equal('{"2":"two","1":"one"}', enc(setmetatable({ "one", "two" }, json.object_mt { 2, 1 })))
  end)

  it("honours a hand-made metatable with only __order", function()
    local mt = { __order = { "z", "a" } }
    local s = enc(setmetatable({ a = 1, z = 2, m = 3 }, mt))
    assert.equal('{"z":2,"a":1,"m":3}', s)
  end)

  it("judges a table with some other metatable by its contents", function()
    local Class = { __index = {} }
    assert.equal('{"x":1}', enc(setmetatable({ x = 1 }, Class)))
    assert.equal("[1,2]", enc(setmetatable({ 1, 2 }, Class)))
  end)

  it("encodes nested structures", function()
    local v = { user = { id = 1, roles = json.array { "a", "b" } }, list = { { x = 1 }, { x = 2 } } }
    assert.same(v, dec(enc(v)))
  end)

  it("encodes int64_t and uint64_t cdata exactly", function()
    assert.equal("9007199254740993", enc(json.int64("9007199254740993")))
    assert.equal("-9223372036854775808", enc(json.int64("-9223372036854775808")))
    assert.equal("9223372036854775807", enc(json.int64("9223372036854775807")))
    assert.equal("18446744073709551615", enc(ffi.new("uint64_t", 0) - 1))
    assert.equal('{"id":12345678901234567}', enc { id = json.int64("12345678901234567") })
    assert.equal("[-1]", enc { -1LL })
  end)

  it("returns nil, message, \"invalid\" for values JSON cannot hold", function()
    assert.same({ "cannot encode nan", "invalid" }, { enc_err(0 / 0) })
    assert.same({ "cannot encode inf", "invalid" }, { enc_err(math.huge) })
    assert.same({ "cannot encode -inf", "invalid" }, { enc_err(-math.huge) })
    assert.same({ "cannot encode a function", "invalid" }, { enc_err(print) })
    assert.equal("cannot encode a function at a.b", enc_err { a = { b = print } })
    assert.equal("cannot encode a thread", enc_err(coroutine.create(print)))
    assert.equal("cannot encode a userdata", enc_err(io.stdout))
    assert.matches("cannot encode a cdata", enc_err(ffi.new("int[2]")))
    assert.matches("cannot encode a cdata", enc_err(ffi.new("double", 1)))
    assert.equal("cannot encode a table with a boolean key", enc_err { [true] = 1 })
    assert.equal("cannot encode a table with a table key at x", enc_err { x = { [{}] = 1 } })
    assert.matches("cannot encode a table with an infinite number key", enc_err { [math.huge] = 1 })
    assert.equal("cannot encode nan at [2]", enc_err(json.array { 1, 0 / 0 }))
    assert.equal("cannot encode nan at a", enc_err(setmetatable({ a = 0 / 0 }, json.object_mt { "a" })))
    assert.equal("cannot encode nan at b", enc_err(setmetatable({ a = 1, b = 0 / 0 }, json.object_mt { "a" })))
  end)

  it("names where a bad value sits: names, other keys, Lua indexes", function()
    assert.equal("cannot encode a function at user.roles[2].fn",
      enc_err { user = { roles = json.array { "a", { fn = print } } } })
    assert.equal('cannot encode a function at ["a b"][3]["x\\34y"]', enc_err { ["a b"] = { 1, 2, { ['x"y'] = print } } })
    assert.equal("cannot encode a function at [7][1.5]", enc_err { [7] = { [1.5] = print } })
    assert.equal('cannot encode a function at ["1st"]', enc_err { ["1st"] = print })
    -- a long path keeps its outer parts
    local deep = {}
    local cur = deep
    for _ = 1, 100 do
      cur.level = {}
      cur = cur.level
    end
    cur.bad = print
    local err = enc_err(deep)
    assert.matches("^cannot encode a function at level%.level%.level", err)
    assert.matches("%.%.%.$", err)
    assert.is_true(#err < 260)
  end)

  it("refuses cycles and nesting deeper than 1000", function()
    local t = {}
    t.self = t
    assert.matches("nesting deeper than 1000", enc_err(t))
    local a = json.array()
    a[1] = a
    assert.matches("nesting deeper than 1000", enc_err(a))
    local deep = {}
    local cur = deep
    for _ = 1, 999 do
      cur[1] = {}
      cur = cur[1]
    end
    assert.equal(("["):rep(999) .. "{}" .. ("]"):rep(999), enc(deep)) -- 1000 levels
    cur[1] = {}
    assert.matches("nesting deeper than 1000", enc_err(deep))
  end)

  it("raises only when called without an argument", function()
    assert.has_error(function() encode() end)
  end)

  it("refuses strings and keys that are not UTF-8 (\"invalid_utf8\"), naming where", function()
    assert.same({ "cannot encode a string that is not valid UTF-8 (byte 1, 0xFF: invalid byte)", "invalid_utf8" },
      { enc_err("\255") })
    assert.same({ "cannot encode a string that is not valid UTF-8 (byte 3, 0xC0: overlong encoding) at user.name",
      "invalid_utf8" }, { enc_err { user = { name = "ab\192\128" } } })
    assert.equal("cannot encode a string that is not valid UTF-8 (byte 1, 0xED: encoded surrogate U+D800..U+DFFF)"
      .. " at [2]", enc_err { "ok", "\237\160\128" })
    assert.equal("cannot encode a string that is not valid UTF-8 (byte 2, 0xF4: code point above U+10FFFF)"
      .. " at tags[1]", enc_err { tags = json.array { "x\244\144\128\128" } })
    assert.equal("cannot encode a string that is not valid UTF-8 (byte 5, 0xE2: truncated sequence) at note",
      enc_err(setmetatable({ note = "abcd\226\130" }, json.object_mt { "note" })))
    assert.equal('cannot encode a key that is not valid UTF-8 (byte 4, 0xFF: invalid byte) at a["bad\\255"]',
      enc_err { a = { ["bad\255"] = 1 } })
    -- long strings (escaped in chunks) too, wherever the byte is
    for _, at in ipairs { 1, 4095, 4096, 4097, 9999 } do
      local s = ("x"):rep(10000)
      s = s:sub(1, at - 1) .. "\255" .. s:sub(at + 1)
      assert.equal(("cannot encode a string that is not valid UTF-8 (byte %d, 0xFF: invalid byte)"):format(at),
        enc_err(s))
    end
    -- and valid UTF-8 of every length still passes, short and long
    assert.equal('["é","€","😀","\\u0000é"]', enc(json.array { "é", "€", "😀", "\0é" }))
    local long = ("é€😀 "):rep(2000)
    assert.equal('"' .. long .. '"', enc(long))
    assert.equal(long, dec(enc(long)))
  end)

  it("works again after an error (the shared buffer is reset)", function()
    assert.is_nil(encode { a = ("x"):rep(100), b = print })
    assert.equal('{"a":1}', enc { a = 1 })
  end)

  it("survives a nested call from inside an encode (its own buffer)", function()
    -- A cdata __tostring runs Lua in the middle of an encode; a __gc
    -- finalizer can do the same. The inner call must not clobber the outer.
    pcall(ffi.cdef, "struct jr_json_spec_nested { int x; };")
    local inner
    local T = ffi.metatype("struct jr_json_spec_nested", {
      __tostring = function()
        inner = enc { inner = ("y"):rep(50) }
        return "5LL"
      end,
    })
    local s = enc(json.array { ("a"):rep(40), T(), ("b"):rep(40) })
    assert.equal('["' .. ("a"):rep(40) .. '",5,"' .. ("b"):rep(40) .. '"]', s)
    assert.equal('{"inner":"' .. ("y"):rep(50) .. '"}', inner)
  end)
end)

describe("json.decode", function()
  it("decodes scalars", function()
    assert.equal(true, dec("true"))
    assert.equal(false, dec("false"))
    assert.equal(json.null, dec("null"))
    assert.equal("x", dec('"x"'))
    assert.equal(1.5, dec("1.5"))
    assert.equal(-3, dec(" -3 "))
  end)

  it("gives objects as plain tables and arrays with array_mt", function()
    local v = dec('{"a":[1,2,{"b":[]}],"c":{}}')
    assert.is_nil(getmetatable(v))
    assert.is_true(json.is_array(v.a))
    assert.equal(json.array_mt, getmetatable(v.a))
    assert.is_true(json.is_array(v.a[3].b))
    assert.is_false(json.is_array(v.c))
    assert.same({ a = { 1, 2, { b = {} } }, c = {} }, v)
    assert.is_false(json.is_array({}))
    assert.is_false(json.is_array("x"))
  end)

  it("keeps null apart from absent", function()
    local v = dec('{"a":null,"b":[null,1]}')
    assert.equal(json.null, v.a)
    assert.is_nil(v.z)
    assert.equal(2, #v.b)
    assert.equal(json.null, v.b[1])
    assert.equal('{"a":null}', enc(dec('{"a":null}')))
    assert.equal("{}", enc { a = nil })
    assert.equal(cjson.null, json.null)
  end)

  it("round-trips [] and {} as themselves", function()
    assert.equal("[]", enc(dec("[]")))
    assert.equal("{}", enc(dec("{}")))
    local v = dec(enc(dec('{"a":[],"b":{}}')))
    assert.equal("[]", enc(v.a))
    assert.equal("{}", enc(v.b))
    assert.equal("[[[]],[{}]]", enc(dec("[[[]],[{}]]")))
  end)

  it("decodes numbers: integers up to 2^53 as numbers, beyond as exact int64_t", function()
    assert.equal(2 ^ 53, dec("9007199254740992"))
    assert.equal("number", type(dec("9007199254740992")))
    assert.equal(-2 ^ 53, dec("-9007199254740992"))
    local big = dec("9007199254740993")
    assert.equal("cdata", type(big))
    assert.is_true(ffi.istype("int64_t", big))
    assert.equal("9007199254740993LL", tostring(big))
    assert.equal("-9223372036854775808LL", tostring(dec("-9223372036854775808")))
    assert.equal("9223372036854775807LL", tostring(dec("9223372036854775807")))
    assert.equal(0.1, dec("0.1"))
    assert.equal(1e308, dec("1e308"))
    assert.equal(1e-7, dec("1e-7"))
    assert.equal(9007199254740992, dec("9007199254740993.0")) -- a double: rounds
    assert.equal(25, dec("2.5e1"))
  end)

  it("round-trips int64 values exactly both ways", function()
    for _, s in ipairs { "9007199254740993", "-9007199254740993", "9223372036854775807",
      "-9223372036854775808", "12345678901234567" } do
      assert.equal(s, enc(dec(s)))
      assert.equal("[" .. s .. "]", enc(dec("[" .. s .. "]")))
    end
    local v = dec('{"id":9007199254740993}')
    assert.equal(json.int64("9007199254740993"), v.id)
    assert.equal('{"id":9007199254740993}', enc(v))
  end)

  it("refuses integers beyond int64 (\"out_of_range\")", function()
    assert.same({ "integer out of range at position 1", "out_of_range" }, { dec_err("9223372036854775808") })
    assert.equal("integer out of range at position 7", dec_err('{"a": -9223372036854775809}'))
    assert.equal("integer out of range at position 2", dec_err("[123456789012345678901234567890]"))
  end)

  it("refuses numbers beyond a double's range; reads tiny ones as 0, -0 as -0", function()
    assert.same({ "number out of range at position 2", "out_of_range" }, { dec_err("[1e400]") })
    assert.same({ "number out of range at position 7", "out_of_range" }, { dec_err('{"a": -1e400}') })
    assert.equal("number out of range at position 1", dec_err("1" .. ("0"):rep(400) .. ".0"))
    assert.equal("number out of range at position 1", dec_err("1e99999999999"))
    assert.equal(1.7976931348623157e308, dec("1.7976931348623157e308"))
    assert.equal(0, dec("1e-400"))
    local z = dec("-0")
    assert.equal(0, z)
    assert.equal(-math.huge, 1 / z)
    assert.equal("0", enc(z))
  end)

  it("unescapes strings, surrogate pairs included", function()
    assert.equal(' " \\ / \b \f \n \r \t', dec([[" \" \\ \/ \b \f \n \r \t"]]))
    assert.equal("Aé€😀", dec([["\u0041\u00e9\u20AC\ud83d\ude00"]]))
    assert.equal("a\0b", dec([["a\u0000b"]]))
    assert.equal("é € 😀", dec('"é € 😀"'))
    local long = ("ab\\n"):rep(5000)
    assert.equal(("ab\n"):rep(5000), dec('"' .. long .. '"'))
  end)

  it("keeps the last of duplicate keys", function()
    assert.same({ a = 3, b = 2 }, dec('{"a":1,"b":2,"a":3}'))
  end)

  it("builds big arrays and objects (past the parked-items limit)", function()
    local parts = {}
    for i = 1, 10000 do parts[i] = tostring(i) end
    local arr = dec("[" .. table.concat(parts, ",") .. "]")
    assert.equal(10000, #arr)
    for i = 1, 10000 do assert.equal(i, arr[i]) end
    assert.is_true(json.is_array(arr))
    local kv = {}
    for i = 1, 6000 do kv[i] = ('"k%d":%d'):format(i, i) end
    kv[#kv + 1] = '"k1":"last"'
    local obj = dec("{" .. table.concat(kv, ",") .. "}")
    assert.equal("last", obj.k1)
    assert.equal(6000, obj.k6000)
    local n = 0
    for _ in pairs(obj) do n = n + 1 end
    assert.equal(6000, n)
    -- deep and wide at once
    local doc = ("[1,2,3,4,5,"):rep(999) .. "[]" .. ("]"):rep(999)
    local v = dec(doc)
    assert.equal(6, #v)
    assert.equal(5, v[5])
  end)

  it("accepts 1000 levels of nesting and refuses 1001", function()
    local v = dec(("["):rep(1000) .. ("]"):rep(1000))
    assert.is_true(json.is_array(v))
    local err = dec_err(("["):rep(1001) .. ("]"):rep(1001))
    assert.equal("invalid JSON at position 1001: nesting deeper than 1000", err)
    err = dec_err(('{"a":'):rep(1001) .. "1" .. ("}"):rep(1001))
    assert.matches("nesting deeper than 1000", err)
  end)

  it("reports bad input as nil, err with a position", function()
    assert.equal("invalid JSON at position 12: unexpected character 'x'", dec_err('{"a": [1, 2x]}'))
    assert.equal("invalid JSON at position 1: unexpected end of input", dec_err(""))
    assert.equal("invalid JSON at position 5: unexpected end of input", dec_err("[1,2"))
    assert.equal("invalid JSON at position 9: unexpected character 'x'", dec_err('{"a":1} x'))
    assert.equal("invalid JSON at position 4: unexpected character ']'", dec_err("[1,]"))
    assert.equal("invalid JSON at position 2: unexpected character 'a'", dec_err("{a:1}"))
    assert.equal("invalid JSON at position 2: invalid escape '\\x'", dec_err([["\x"]]))
    assert.equal("invalid JSON at position 3: control character 0x0A in string", dec_err('"a\nb"'))
    assert.same({ "invalid JSON at position 2: invalid \\u escape: high surrogate without a low one", "invalid_json" },
      { dec_err([["\ud83d"]]) })
    assert.matches("surrogate", dec_err([["\ude00"]]))
    assert.matches("invalid \\u escape", dec_err([["\u12x4"]]))
    assert.equal("invalid JSON at position 2: leading zero in a number", dec_err("01"))
    assert.matches("unexpected character 'N'", dec_err("NaN"))
    assert.matches("unexpected character '''", dec_err("{'a':1}"))
  end)

  it("refuses strings that are not UTF-8, saying where and why", function()
    local cases = {
      { '"\255"', "position 2: invalid UTF-8 in string: invalid byte (0xFF)" },
      { '"ab\192\128"', "position 4: invalid UTF-8 in string: overlong encoding (0xC0)" },
      { '"\224\128\175"', "position 2: invalid UTF-8 in string: overlong encoding (0xE0)" },
      { '"\237\160\128"', "position 2: invalid UTF-8 in string: encoded surrogate U+D800..U+DFFF (0xED)" },
      { '"\244\144\128\128"', "position 2: invalid UTF-8 in string: code point above U+10FFFF (0xF4)" },
      { '"\226\130"', "position 2: invalid UTF-8 in string: truncated sequence (0xE2)" },
      { '"\128"', "position 2: invalid UTF-8 in string: stray continuation byte (0x80)" },
      { '{"k\255":1}', "position 4: invalid UTF-8 in string: invalid byte (0xFF)" },
      { '["\\n é", "' .. ("x"):rep(40) .. '\255"]', "position 52: invalid UTF-8 in string: invalid byte (0xFF)" },
    }
    for _, c in ipairs(cases) do
      assert.same({ "invalid JSON at " .. c[2], "invalid_json" }, { dec_err(c[1]) })
    end
    -- the message itself is plain ASCII, whatever the input
    assert.is_nil(dec_err('"\255\254"'):find("[\128-\255]"))
    -- outside strings such bytes were always a syntax error
    assert.equal("invalid JSON at position 1: unexpected byte 0xFF", dec_err("\255"))
    assert.equal("invalid JSON at position 1: unexpected byte 0xEF", dec_err("\239\187\191{}"))
  end)

  it("raises on misuse: no argument, or not a string", function()
    assert.has_error(function() decode() end, "bad argument #1 to 'decode' (string expected, got no value)")
    assert.has_error(function() decode(42) end, "bad argument #1 to 'decode' (string expected, got number)")
    assert.has_error(function() decode({}) end, "bad argument #1 to 'decode' (string expected, got table)")
  end)

  it("survives a nested call from inside a decode (its own scratch buffer)", function()
    local inner
    core.set_int64_factory(function(s)
      inner = dec([["\u00e9\n"]])
      return ffi.C.strtoll(s, nil, 10)
    end)
    local ok, v = pcall(dec, [=[["\u00e0\t", 9007199254740993, "\u00fc\r"]]=])
    core.set_int64_factory(function(s) return ffi.C.strtoll(s, nil, 10) end)
    assert.is_true(ok, v)
    assert.same({ "à\t", json.int64("9007199254740993"), "ü\r" }, v)
    assert.equal("é\n", inner)
  end)

  it("round-trips a realistic document", function()
    local src = '{"id":42,"name":"caf\\u00e9 \\"q\\"","tags":["a","b"],"ratio":0.25,'
      .. '"big":9223372036854775807,"none":null,"ok":true,"nested":{"x":[[],{}]}}'
    local v = dec(src)
    local again = dec(enc(v))
    assert.same(v, again)
    assert.equal(0.25, again.ratio)
    assert.equal(json.null, again.none)
    assert.equal("9223372036854775807LL", tostring(again.big))
  end)
end)

describe("json helpers", function()
  it("json.array marks a table and returns it", function()
    local t = { 1 }
    assert.equal(t, json.array(t))
    assert.is_true(json.is_array(t))
    assert.is_true(json.is_array(json.array()))
  end)

  it("json.int64 builds exact int64_t values", function()
    local v = json.int64("9007199254740993")
    assert.is_true(ffi.istype("int64_t", v))
    assert.equal("9007199254740993LL", tostring(v))
    assert.equal("-9223372036854775808LL", tostring(json.int64("-9223372036854775808")))
    assert.equal("42LL", tostring(json.int64(42)))
    assert.equal("-5LL", tostring(json.int64(-5)))
    assert.equal("7LL", tostring(json.int64(7ULL)))
    assert.has_error(function() json.int64("12abc") end)
    assert.has_error(function() json.int64("9223372036854775808") end)
    assert.has_error(function() json.int64(1.5) end)
    assert.has_error(function() json.int64(2 ^ 63) end)
    assert.has_error(function() json.int64({}) end)
  end)

  it("object_mt returns a new metatable each time", function()
    local a, b = json.object_mt { "x" }, json.object_mt { "x" }
    assert.are_not.equal(a, b)
    assert.same({ "x" }, a.__order)
  end)
end)
