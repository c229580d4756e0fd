-- WebSocket rooms across instances through a real Redis: room sends with
-- any room name and payload bytes, only to the right rooms, and an outage.
-- (The plain broadcast between two servers and the --workers 2 mesh are in
-- websocket_spec.lua.) Clients are real (spec/support/wsclient.lua).
local client = require "spec.support.client"
local server = require "spec.support.server"
local redis = require "spec.support.redis"
local wait = require "spec.support.wait"
local wsclient = require "spec.support.wsclient"
local cjson = require "cjson"
local sys = require "jararaca.core.sys"

local APP = "spec/integration/apps/ws_backplane.lua"

local function get(port, path)
  local res = assert(client.request(port, "GET", path))
  assert.equal(200, res.status, res.body)
  return cjson.decode(res.body)
end

local function urlencode(s)
  return (s:gsub("[^%w%-_.~]", function(ch) return ("%%%02X"):format(ch:byte()) end))
end

-- A client in room; returns it and the pid of the worker that serves it.
local function join(port, room)
  local ws = assert(wsclient.connect(port, "/ws?room=" .. urlencode(room)))
  local hello = assert(ws:receive(5))
  return ws, tonumber(hello:match("^pid (%d+)$"))
end

-- The next text message, skipping nothing: a message that should not have
-- arrived shows up here instead of the expected one.
local function next_text(ws)
  local msg, kind = ws:receive(5)
  assert.equal("text", kind, tostring(msg))
  return msg
end

local channel_seq = 0
local function redis_env()
  channel_seq = channel_seq + 1
  return {
    JARARACA_WS_BACKPLANE = redis.url(),
    JARARACA_WS_CHANNEL = ("jr-spec-ws-%d-%d"):format(sys.pid(), channel_seq),
  }
end

describe("websocket backplane: two servers sharing Redis", function()
  local a, b
  before_each(function()
    local env = redis_env()
    a = server.start(APP, { "--worker-timeout", "0" }, env)
    b = server.start(APP, { "--worker-timeout", "0" }, env)
  end)
  after_each(function()
    if a then a:stop() end
    if b then b:stop() end
  end)

  it("a broadcast and a room send made on A reach the clients of B, and only the right rooms", function()
    local in_r = join(b.port, "r")
    local in_odd = join(b.port, "a,b\0c")      -- the original's framing could not carry this name
    local in_other = join(b.port, "other")
    local on_a = join(a.port, "r")
    -- B's subscription may still be in flight when it accepted the clients:
    -- send markers from A until B's client hears one (an event, not a sleep)
    wait.until_true(function()
      get(a.port, "/send?room=r&msg=marker")
      local msg = in_r:receive(0.2)
      return msg == "marker"
    end, "B subscribed to the backplane", 10, 0)
    while in_r:receive(0.2) == "marker" do end
    while on_a:receive(0.05) == "marker" do end

    assert.are_not.equal(b.pid, get(a.port, "/broadcast?msg=" .. urlencode("to all")).pid)
    for _, ws in ipairs { in_r, in_odd, in_other, on_a } do assert.equal("to all", next_text(ws)) end

    get(a.port, "/send?room=" .. urlencode("a,b\0c") .. "&msg=" .. urlencode("odd\0bytes"))
    get(a.port, "/send?room=r&msg=second")
    assert.equal("odd\0bytes", next_text(in_odd))
    assert.equal("second", next_text(in_r))
    assert.equal("second", next_text(on_a))
    -- "other" got neither: the next thing it gets is the final broadcast
    get(a.port, "/broadcast?msg=last")
    assert.equal("last", next_text(in_other))
    assert.equal("last", next_text(in_odd))
    for _, ws in ipairs { in_r, in_odd, in_other, on_a } do ws:close(1000) end
  end)
end)

describe("websocket backplane: a Redis outage", function()
  it("keeps local delivery, and delivers across instances again once Redis is back", function()
    local own = redis.private {}
    local env = { JARARACA_WS_BACKPLANE = own.url, JARARACA_WS_CHANNEL = "jr-spec-outage" }
    local a = server.start(APP, { "--worker-timeout", "0" }, env)
    local b = server.start(APP, { "--worker-timeout", "0" }, env)
    local on_a, on_b = join(a.port, "r"), join(b.port, "r")
    local n = 0
    local function reaches_b()
      n = n + 1
      get(a.port, "/send?room=r&msg=m" .. n)
      -- skip older markers, and "while down" if A's queue got it to B
      local msg
      repeat msg = on_b:receive(0.2) until msg == nil or msg == "m" .. n
      return msg ~= nil
    end
    wait.until_true(reaches_b, "B hears A", 10, 0)

    own:stop()
    get(a.port, "/broadcast?msg=" .. urlencode("while down"))
    -- A's own client gets it at once, whatever Redis does
    local msg
    repeat msg = next_text(on_a) until msg == "while down"
    assert.truthy(a:output():find("redis is unreachable", 1, true), a:output())

    own:start()
    wait.until_true(reaches_b, "B hears A again after the restart", 15, 0)
    assert.truthy(b:output():find("connected to redis", 1, true), b:output())
    on_a:close(1000); on_b:close(1000)
    a:stop(); b:stop(); own:close()
  end)
end)
