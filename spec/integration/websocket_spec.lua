-- WebSocket endpoints through the real server (spec/integration/apps/websocket.lua)
-- with a real client (spec/support/wsclient.lua): the upgrade through routing
-- and interceptors, the socket API, close codes both ways, protocol errors
-- (each answered with its RFC 6455 close code while another client keeps
-- being served), the room manager and staged sends against a real SQLite
-- file.
local client = require "spec.support.client"
local server = require "spec.support.server"
local wsclient = require "spec.support.wsclient"
local wait = require "spec.support.wait"
local cjson = require "cjson"

local W = wsclient

describe("WebSocket endpoints", function()
  local srv, db

  setup(function()
    db = os.tmpname()
    os.remove(db)
    srv = server.start("spec/integration/apps/websocket.lua", {}, { WS_DB = db })
  end)

  teardown(function()
    if srv then srv:stop() end
    for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(db .. suffix) end
  end)

  local function connect(path, opts)
    local ws, res = W.connect(srv.port, path, opts)
    assert(ws, type(res) == "table" and ("status " .. res.status .. ": " .. res.body) or tostring(res))
    return ws, res
  end

  local function get_json(path) return client.get_json(srv.port, path) end

  -- How the server's handler saw the connection `name` end (waits for it).
  local function closed_as(name)
    return wait.until_true(function() return get_json("/ws/closes")[name] end, name .. " is closed")
  end

  -- A client that must still be served: an echo round trip.
  local function still_served(ws, text)
    assert(ws:send_text(text))
    assert.equal(text, (ws:receive(5)))
  end

  describe("the upgrade", function()
    it("echoes text as text and bytes as bytes", function()
      local ws, res = connect("/ws/echo")
      assert.equal("websocket", res.headers["upgrade"]:lower())
      ws:send_text("héllo")
      assert.same({ "héllo", "text" }, { ws:receive(5) })
      local bytes = "\0\1\2\255"
      ws:send_binary(bytes)
      assert.same({ bytes, "binary" }, { ws:receive(5) })
      ws:send_text("json")
      local msg, kind = ws:receive(5)
      assert.equal("text", kind)
      assert.same({ answer = 42 }, cjson.decode(msg))
      local big = string.rep("abcdefgh", 20000) -- 160 KB: a 64-bit length
      ws:send_binary(big)
      assert.equal(big, (ws:receive(5)))
      ws:close(1000)
      assert.equal(1000, (ws:expect_close(5)))
      assert.is_true(ws:closed(5))
    end)

    it("refuses text that is not UTF-8 on send: nil, msg, \"invalid\"", function()
      local ws = connect("/ws/echo")
      ws:send_text("bad-text")
      assert.equal("nil invalid true", (ws:receive(5)))
      ws:close(1000)
    end)

    it("routes path params, typed query and headers, inside the interceptors (kind websocket)", function()
      local ws = connect("/ws/rooms/lobby?n=42", { headers = { ["X-Who"] = "ana" } })
      local got = cjson.decode((ws:receive(5)))
      assert.same({ room = "lobby", n = 42, who = "ana", kind = "websocket", marker = "entered websocket",
        member = "room", request_id = true }, got)
      ws:close(1000)
    end)

    it("answers 422 for a query that does not validate, without upgrading", function()
      local ws, res = W.connect(srv.port, "/ws/rooms/lobby?n=abc")
      assert.is_nil(ws)
      assert.equal(422, res.status)
      assert.equal("query", cjson.decode(res.body).detail[1].loc[1])
    end)

    it("answers a GET without Upgrade with 426, a JSON body and Upgrade: websocket", function()
      local res = assert(client.request(srv.port, "GET", "/ws/echo"))
      assert.equal(426, res.status)
      assert.equal("websocket", res.headers["upgrade"])
      assert.matches("application/json", res.headers["content-type"])
      assert.matches("WebSocket", cjson.decode(res.body).detail)
    end)

    it("answers another Sec-WebSocket-Version with 426 naming 13, a bad key with 400", function()
      local _, res = W.connect(srv.port, "/ws/echo", { headers = { ["Sec-WebSocket-Version"] = "8" } })
      assert.equal(426, res.status)
      assert.equal("13", res.headers["sec-websocket-version"])
      _, res = W.connect(srv.port, "/ws/echo", { key = "c2hvcnQ=" })
      assert.equal(400, res.status)
      assert.matches("Sec%-WebSocket%-Key", cjson.decode(res.body).detail)
    end)

    it("answers 403 when the handler returns without accepting", function()
      local ws, res = W.connect(srv.port, "/ws/reject")
      assert.is_nil(ws)
      assert.equal(403, res.status)
      assert.matches("not accepted", cjson.decode(res.body).detail)
    end)

    it("answers an HTTPError raised before accept, and what the handler returns", function()
      local _, res = W.connect(srv.port, "/ws/deny")
      assert.equal(401, res.status)
      assert.same({ detail = "no token" }, cjson.decode(res.body))
      _, res = W.connect(srv.port, "/ws/answer")
      assert.equal(409, res.status)
      assert.same({ detail = "go away" }, cjson.decode(res.body))
    end)

    it("sends the subprotocol chosen among those offered; a choice not offered is a 500", function()
      local ws, res = connect("/ws/protocol", { protocols = { "chat.v1", "chat.v2" } })
      assert.equal("chat.v2", res.headers["sec-websocket-protocol"])
      ws:close(1000)
      local _, bad = W.connect(srv.port, "/ws/bad-protocol", { protocols = { "chat.v1" } })
      assert.equal(500, bad.status)
      assert.matches("did not offer it", srv:output())
    end)
  end)

  describe("the socket", function()
    it("closes with 1011 when the handler raises, logs the error, and the server keeps serving", function()
      local other = connect("/ws/echo")
      local ws = connect("/ws/echo")
      ws:send_text("boom")
      assert.equal(1011, (ws:expect_close(5)))
      assert.is_true(ws:closed(5))
      still_served(other, "still here")
      local log = srv:output()
      assert.matches("boom in the handler", log)
      assert.matches("stack traceback", log)
      other:close(1000)
    end)

    it("closes with 1000 when the handler returns", function()
      local ws = connect("/ws/echo?name=returns")
      ws:send_text("return")
      assert.equal(1000, (ws:expect_close(5)))
      assert.equal("returned", closed_as("returns").ended)
    end)

    it("receive(timeout) answers nil, msg, \"timeout\" and the socket still works", function()
      local ws = connect("/ws/timeout")
      local msg = ws:receive(5)
      assert.matches("^nil timeout no message within 0%.2 s$", msg)
      still_served(ws, "after the timeout")
      ws:close(1000)
    end)

    it("loses no message to a receive cancelled by j.timeout", function()
      local ws = connect("/ws/cancel")
      assert.equal("nil timeout true", (ws:receive(5)))
      ws:send_text("one")
      assert.equal("got one", (ws:receive(5)))
      ws:close(1000)
    end)

    it("ends the iteration on a client close, with the client's code and reason", function()
      local ws = connect("/ws/echo?name=client-closes")
      ws:close(4001, "bye now")
      assert.equal(4001, (ws:expect_close(5)))
      local seen = closed_as("client-closes")
      assert.same({ code = 4001, reason = "bye now", ended = "iterated" }, seen)
    end)

    it("answers nil, msg, \"closed\" once closed: receive, sends, close, add_websocket, join", function()
      local ws = connect("/ws/after-close?name=gone")
      ws:close(1000)
      assert.equal(1000, (ws:expect_close(5)))
      local seen = wait.until_true(function() return get_json("/ws/after-close-report").gone end, "the handler's report")
      for _, what in ipairs({ "receive", "receive_timeout", "send_text", "send_bytes", "send_json", "close",
        "add_websocket", "join" }) do
        local r = seen[what]
        assert.equal("nil", r.first, what)
        assert.is_string(r.msg, what)
        assert.equal("closed", r.code, what)
        assert.equal(3, r.n, what)
      end
    end)

    it("closes with the handler's code and reason", function()
      local ws = connect("/ws/echo?name=server-closes")
      ws:send_text("close-me")
      local code, reason = ws:expect_close(5)
      assert.equal(4000, code)
      assert.equal("asked", reason)
      assert.is_true(ws:closed(5))
      assert.same({ code = 4000, reason = "asked", ended = "iterated" }, closed_as("server-closes"))
    end)
  end)

  describe("protocol errors", function()
    -- Each one closes with its code; another client goes on being served.
    local function provoke(path, send, code)
      local other = connect("/ws/echo")
      local ws = connect(path)
      send(ws)
      assert.equal(code, (ws:expect_close(5)))
      assert.is_true(ws:closed(10))
      still_served(other, "served after " .. code)
      other:close(1000)
    end

    it("an unmasked client frame: 1002", function()
      provoke("/ws/echo", function(ws) ws:send_frame(W.TEXT, "hi", { mask = false }) end, 1002)
    end)

    it("a reserved opcode: 1002", function()
      provoke("/ws/echo", function(ws) ws:send_frame(3, "x") end, 1002)
    end)

    it("a fragmented control frame: 1002", function()
      provoke("/ws/echo", function(ws) ws:send_frame(W.PING, "p", { fin = false }) end, 1002)
    end)

    it("a reserved bit: 1002", function()
      provoke("/ws/echo", function(ws) ws:send_frame(W.TEXT, "x", { rsv = 4 }) end, 1002)
    end)

    it("invalid UTF-8 in a text message: 1007", function()
      provoke("/ws/echo", function(ws) ws:send_text("ok \192\175 no") end, 1007)
    end)

    it("invalid UTF-8 split over fragments: 1007", function()
      provoke("/ws/echo", function(ws)
        ws:send_frame(W.TEXT, "\226\130", { fin = false })
        ws:send_frame(W.CONT, "x")
      end, 1007)
    end)

    it("a message over max_message_size: 1009, also when fragmented", function()
      provoke("/ws/small?name=small", function(ws) ws:send_text(string.rep("x", 17)) end, 1009)
      assert.equal(1009, closed_as("small").code)
      provoke("/ws/small", function(ws)
        ws:send_frame(W.TEXT, string.rep("x", 10), { fin = false })
        ws:send_frame(W.CONT, string.rep("x", 10))
      end, 1009)
    end)

    it("an abrupt disconnect: the handler sees 1006", function()
      local other = connect("/ws/echo")
      local ws = connect("/ws/echo?name=abrupt")
      ws:shutdown()
      local seen = closed_as("abrupt")
      assert.equal(1006, seen.code)
      assert.equal("iterated", seen.ended)
      still_served(other, "served after a reset")
      other:close(1000)
    end)

    it("answers pings with pongs and keeps serving", function()
      local ws = connect("/ws/echo")
      ws:ping("are you there")
      local f = assert(ws:read_frame(5))
      assert.equal(W.PONG, f.opcode)
      assert.equal("are you there", f.payload)
      still_served(ws, "after the ping")
      ws:close(1000)
    end)
  end)

  describe("the room manager", function()
    local function member(query)
      local ws = connect("/ws/chat?" .. query)
      assert.equal("ready", (ws:receive(5)))
      return ws
    end

    -- Every client in `yes` gets msg next; the ones in `no` get nothing
    -- before a marker sent to everybody afterwards.
    local function expect(msg, yes, no, marker_sender)
      for _, ws in ipairs(yes) do assert.equal(msg, (ws:receive(5))) end
      marker_sender:send_text("bcast:marker")
      for _, ws in ipairs(yes) do assert.equal("marker", (ws:receive(5))) end
      for _, ws in ipairs(no) do assert.equal("marker", (ws:receive(5))) end
    end

    it("sends to the rooms' members only, each once, and broadcasts to every member", function()
      local a = member("rooms=red&name=a")
      local b = member("rooms=red,blue&name=b")
      local c = member("rooms=blue&name=c")
      local d = member("add=1&name=d") -- a member in no room
      a:send_text("send:red:to red")
      expect("to red", { a, b }, { c, d }, a)
      a:send_text("sendmany:red,blue:to both")
      expect("to both", { a, b, c }, { d }, a) -- b once
      d:send_text("bcast:to all")
      expect("to all", { a, b, c, d }, {}, a)
      b:send_text("leave:red")
      assert.equal("left red", (b:receive(5)))
      c:send_text("send:red:red again")
      expect("red again", { a }, { b, c, d }, c)
      b:send_text("remove")
      assert.equal("removed", (b:receive(5)))
      a:send_text("bcast:after remove")
      expect("after remove", { a, c, d }, {}, a)
      -- b gets nothing more: it is no member; the next thing it reads is its own echo-less close
      b:close(1000)
      assert.equal(1000, (b:expect_close(5)))
      for _, ws in ipairs({ a, c, d }) do ws:close(1000) end
    end)

    it("sends text as text, { binary = true } as binary, tables as JSON text", function()
      local a = member("rooms=kinds")
      a:send_text("bin:kinds:\1\2")
      assert.same({ "\1\2", "binary" }, { a:receive(5) })
      a:send_text("json:kinds:hi")
      local msg, kind = a:receive(5)
      assert.equal("text", kind)
      assert.same({ room = "kinds", text = "hi" }, cjson.decode(msg))
      a:send_text("invalid")
      assert.equal("nil invalid true", (a:receive(5)))
      a:close(1000)
    end)

    it("takes a closed socket out of every room", function()
      local a = member("rooms=gone,other&name=leaver")
      local b = member("rooms=gone")
      b:send_text("size:gone")
      assert.equal("2", (b:receive(5)))
      a:close(1000)
      assert.equal(1000, (a:expect_close(5)))
      closed_as("leaver")
      b:send_text("size:gone")
      assert.equal("1", (b:receive(5)))
      b:send_text("size:other")
      assert.equal("0", (b:receive(5)))
      b:close(1000)
    end)

    it("closes a client that stops reading (1008) while the others keep receiving", function()
      -- the worker's RSS: the slow client must not make it hold what it did not read
      local who = assert(W.connect(srv.port, "/ws/who"))
      local pid = assert((who:receive(5)):match("^pid (%d+)$"))
      who:close(1000)
      local function rss_kb()
        local f = assert(io.open("/proc/" .. pid .. "/status"))
        local text = f:read("*a")
        f:close()
        return tonumber(text:match("VmRSS:%s+(%d+)"))
      end
      local before = rss_kb()
      local slow = connect("/ws/slow?rooms=flood&name=slow") -- a 64 KiB send queue
      assert.equal("ready", (slow:receive(5)))
      local fast = member("rooms=flood")
      -- 16 MB to the room, paced; the slow client reads nothing more, the fast one all
      local n = 256
      local res = assert(client.request(srv.port, "GET", "/flood?room=flood&size=65536&n=" .. n))
      assert.equal(200, res.status)
      for i = 1, n do
        local msg, err = fast:receive(10)
        assert(msg, "message " .. i .. ": " .. tostring(err))
        assert.equal(65536, #msg)
      end
      assert.equal(1008, closed_as("slow").code)
      -- 16 MiB went to the room; unbounded, the slow client alone would pin it
      local grown = rss_kb() - before
      assert(grown < 8 * 1024, ("the server grew by %d KiB during the flood"):format(grown))
      local other = connect("/ws/echo")
      still_served(other, "served after the flood")
      other:close(1000)
      fast:close(1000)
      slow:shutdown()
    end)
  end)

  describe("staged sends", function()
    local function post_note(text, fail)
      return assert(client.request(srv.port, "POST", "/notes" .. (fail and "?fail=true" or ""),
        { headers = { ["Content-Type"] = "application/json" }, body = cjson.encode({ text = text }) }))
    end

    it("are delivered after the commit and dropped on rollback", function()
      local room = connect("/ws/chat?rooms=notes")
      assert.equal("ready", (room:receive(5)))
      local everyone = connect("/ws/chat?add=1")
      assert.equal("ready", (everyone:receive(5)))

      assert.equal(500, post_note("lost", true).status)
      assert.equal(200, post_note("kept").status)
      -- the first thing each receives is the committed note: the failed one was dropped
      assert.same({ note = "kept" }, cjson.decode((room:receive(5))))
      assert.equal("note kept", (everyone:receive(5)))
      assert.same({ notes = { "kept" } }, get_json("/notes"))

      -- a WebSocket connection is one transaction too: its session commits
      -- and its staged messages go out when the handler ends well
      local bad = connect("/ws/session")
      bad:send_text("rolled back")
      assert.equal("inserted", (bad:receive(5)))
      bad:send_text("fail")
      assert.equal(1011, (bad:expect_close(5)))
      local good = connect("/ws/session")
      good:send_text("committed")
      assert.equal("inserted", (good:receive(5)))
      good:close(1000)
      assert.equal(1000, (good:expect_close(5)))
      assert.equal("ws note committed", (everyone:receive(5)))
      assert.same({ notes = { "kept", "committed" } }, get_json("/notes"))
      room:close(1000)
      everyone:close(1000)
    end)
  end)

  it("uses the in-machine backplane by default", function()
    assert.equal("local", get_json("/ws/backplane").kind)
  end)

  it("closes every connection with 1001 when the server stops, and the handlers see it", function()
    local ws = connect("/ws/echo")
    local status = srv:stop()
    srv = nil
    assert.equal(1001, (ws:expect_close(5)))
    assert.equal(0, status)
  end)
end)

-- A broadcast made on one process reaches the clients of the others:
-- through Redis between instances, through the mesh between workers.
describe("WebSocket backplanes", function()
  local redis = require "spec.support.redis"

  local function tmpdb()
    local p = os.tmpname()
    os.remove(p)
    return p
  end

  local get_json = client.get_json

  -- A /ws/who client: the socket and the pid of the process serving it.
  local function who(port)
    local ws = assert(W.connect(port, "/ws/who"))
    local pid = assert((ws:receive(5))):match("^pid (%d+)$")
    return ws, pid
  end

  it("Redis: a client on B receives the broadcast made by an HTTP call on A", function()
    local env = { JARARACA_WS_BACKPLANE = redis.url(), WS_DB = tmpdb() }
    local a = server.start("spec/integration/apps/websocket.lua", {}, env)
    local env_b = { JARARACA_WS_BACKPLANE = env.JARARACA_WS_BACKPLANE, WS_DB = tmpdb() }
    local b = server.start("spec/integration/apps/websocket.lua", {}, env_b)
    for _, srv in ipairs({ a, b }) do
      wait.until_true(function() return get_json(srv.port, "/ws/backplane").up end, "the backplane is up", 10)
      assert.equal("redis", get_json(srv.port, "/ws/backplane").kind)
    end
    local on_a = who(a.port)
    local on_b = who(b.port)
    assert.equal(1, get_json(a.port, "/broadcast?msg=from%20A").reached) -- A's own client
    assert.equal("from A", (on_b:receive(5)))
    assert.equal("from A", (on_a:receive(5)))
    get_json(b.port, "/broadcast?msg=from%20B")
    assert.equal("from B", (on_a:receive(5)))
    assert.equal("from B", (on_b:receive(5)))
    on_a:close(1000)
    on_b:close(1000)
    assert.equal(0, a:stop())
    assert.equal(0, b:stop())
    os.remove(env.WS_DB)
    os.remove(env_b.WS_DB)
  end)

  it("--workers 2 without Redis: a broadcast on one worker reaches the clients of both", function()
    local env = { WS_DB = tmpdb() }
    local srv = server.start("spec/integration/apps/websocket.lua", { "--workers", "2" }, env)
    -- the kernel spreads connections over the workers that listen (the
    -- second may still be starting): connect until each serves two clients
    local clients, per_pid = {}, {}
    wait.until_true(function()
      local ws, pid = who(srv.port)
      per_pid[pid] = (per_pid[pid] or 0) + 1
      if per_pid[pid] > 2 then ws:shutdown() else clients[#clients + 1] = ws end
      return #clients == 4
    end, "both workers serve two clients", 15, 0)
    assert.equal("local", get_json(srv.port, "/ws/backplane").kind)
    for round = 1, 3 do -- each HTTP call lands on either worker
      get_json(srv.port, "/broadcast?msg=round%20" .. round)
      for _, ws in ipairs(clients) do assert.equal("round " .. round, (ws:receive(5))) end
    end
    for _, ws in ipairs(clients) do ws:close(1000) end
    assert.equal(0, srv:stop())
    os.remove(env.WS_DB)
  end)
end)
