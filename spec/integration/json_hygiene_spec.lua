-- JSON input hygiene on the real server: bodies that are not UTF-8, or
-- whose numbers overflow a double, answer 422 (json_invalid) on untyped and
-- typed routes; a handler whose answer holds a string that is not UTF-8
-- gets a logged 500, never invalid JSON on the wire.
local client = require "spec.support.client"
local server = require "spec.support.server"
local json = require "jararaca.json"

local function post(port, path, body)
  return assert(client.request(port, "POST", path, {
    headers = { ["Content-Type"] = "application/json" }, body = body }))
end

-- Every answer must itself be valid JSON (the codec now checks UTF-8).
local function decode(res)
  local v, err = json.decode(res.body)
  assert(v ~= nil, ("answer is not valid JSON (%s): %q"):format(tostring(err), res.body))
  return v
end

-- name, body (a JSON text with the fault inside a string), the msg's tail
local BAD_BODIES = {
  { "raw 0xFF", '{"name":"a\255b"}', "invalid UTF-8 in string: invalid byte (0xFF)" },
  { "overlong '/'", '{"name":"\224\128\175"}', "invalid UTF-8 in string: overlong encoding (0xE0)" },
  { "encoded surrogate", '{"name":"\237\160\128"}', "encoded surrogate U+D800..U+DFFF (0xED)" },
  { "above U+10FFFF", '{"name":"\244\144\128\128"}', "code point above U+10FFFF (0xF4)" },
  { "truncated sequence", '{"name":"\226\130"}', "truncated sequence (0xE2)" },
  { "bad key", '{"na\255me":"x"}', "invalid UTF-8 in string: invalid byte (0xFF)" },
  { "unpaired surrogate escape", '{"name":"\\ud800"}', "high surrogate without a low one" },
}

local function check_422(res, tail)
  assert.equal(422, res.status, res.body)
  local d = decode(res).detail
  assert.equal(1, #d)
  assert.same({ "body" }, d[1].loc)
  assert.equal("json_invalid", d[1].type)
  assert.truthy(d[1].msg:find("^JSON decode error: "), d[1].msg)
  assert.truthy(d[1].msg:find(tail, 1, true), d[1].msg .. " lacks " .. tail)
  -- the message names the byte offset, and echoes none of the bad bytes
  assert.truthy(d[1].msg:find("at position %d+"), d[1].msg)
  assert.is_nil(res.body:find("[\128-\255]"))
end

-- Runs app for the enclosing describe; returns a getter for the server.
local function serve(app)
  local srv
  setup(function() srv = server.start(app) end)
  teardown(function() assert.equal(0, (srv:stop())) end)
  return function() return srv end
end

local function each_bad_body_answers_422(srv, path)
  for _, c in ipairs(BAD_BODIES) do
    it("answers 422 json_invalid for " .. c[1], function()
      check_422(post(srv().port, path, c[2]), c[3])
    end)
  end
end

describe("JSON hygiene, untyped route (req.json)", function()
  local srv = serve("spec/integration/apps/basic.lua")
  each_bad_body_answers_422(srv, "/echo")

  it("names the byte offset of the bad byte", function()
    local d = decode(post(srv().port, "/echo", '{"name":"a\255b"}')).detail
    assert.equal("JSON decode error: invalid JSON at position 11: invalid UTF-8 in string: invalid byte (0xFF)",
      d[1].msg)
  end)

  it("answers 422 for numbers beyond a double ([1e400], -1e400), not 500", function()
    check_422(post(srv().port, "/echo", "[1e400]"), "number out of range at position 2")
    check_422(post(srv().port, "/echo", '{"n":-1e400}'), "number out of range at position 6")
    check_422(post(srv().port, "/echo", "[1" .. ("0"):rep(400) .. ".5]"), "number out of range at position 2")
  end)

  it("still takes valid UTF-8 of every length, and tiny numbers as 0", function()
    local res = post(srv().port, "/echo", '{"s":"é € 😀 \\u00e9\\ud83d\\ude00","tiny":1e-400}')
    assert.equal(200, res.status, res.body)
    local v = decode(res)
    assert.equal("é € 😀 é😀", v.json.s)
    assert.equal(0, v.json.tiny)
  end)

  it("answers a logged 500 when the handler's answer holds a string that is not UTF-8", function()
    -- /hello echoes the query's name, percent-decoded to the raw byte 0xFF
    local res = assert(client.request(srv().port, "GET", "/hello?name=%FF", {
      headers = { ["X-Request-Id"] = "bad-utf8-1" } }))
    assert.equal(500, res.status)
    assert.same({ detail = "Internal Server Error", request_id = "bad-utf8-1" }, decode(res))
    local log = srv():output()
    assert.truthy(log:find("[bad-utf8-1] unhandled error in GET /hello", 1, true), log)
    assert.truthy(log:find("cannot encode a string that is not valid UTF-8 (byte 7, 0xFF: invalid byte) at message",
      1, true), log)
    -- valid UTF-8 in the same place is answered as before
    res = assert(client.request(srv().port, "GET", "/hello?name=%C3%A9"))
    assert.equal(200, res.status)
    assert.equal("Hello é", decode(res).message)
  end)
end)

describe("JSON hygiene, typed route (body schema)", function()
  local srv = serve("spec/integration/apps/typed.lua")
  each_bad_body_answers_422(srv, "/tasks")

  it("answers 422 for a number beyond a double in a number field", function()
    check_422(post(srv().port, "/tasks", '{"name":"x","estimate_hours":1e400}'), "number out of range at position 30")
  end)

  it("accepts the same document with valid text", function()
    local res = post(srv().port, "/tasks", '{"name":"caf\195\169 \\u00e9","estimate_hours":1e-400}')
    assert.equal(201, res.status, res.body)
    assert.equal("café é", decode(res).name)
  end)
end)
