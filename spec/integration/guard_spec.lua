-- The C server's own guarantees, below the framework's dispatch: the
-- last-resort answer when a request's task ends without answering, stale
-- request handles, and a server's lifetime (anchored while it serves; the
-- collector only frees a stopped one). The server runs in this process on
-- its loop; the client is another process (python3), so nothing blocks the
-- loop while it waits.
local http = require "jararaca.core.http"
local router_core = require "jararaca.core.router"
local sched = require "jararaca.sched"
local until_true = require("spec.support.wait").until_true
local sched_core = require "jararaca.core.sched"
local process = require "jararaca.core.process"
local client = require "spec.support.client"

-- GET each path on its own connection; print "status body" per line.
-- With the first argument "pipelined": every request in one write on one
-- connection, the answers read in order.
local CLIENT = [[
import socket, sys
port = int(sys.argv[1])
paths = sys.argv[2:]
pipelined = paths[0] == "pipelined"
if pipelined: paths = paths[1:]
def request(path): return ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
def answer(s, data):
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length": length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk: break
        body += chunk
    status = head.split(b" ")[1].decode() if head else "none"
    print(status, body[:length].decode())
    return body[length:]
if pipelined:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"".join(request(p) for p in paths))
    rest = b""
    for p in paths: rest = answer(s, rest)
    s.close()
else:
    for p in paths:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(request(p))
        answer(s, b"")
        s.close()
]]

-- Run the client against port; returns its output lines.
local function fetch(port, ...)
  local out = os.tmpname()
  local argv = { "python3", "-c", CLIENT, tostring(port), ... }
  argv.stdout, argv.stderr = out, out
  local p = assert(process.spawn(argv))
  local status = p:wait(20)
  local f = assert(io.open(out))
  local text = f:read("*a")
  f:close()
  os.remove(out)
  assert.equal(0, status, text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end


describe("the C server's last-resort answer", function()
  it("answers 500 when the task ends unanswered: returned, raised or cancelled", function()
    local r = router_core.new()
    assert(r:add("GET", "/returns", 1))
    assert(r:add("GET", "/raises", 2))
    assert(r:add("GET", "/cancelled", 3))
    assert(r:add("GET", "/answers/{n:int}", 4))
    local kept, seen404
    http.set_handler(function(h, id, params)
      if id == nil then
        seen404 = params
        return -- a 404 left unanswered too
      elseif id == 1 then
        return
      elseif id == 2 then
        error("raised before answering")
      elseif id == 3 then
        local t, g = sched_core.current()
        sched.spawn(function() sched_core.cancel(t, g) end)
        sched.sleep(10) -- raises sched.CANCELLED
      end
      kept = h
      assert(h:respond(200, "fine " .. params.n, "text/plain"))
    end, r)
    local srv = assert(http.listen { host = "127.0.0.1", port = 0 })
    local lines = fetch(srv:port(), "/returns", "/raises", "/cancelled", "/answers/7", "/nowhere")
    local internal = '{"detail":"Internal Server Error","request_id":"'
    assert.equal(5, #lines)
    for _, i in ipairs { 1, 2, 3, 5 } do
      assert.equal("500 " .. internal, lines[i]:sub(1, 4 + #internal))
    end
    assert.equal("200 fine 7", lines[4])
    assert.equal(404, seen404)
    -- pipelined: the guard's answer lets the next request on the connection run
    lines = fetch(srv:port(), "pipelined", "/returns", "/answers/8", "/raises", "/answers/9")
    assert.equal(4, #lines)
    assert.equal("500 " .. internal, lines[1]:sub(1, 4 + #internal))
    assert.equal("200 fine 8", lines[2])
    assert.equal("500 " .. internal, lines[3]:sub(1, 4 + #internal))
    assert.equal("200 fine 9", lines[4])
    until_true(function() return srv:stats().connections == 0 end, "every connection is closed")

    -- the handle of a request whose task ended is stale: no dangling access
    assert.is_false(kept:alive())
    local ok, msg, code = kept:respond(200, "again")
    assert.same({ nil, "closed" }, { ok, code })
    assert.truthy(msg:find("over", 1, true))
    assert.has_error(function() kept:body() end,
      "this request is over: its task has ended (copy what a spawned task needs from the request before the handler returns)")
    assert.is_true(srv:close())
  end)

  it("refuses bad answers without raising: nil, message, \"invalid\"", function()
    local r = router_core.new()
    assert(r:add("GET", "/x", 1))
    local results = {}
    http.set_handler(function(h)
      local tries = {
        { "Created" }, { 200.5 }, { 42 }, { 103 }, { 200, true }, { 200, "b", 7 }, { 200, "b", nil, "x" },
        { 200, "b", nil, { [1] = "v" } }, { 200, "b", nil, { ["X Y"] = "v" } },
        { 200, "b", nil, { ["X-A"] = false } }, { 200, "b", nil, { ["X-A"] = { "ok", {} } } },
        { 200, "b", nil, { ["X-A"] = "a\r\nb" } },
      }
      for i, t in ipairs(tries) do
        results[i] = { h:respond(t[1], t[2], t[3], t[4]) }
      end
      local nums = { ["X-N"] = 5, ["X-L"] = { 1, "two" } }
      assert(h:respond(200, "ok", nil, nums))
      results.nums_untouched = type(nums["X-N"]) == "number" and type(nums["X-L"][1]) == "number"
    end, r)
    local srv = assert(http.listen { host = "127.0.0.1", port = 0 })
    assert.same({ "200 ok" }, fetch(srv:port(), "/x"))
    assert.equal(12, #results)
    for i, res in ipairs(results) do
      assert.is_nil(res[1], "try " .. i)
      assert.equal("string", type(res[2]), "try " .. i)
      assert.equal("invalid", res[3], "try " .. i)
    end
    assert.truthy(results[1][2]:find("got a string", 1, true))
    assert.truthy(results[4][2]:find("a 1xx is not a final answer", 1, true))
    assert.truthy(results[9][2]:find('"X Y" is not a token', 1, true))
    assert.is_true(results.nums_untouched) -- numbers are sent as text without changing the caller's table
    assert.is_true(srv:close())
  end)
end)

describe("an HTTP server's lifetime", function()
  it("stays up while it serves, though nothing references it; __gc frees it once stopped", function()
    local r = router_core.new()
    assert(r:add("GET", "/x", 1))
    http.set_handler(function(h) h:respond(200, "up") end, r)
    local weak = setmetatable({}, { __mode = "v" })
    -- every use of the server in its own function: no register of this one
    -- keeps it alive
    local function start() weak[1] = assert(http.listen { host = "127.0.0.1", port = 0 }) end
    local function port_of() return weak[1]:port() end
    start()
    collectgarbage()
    collectgarbage()
    assert.is_true(weak[1] ~= nil) -- anchored while serving
    assert.same({ "200 up" }, fetch(port_of(), "/x"))
    assert.same({ true, true }, { sched.spawn(function() return weak[1]:shutdown(1) end):wait() })
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1]) -- drained: collectable, and __gc only frees
  end)

  it("close() stops at once and releases a task waiting in shutdown()", function()
    local r = router_core.new()
    assert(r:add("GET", "/slow", 1))
    local entered = false
    http.set_handler(function(h)
      entered = true
      sched.sleep(30)
      h:respond(200, "late")
    end, r)
    local srv = assert(http.listen { host = "127.0.0.1", port = 0 })
    local port = srv:port()
    local out = os.tmpname()
    local argv = { "python3", "-c", CLIENT, tostring(port), "/slow" }
    argv.stdout, argv.stderr = out, out
    local p = assert(process.spawn(argv))
    until_true(function() return entered end, "the request is in its handler")
    local waiter = sched.spawn(function() return srv:shutdown(60) end)
    -- shutdown closes the listener first: new connections are refused
    until_true(function()
      local c = client.connect(port, 1)
      if c then c:close() end
      return c == nil
    end, "shutdown has started")
    assert.equal(1, srv:stats().inflight)
    assert.is_true(srv:close())
    assert.same({ true, true }, { waiter:wait(5) })
    assert.equal(0, p:wait(20)) -- the client saw the connection close
    os.remove(out)
    assert.has_error(function() srv:port() end, "http server is closed")
  end)
end)
