-- Specs for the room manager's and WebSocketMessage's argument handling
-- (the fan-out itself runs against real connections in
-- spec/integration/websocket_spec.lua).
local j = require "jararaca"
local socket = require "jararaca.ws.socket"
local staged = require "jararaca.staged"
local context = require "jararaca.context"

local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.matches(pattern, tostring(err))
end

describe("the WebSocket manager", function()
  local mgr = j.use_ws_manager()

  it("is one per process", function()
    assert.equal(mgr, j.use_ws_manager())
  end)

  it("refuses what is not a socket, and sockets not accepted yet", function()
    raises("expected the socket a WebSocket handler got, got table", mgr.add_websocket, mgr, {})
    local ws = socket.new({}, {})
    raises("not accepted yet", mgr.add_websocket, mgr, ws)
    raises("not accepted yet", mgr.join, mgr, "r", ws)
    raises("rooms must be a string or a list of strings, got number", mgr.join, mgr, 42, ws)
    raises("rooms%[2%] must be a string, got boolean", mgr.leave, mgr, { "a", true }, ws)
    assert.is_true(mgr:remove_websocket(ws)) -- safe for any socket
  end)

  it("refuses messages that are neither strings nor tables, and bad options", function()
    raises("the message must be a string or a table", mgr.broadcast, mgr, 42)
    raises("opts must be a table", mgr.send, mgr, "r", "x", true)
  end)

  it("answers nil, msg, \"invalid\" for text that is not UTF-8 or a table JSON cannot hold", function()
    local n, msg, code = mgr:broadcast("\255")
    assert.is_nil(n)
    assert.equal("invalid", code)
    assert.matches("UTF%-8", msg)
    n, msg, code = mgr:send("r", { bad = 0 / 0 })
    assert.is_nil(n)
    assert.truthy(msg)
    assert.equal("invalid", code)
    assert.equal(0, mgr:send("r", "\255", { binary = true })) -- bytes: fine, nobody there
  end)

  it("reaches nobody without members", function()
    assert.equal(0, mgr:broadcast("hello"))
    assert.equal(0, mgr:send({ "a", "b" }, { x = 1 }))
    assert.equal(0, mgr:room_size("a"))
  end)
end)

describe("j.WebSocketMessage", function()
  it("checks its payload when made", function()
    local m, msg, code = j.WebSocketMessage("\255")
    assert.is_nil(m)
    assert.matches("UTF%-8", msg)
    assert.equal("invalid", code)
    raises("the message must be a string or a table", j.WebSocketMessage, function() end)
    assert.truthy(j.WebSocketMessage("\255", { binary = true }))
  end)

  it("stages the rooms as they are when :send is called (a list changed later does not change them)", function()
    local ctx = context.new("http", {})
    local prev = context.current()
    context.bind(ctx)
    local rooms = { "a", "b" }
    assert.is_true(j.WebSocketMessage("x"):send(rooms))
    rooms[1], rooms[3] = "changed", "added"
    local action = rawget(ctx, "_staged")[1] -- { fn = deliver, send_rooms, rooms, data, is_text }
    context.bind(prev)
    staged.settle(ctx, false)
    assert.same({ "a", "b" }, action[2])
  end)

  it("is staged in a transaction and sent at once outside one", function()
    local ctx = context.new("http", {})
    local prev = context.current()
    context.bind(ctx)
    assert.is_true(j.WebSocketMessage({ a = 1 }):send({ "tasks", "other" }))
    assert.is_true(j.WebSocketMessage("x"):broadcast())
    assert.equal(2, staged.pending(ctx))
    staged.settle(ctx, false)
    context.bind(nil)
    assert.is_true(j.WebSocketMessage("now"):broadcast()) -- no transaction: sent (to nobody)
    context.bind(prev)
    raises("rooms must be a string or a list of strings", j.WebSocketMessage("x").send, j.WebSocketMessage("x"), 1)
  end)
end)
