-- Limits that need their own server: the connection cap, back-pressure
-- against a client that never reads, and the JSON log format.
local client = require "spec.support.client"
local server = require "spec.support.server"
local cjson = require "cjson"

local function rss_kb(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s+(%d+)"))
end

describe("limits", function()
  it("answers 503 and closes beyond --max-connections", function()
    local srv = server.start("spec/integration/apps/basic.lua", { "--max-connections", "2" })
    -- the start-up probe's connection may still be counted for a moment:
    -- open until two connections are admitted
    local function admitted()
      for _ = 1, 50 do
        local conn = assert(client.connect(srv.port))
        conn:send(client.format("GET", "/hello"))
        local r = assert(conn:read_response())
        if r.status == 200 then return conn end
        conn:close()
      end
    end
    local a = assert(admitted())
    local b = assert(admitted())
    local c = assert(client.connect(srv.port))
    local res = assert(c:read_response())
    assert.equal(503, res.status)
    assert.is_true(c:closed(2))
    a:close()
    -- a slot is free again once a connection closed
    local ok
    for _ = 1, 50 do
      local r = client.request(srv.port, "GET", "/hello")
      if r and r.status == 200 then ok = true; break end
    end
    assert.is_true(ok)
    b:close()
    assert.equal(0, (srv:stop()))
  end)

  it("stops reading from a client that pipelines without reading: memory stays bounded", function()
    local srv = server.start("spec/integration/apps/basic.lua", { "--write-timeout", "2" })
    -- the worker's memory (srv.pid is its master under the watchdog)
    local worker = cjson.decode(assert(client.request(srv.port, "GET", "/pid")).body).pid
    local before = rss_kb(worker)
    local c = assert(client.connect(srv.port, 1))
    local chunk = string.rep(client.format("GET", "/hello?name=" .. string.rep("x", 200)), 1000)
    local sent, err = 0, nil
    for _ = 1, 200 do -- up to ~50 MB offered
      local ok, e = c:send(chunk)
      if not ok then err = e; break end
      sent = sent + #chunk
    end
    -- the kernel buffers filled up and the send timed out: the server did
    -- not swallow everything we offered
    assert.is_not_nil(err)
    assert.is_true(sent < 200 * #chunk)
    local after = rss_kb(worker)
    assert.is_true(after - before < 20000, ("RSS grew %d kB"):format(after - before))
    -- others are still served meanwhile
    local res = assert(client.request(srv.port, "GET", "/hello?name=other"))
    assert.equal('{"message":"Hello other"}', res.body)
    c:close()
    assert.equal(0, (srv:stop()))
  end)

  it("logs one JSON object per line with --log-format json", function()
    local srv = server.start("spec/integration/apps/basic.lua",
      { "--log-format", "json", "--access-log" })
    assert.equal(500, assert(client.request(srv.port, "GET", "/boom",
      { headers = { ["X-Request-Id"] = "json-1" } })).status)
    srv.proc:kill("SIGTERM")
    assert.equal(0, (srv:wait(10)))
    local n, saw_error, saw_access = 0, false, false
    for line in srv:output():gmatch("[^\n]+") do
      local obj = cjson.decode(line) -- every line is one JSON object
      n = n + 1
      assert.is_string(obj.ts)
      assert.is_string(obj.level)
      if obj.level == "error" and obj.request_id == "json-1" then
        saw_error = obj.msg:find("kaboom in handler", 1, true) ~= nil
      end
      if obj.request_id == "json-1" and obj.msg:find("GET /boom 500", 1, true) then saw_access = true end
    end
    os.remove(srv.log)
    assert.is_true(n >= 3)
    assert.is_true(saw_error)
    assert.is_true(saw_access)
  end)
end)
