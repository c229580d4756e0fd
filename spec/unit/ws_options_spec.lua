-- Specs for WebSocket endpoints as routes: j.WebSocketEndpoint's forms, the
-- options route_spec checks at startup (with the route's usual message), and
-- that OpenAPI and gen-tsi leave them out.
local route_spec = require "jararaca.http.route_spec"
local controller = require "jararaca.http.controller"
local openapi = require "jararaca.openapi"
local tsgen = require "jararaca.tsgen"
local j = require "jararaca"
local s = require "jararaca.schema"

local function handler() end

local function collect_one(opts, path)
  local C = j.RestController("/t", { name = "TController" })
  C.live = j.WebSocketEndpoint(path or "/ws", opts, handler)
  return controller.collect(C)[1]
end

local function spec(opts, path)
  local sp, err = route_spec.normalize(collect_one(opts, path))
  assert(sp, err)
  return sp
end

-- The message without its head, which must name this file, a line and the route.
local function problem(opts)
  local sp, err, code = route_spec.normalize(collect_one(opts))
  assert.is_nil(sp)
  assert.equal("invalid", code)
  local head = "route TController.live (GET /t/ws): "
  local at = err:find(head, 1, true)
  assert(at, err)
  assert(err:sub(1, at - 1):find("ws_options_spec%.lua:%d+: $"), "the message names this file and a line: " .. err)
  return err:sub(at + #head)
end

describe("j.WebSocketEndpoint", function()
  it("is a GET route marked websocket, in every form of the verbs", function()
    local C = j.RestController("/chat", { name = "ChatController" })
    C.a = j.WebSocketEndpoint(handler)
    C.b = j.WebSocketEndpoint("/{room}", handler)
    C.c = j.WebSocketEndpoint({ max_message_size = 10 }, handler)
    C.d = j.WebSocketEndpoint("/x", { idle_timeout = 5 }, handler)
    local routes = controller.collect(C)
    assert.equal(4, #routes)
    for _, r in ipairs(routes) do
      assert.equal("GET", r.method)
      assert.is_true(r.websocket)
    end
    assert.equal("/chat/{room}", routes[2].path)
    assert.equal(10, routes[3].opts.max_message_size)
  end)

  it("raises at the declaration without a handler", function()
    local ok, err = pcall(j.WebSocketEndpoint, "/x", {})
    assert.is_false(ok)
    assert.matches("WebSocketEndpoint: expected a handler function", err)
  end)

  it("keeps websocket for a subclass that overrides the body", function()
    local Base = j.RestController("/b", { name = "BaseController" })
    Base.live = j.WebSocketEndpoint("/ws", handler)
    local Sub = j.RestController("/b", { name = "SubController", extends = Base })
    local body = function() end
    Sub.live = body
    local r = controller.collect(Sub)[1]
    assert.is_true(r.websocket)
    assert.equal(body, r.fn)
  end)
end)

describe("WebSocket endpoint options", function()
  it("turn into the connection limits, seconds into milliseconds", function()
    local sp = spec { max_message_size = 65536, max_send_queue = 1048576, idle_timeout = 60, ping_interval = 20 }
    assert.same({ max_message_size = 65536, max_send_queue = 1048576, idle_timeout_ms = 60000,
      ping_interval_ms = 20000 }, sp.websocket)
    assert.is_false(sp.include_in_schema)
  end)

  it("leave core's defaults when absent", function()
    assert.same({}, spec({}).websocket)
  end)

  it("ping at half a short idle_timeout given alone", function()
    assert.same({ idle_timeout_ms = 10000, ping_interval_ms = 5000 }, spec({ idle_timeout = 10 }).websocket)
    assert.same({ idle_timeout_ms = 0 }, spec({ idle_timeout = 0 }).websocket) -- never idle: pings as usual
  end)

  it("type params, query and headers as for a GET", function()
    local sp = spec({ params = { room = s.string() }, query = { n = s.integer():optional() },
      headers = { ["X-Token"] = s.string() } }, "/{room}")
    assert.same({ "room" }, { sp.params.names[1] })
    assert.equal("n", sp.query.names[1])
    assert.equal("x-token", sp.headers.names[1])
    assert.is_true(sp.validated)
  end)

  it("refuse bad values with the route's message", function()
    assert.equal("max_message_size: expected a whole number of bytes in 1..2147483647, got 0",
      problem { max_message_size = 0 })
    assert.equal("max_send_queue: expected a whole number of bytes in 1..2147483647, got 1.5",
      problem { max_send_queue = 1.5 })
    assert.equal("max_message_size: expected a whole number of bytes in 1..2147483647, got \"1k\"",
      problem { max_message_size = "1k" })
    assert.equal("idle_timeout: expected a number of seconds in 0..604800 (0: never), got -1",
      problem { idle_timeout = -1 })
    assert.equal("ping_interval: expected a number of seconds in 0..604800 (0: never), got nan",
      problem { ping_interval = 0 / 0 })
    assert.equal("ping_interval: 30 s is not shorter than idle_timeout (30 s): a client that only answers"
      .. " pings would be closed as idle", problem { ping_interval = 30, idle_timeout = 30 })
  end)

  it("refuse the options of an HTTP answer", function()
    assert.equal("body: a WebSocket endpoint has no request body (its answer is the connection)",
      problem { body = s.object { { "a", s.string() } } })
    assert.equal("response: a WebSocket endpoint has no HTTP response to describe (its answer is the connection)",
      problem { response = s.string() })
    assert.equal("status: a WebSocket endpoint has no HTTP response to describe (its answer is the connection)",
      problem { status = 201 })
  end)

  it("refuse a bad query schema as a GET does", function()
    assert.matches("^query%.q: a query parameter is text", problem { query = { q = s.object { { "a", s.string() } } } })
  end)
end)

describe("OpenAPI and gen-tsi", function()
  local Chat = j.RestController("/chat", { name = "ChatController" })
  Chat.list = j.Get("/rooms", { response = s.array(s.string()) }, function() return {} end)
  Chat.live = j.WebSocketEndpoint("/{room}", { params = { room = s.string() } }, handler)
  local app = j.Microservice { name = "chat", controllers = { Chat } }

  it("leave WebSocket endpoints out of the OpenAPI document", function()
    local doc = openapi.document(app)
    assert.is_not_nil(doc.paths["/chat/rooms"])
    assert.is_nil(doc.paths["/chat/{room}"])
  end)

  it("leave them out of the TypeScript client", function()
    local ts = assert(tsgen.generate(app))
    assert.truthy(ts:find('path: "/chat/rooms"', 1, true))
    assert.is_nil(ts:find("{room}", 1, true))
    assert.is_nil(ts:find("/chat/${", 1, true))
    assert.is_nil(ts:find("live", 1, true))
  end)
end)

describe("Microservice.websocket", function()
  local backplane = require "jararaca.ws.backplane"

  it("takes backplane and channel", function()
    local app = j.Microservice { name = "chat", websocket = { backplane = "none", channel = "c" } }
    local bp_spec, channel = backplane.setting(app)
    assert.equal("c", channel)
    assert.equal(os.getenv("JARARACA_WS_BACKPLANE") or "none", bp_spec)
  end)

  it("defaults to the in-machine backplane and a channel named after the app", function()
    local bp_spec, channel = backplane.setting(j.Microservice { name = "tasks" })
    assert.equal(os.getenv("JARARACA_WS_BACKPLANE") or "local", bp_spec)
    assert.equal("jararaca:ws:tasks", channel)
  end)

  it("takes JARARACA_WS_BACKPLANE and JARARACA_WS_CHANNEL over the app's values", function()
    local testing = require "jararaca.testing"
    local app = j.Microservice { name = "chat", websocket = { backplane = "none", channel = "c" } }
    testing.with_env({ JARARACA_WS_BACKPLANE = "redis://127.0.0.1:1/0", JARARACA_WS_CHANNEL = "env-ch" }, function()
      local bp_spec, channel = backplane.setting(app)
      assert.equal("redis://127.0.0.1:1/0", bp_spec)
      assert.equal("env-ch", channel)
    end)
  end)

  it("never prints a backplane URL's password", function()
    local testing = require "jararaca.testing"
    local app = j.Microservice { name = "chat" }
    testing.with_env({ JARARACA_WS_BACKPLANE = "redis://:s3cret@127.0.0.1:notaport/0" }, function()
      local kind, err, code = backplane.start(app)
      assert.is_nil(kind)
      assert.equal("invalid", code)
      assert.is_nil(err:find("s3cret", 1, true), err)
      assert.truthy(err:find("redis://***@127.0.0.1:notaport/0", 1, true), err)
    end)
  end)

  it("refuses other shapes, naming the field", function()
    local function bad(v, pattern)
      local ok, err = pcall(function()
        local app = j.Microservice { websocket = v } -- (not a tail call: this line is named)
        return app
      end)
      assert.is_false(ok)
      assert.matches(pattern, err)
      assert.matches("ws_options_spec%.lua:%d+:", err)
    end
    bad("redis://x", "Microservice.websocket must be a table")
    bad({ backplan = "none" }, "Microservice.websocket: unknown field \"backplan\"")
    bad({ backplane = 6379 }, "Microservice.websocket.backplane must be a non%-empty string, got number")
    bad({ channel = "" }, "Microservice.websocket.channel must be a non%-empty string")
  end)
end)

describe("an accept the runtime refused", function()
  local endpoint = require "jararaca.ws.endpoint"
  -- The handler saw ws:accept() fail with code; the upgrade is answered.
  local function answer_for(code)
    local route = { instance = {}, spec = {}, fn = function(_, ws)
      rawset(ws, "_refused", code) -- what socket.lua's accept records on failure
    end }
    local ok, err = pcall(endpoint.core(route, nil), {})
    assert.is_false(ok)
    return err.status
  end

  it("answers 503 for closed (the server is stopping), 400 for invalid, 503 otherwise", function()
    assert.equal(503, answer_for("closed"))
    assert.equal(400, answer_for("invalid"))
    assert.equal(503, answer_for("nomem"))
    assert.equal(503, answer_for("error"))
  end)
end)
