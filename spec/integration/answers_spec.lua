-- Every request gets exactly one answer, whatever a handler, middleware or
-- interceptor returns or raises, and no connection is left in CLOSE-WAIT
-- (a request nobody answers parks its connection until shutdown).
local client = require "spec.support.client"
local server = require "spec.support.server"
local until_true = require("spec.support.wait").until_true
local cjson = require "cjson"

-- Sockets of the server's port in CLOSE-WAIT (state 08 in /proc/net/tcp):
-- the client closed, the server never did.
local function close_wait(port)
  local n = 0
  for _, file in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    local f = io.open(file)
    if f then
      for line in f:lines() do
        local lport, st = line:match("^%s*%d+: %x+:(%x+) %x+:%x+ (%x%x)")
        if lport and tonumber(lport, 16) == port and st == "08" then n = n + 1 end
      end
      f:close()
    end
  end
  return n
end


describe("every request gets exactly one answer", function()
  local srv
  setup(function() srv = server.start("spec/integration/apps/answers.lua") end)
  teardown(function() if srv then assert.equal(0, (srv:stop())) end end)

  -- One request on its own keep-alive connection; then a second request on
  -- the same connection proves it was not left waiting; then close.
  local function ask(path, id)
    local c = assert(client.connect(srv.port))
    assert(c:send(client.format("GET", path, { headers = { ["X-Request-Id"] = id } })))
    local res, err = c:read_response()
    if not res then
      c:close() -- a leaked request shows as CLOSE-WAIT in the last spec
      error("no answer to " .. path .. ": " .. tostring(err))
    end
    assert(c:send(client.format("GET", "/ok")))
    local again = assert(c:read_response())
    assert.equal(200, again.status)
    c:close()
    return res
  end

  local function internal(res, id)
    assert.equal(500, res.status)
    assert.same({ detail = "Internal Server Error", request_id = id }, cjson.decode(res.body))
  end

  local function logged(id, text)
    local out = srv:output()
    local line = out:match("[^\n]*%[" .. id:gsub("%-", "%%-") .. "%][^\n]*")
    assert.truthy(line, "no log line for " .. id .. " in:\n" .. out)
    assert.truthy(line:find("ERROR", 1, true), line)
    if text then assert.truthy(out:find(text, 1, true), ("%q not logged:\n%s"):format(text, out)) end
  end

  it("an exit that suppresses the error answers 204, or req.response.status when set", function()
    local res = ask("/suppressed", "ans-supp")
    assert.equal(204, res.status)
    assert.equal("", res.body)
    -- exit(self, ctx, err) got the error as raised: no traceback glued on
    assert.truthy(res.headers["x-exit-err"]:find("swallowed by the interceptor", 1, true))
    assert.falsy(res.headers["x-exit-err"]:find("traceback", 1, true))
    assert.equal("http,suppressed,Answers,/suppressed,true,true", res.headers["x-ctx"])
    assert.equal(409, ask("/suppressed-status", "ans-supp-st").status)
  end)

  it("sends one Content-Type: the handler's header replaces the default", function()
    local res = ask("/csv", "ans-csv")
    assert.equal(200, res.status)
    assert.equal("text/csv", res.headers["content-type"]) -- two lines would read "text/plain...., text/csv"
  end)

  it("an error object whose __tostring raises or returns a non-string is a logged 500", function()
    internal(ask("/nasty", "ans-nasty"), "ans-nasty")
    logged("ans-nasty", "cannot be shown")
    internal(ask("/odd", "ans-odd"), "ans-odd")
    logged("ans-odd", "cannot be shown")
    local res = ask("/enter-nasty", "ans-enter")
    internal(res, "ans-enter")
    assert.equal("table", res.headers["x-outer-err"]) -- the value as raised
    logged("ans-enter")
    internal(ask("/nil-error", "ans-nil"), "ans-nil")
    logged("ans-nil", "error raised with a nil value")
  end)

  it("refuses an unsendable answer with a logged 500", function()
    local cases = {
      { "/string-status", "the status must be an integer in 200..599 (a 1xx is not a final answer), got a string" },
      { "/table-status-mw", "the status must be an integer in 200..599 (a 1xx is not a final answer), got a table" },
      { "/float-status", "got 200.5" },
      { "/bool-header", "\"X-Flag\" must be a string or a number" },
      { "/bad-header-name", "\"X Bad\" is not a token" },
      { "/crlf-header", "contains CR, LF or NUL" },
      { "/headers-not-table", "must be a table" },
      { "/response-bad-body", "the body must be a string, got a boolean" },
      { "/http-error-bad-header", "contains CR, LF or NUL" },
      { "/http-error-unencodable", "cannot be encoded as JSON" },
    }
    for i, case in ipairs(cases) do
      local id = "ans-bad-" .. i
      local res = ask(case[1], id)
      internal(res, id)
      assert.is_nil(res.headers["injected"])
      logged(id, case[2])
    end
  end)

  it("error answers carry the headers set on req.response (422, 500, HTTPError)", function()
    local res = ask("/http-error", "ans-he")
    assert.equal(404, res.status)
    assert.same({ detail = "no such thing" }, cjson.decode(res.body))
    assert.equal("gone", res.headers["x-why"])
    assert.equal("t1", res.headers["x-trace"])
    res = ask("/plain-error", "ans-pe")
    internal(res, "ans-pe")
    assert.equal("t1", res.headers["x-trace"])
    logged("ans-pe", "plain failure\nstack traceback:")
    res = ask("/invalid?n=abc", "ans-422")
    assert.equal(422, res.status)
    assert.equal("t1", res.headers["x-trace"])
  end)

  it("a cancelled request task is answered 500", function()
    internal(ask("/cancelled", "ans-cancel"), "ans-cancel")
    logged("ans-cancel", "cancelled")
  end)

  it("leaves no connection in CLOSE-WAIT", function()
    until_true(function() return close_wait(srv.port) == 0 end, "no socket of the server is in CLOSE-WAIT")
    -- and the server still answers
    assert.equal(200, assert(client.request(srv.port, "GET", "/ok")).status)
  end)
end)
