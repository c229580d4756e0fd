-- jararaca.core.redis (bindings/l_redis.c) against the run's real Redis:
-- replies as Lua values, failures as nil, msg, code (never a hang, never
-- the password), cancellable waits. Outages use a private server of the
-- spec's own (spec/support/redis.lua), stopped with SIGSTOP or SIGTERM.
local redis = require "jararaca.core.redis"
local json = require "jararaca.json"
local sched = require "jararaca.sched"
local csched = require "jararaca.core.sched"
local support = require "spec.support.redis"
local client = require "spec.support.client"
local wait = require "spec.support.wait"

local function key(name) return "jr:spec:redis_client:" .. name end

describe("jararaca.core.redis", function()
  local c

  setup(function()
    c = assert(redis.connect(support.url()))
    assert(c:command("DEL", key("s"), key("n"), key("l"), key("big"), key("f"), key("h")))
  end)

  teardown(function()
    if c then c:close() end
  end)

  it("answers status, string, integer and nil replies as Lua values", function()
    assert.equal("PONG", c:command("PING"))
    assert.equal("OK", c:command("SET", key("s"), "a\0b"))
    assert.equal("a\0b", c:command("GET", key("s")))
    assert.equal(3, c:command("STRLEN", key("s")))
    assert.equal(1, c:command("INCR", key("n")))
    assert.equal(42, c:command("INCRBY", key("n"), 41))
    -- a missing key: one nil and nothing after it (a failure has a message)
    local v, msg, code = c:command("GET", key("missing"))
    assert.is_nil(v)
    assert.is_nil(msg)
    assert.is_nil(code)
    assert.equal(1, select("#", c:command("GET", key("missing"))))
  end)

  it("sends whole numbers as integers and others exactly", function()
    assert.equal("OK", c:command("SET", key("big"), 1e15))
    assert.equal("1000000000000000", c:command("GET", key("big")))
    assert.equal(1e15 + 1, c:command("INCR", key("big")))
    assert.equal("OK", c:command("SET", key("f"), 1.5))
    assert.equal("1.5", c:command("GET", key("f")))
    assert.equal("OK", c:command("SET", key("f"), -7))
    assert.equal("-7", c:command("GET", key("f")))
  end)

  it("answers arrays as tables, nil elements as redis.null (== json.null)", function()
    assert.equal(3, c:command("RPUSH", key("l"), "x", "y", "z"))
    assert.same({ "x", "y", "z" }, c:command("LRANGE", key("l"), 0, -1))
    assert.same({}, c:command("LRANGE", key("missing"), 0, -1))
    local got = c:command("MGET", key("s"), key("missing"), key("n"))
    assert.equal(3, #got)
    assert.equal("a\0b", got[1])
    assert.equal(redis.null, got[2])
    assert.equal(json.null, got[2])
    assert.equal("42", got[3])
  end)

  it("answers nested arrays, with error elements as { error = text }", function()
    local got = c:command("EVAL", [[
      return { 1, { "two", { 3 } }, redis.error_reply("ERR inner"), false, "five" }
    ]], 0)
    assert.same({ 1, { "two", { 3 } }, { error = "ERR inner" }, redis.null, "five" }, got)
  end)

  it("answers an error reply as nil, its text, \"redis\"", function()
    local v, msg, code = c:command("LPUSH", key("s"), "x") -- s holds a string
    assert.is_nil(v)
    assert.matches("^WRONGTYPE", msg)
    assert.equal("redis", code)
    v, msg, code = c:command("NOSUCHCOMMAND", "x")
    assert.is_nil(v)
    assert.matches("unknown command", msg)
    assert.equal("redis", code)
    -- the connection carries on
    assert.equal("PONG", c:command("PING"))
  end)

  it("runs concurrent commands of many tasks on one client, each getting its own reply", function()
    local fns = {}
    for i = 1, 50 do
      fns[i] = function() return c:command("ECHO", "v" .. i) end
    end
    local got = { sched.gather(unpack(fns)) }
    for i = 1, 50 do assert.equal("v" .. i, got[i]) end
  end)

  it("raises on misuse: no command, a bad argument, pub/sub, an unknown option", function()
    assert.has_error(function() c:command() end, "client:command(name, ...): the command name is missing")
    assert.has_error(function() c:command("SET", "k", {}) end,
      "client:command(): argument #3 must be a string or a number, got table")
    assert.has_error(function() c:command("GET", nil) end,
      "client:command(): argument #2 must be a string or a number, got nil")
    assert.has_error(function() c:command("SUBSCRIBE", "chan") end)
    assert.has_error(function() c:command("monitor") end)
    assert.has_error(function() redis.connect(support.url(), { nope = 1 }) end, "redis.connect: unknown option nope")
    assert.has_error(function() redis.connect(support.url(), { timeout_ms = -1 }) end)
    assert.has_error(function() redis.connect(42) end)
  end)
end)

describe("jararaca.core.redis: connecting", function()
  it("refuses bad URLs with \"invalid\" and a message naming what is wrong", function()
    for _, url in ipairs { "http://127.0.0.1", "redis://", "redis://127.0.0.1:99999", "rediss://127.0.0.1",
      "redis://127.0.0.1/x", "redis://127.0.0.1?db=1", "" } do
      local c, msg, code = redis.connect(url)
      assert.is_nil(c, url)
      assert.equal("invalid", code, url)
      assert.matches("^invalid Redis URL: ", msg, 1, false)
    end
  end)

  it("answers an unreachable server with \"unreachable\" at once, not a hang", function()
    local port = client.free_port()
    local t0 = sched.clock()
    local c, msg, code = redis.connect("redis://:hunter2@127.0.0.1:" .. port)
    assert.is_nil(c)
    assert.equal("unreachable", code)
    assert.matches("cannot connect to Redis at redis://127.0.0.1:" .. port .. "/0", msg, 1, true)
    assert.is_nil(msg:find("hunter2", 1, true))
    assert.truthy(sched.clock() - t0 < 2)
  end)

  it("answers a wrong password with \"refused\", never showing it, and connects with the right one", function()
    local own = support.private { "--requirepass", "s3cret" }
    local c, msg, code = redis.connect(("redis://:wr0ng@127.0.0.1:%d/2"):format(own.port))
    assert.is_nil(c)
    assert.equal("refused", code)
    assert.matches("AUTH failed", msg)
    assert.matches(("redis://127.0.0.1:%d/2"):format(own.port), msg, 1, true)
    assert.is_nil(msg:find("wr0ng", 1, true))
    c = assert(redis.connect(("redis://:s3cret@127.0.0.1:%d/2"):format(own.port)))
    assert.equal("OK", c:command("SET", "k", "in db 2"))
    assert.equal("in db 2", support.cli_at(("redis://:s3cret@127.0.0.1:%d/2"):format(own.port), "GET", "k"))
    assert.is_nil(tostring(c):find("s3cret", 1, true))
    c:close()
    own:close()
  end)

  it("answers a server that accepts but never answers with \"timeout\" within connect_timeout_ms", function()
    local own = support.private()
    assert(own.proc:kill("SIGSTOP"))
    local t0 = sched.clock()
    local c, msg, code = redis.connect(own.url, { connect_timeout_ms = 300 })
    assert.is_nil(c)
    assert.equal("timeout", code)
    assert.matches("took longer than 300 ms", msg)
    assert.truthy(sched.clock() - t0 < 2)
    assert(own.proc:kill("SIGCONT"))
    own:close()
  end)

  it("lets a cancel end a connect at once", function()
    local own = support.private()
    assert(own.proc:kill("SIGSTOP"))
    local t = sched.spawn(function() return redis.connect(own.url, { connect_timeout_ms = 1000 }) end)
    sched.sleep(0) -- one turn: the task runs to its park in connect
    t:cancel()
    assert.same({ true, nil, "the task was cancelled", "cancelled" }, { t:wait(1) })
    assert(own.proc:kill("SIGCONT"))
    own:close()
  end)
end)

describe("jararaca.core.redis: outages", function()
  local own, c

  before_each(function()
    own = support.private()
    c = assert(redis.connect(own.url, { timeout_ms = 300, reconnect_initial_ms = 20, reconnect_max_ms = 100 }))
  end)

  after_each(function()
    if c then c:close() end
    if own.proc then own.proc:kill("SIGCONT") end
    own:close()
  end)

  it("answers a stuck server with \"timeout\" after timeout_ms; the late reply is dropped", function()
    assert(own.proc:kill("SIGSTOP"))
    local t0 = sched.clock()
    local v, msg, code = c:command("SET", "k", "late")
    assert.is_nil(v)
    assert.equal("timeout", code)
    assert.matches("no reply within 300 ms %(the command may have run%)", msg)
    local took = sched.clock() - t0
    assert.truthy(took >= 0.25 and took < 2, took)
    assert(own.proc:kill("SIGCONT"))
    -- the SET did run: it was sent, the reply came late
    assert.equal("late", wait.until_true(function() return (c:command("GET", "k")) end, "the GET answers", 5, 0.02))
  end)

  it("answers \"disconnected\" while the server is down, and works again when it is back", function()
    own:stop()
    local r = wait.until_true(function()
      local r = { c:command("PING") }
      if r[3] == "disconnected" then return r end
    end, "the client notices the outage", 5, 0.02)
    local v, msg, code = r[1], r[2], r[3]
    assert.is_nil(v)
    assert.equal("disconnected", code)
    assert.truthy(#msg > 0)
    assert.is_false(c:is_up())
    own:start()
    wait.until_true(function() return c:is_up() end, "the client is up again", 10, 0.02)
    assert.equal("PONG", c:command("PING"))
  end)

  it("lets j.timeout cancel a parked command; the late reply wakes nobody", function()
    assert(own.proc:kill("SIGSTOP"))
    local seen = {}
    local ok, msg, code = sched.timeout(0.1, function()
      seen.command = { c:command("SET", "k", "v") }
      seen.wait = { csched.wait(1) } -- parked again elsewhere: the late reply must not resume this
    end)
    assert.same({ nil, "timed out after 0.1 s", "timeout" }, { ok, msg, code })
    wait.until_true(function() return seen.command end, "the cancelled command returned")
    assert.same({ nil, "the task was cancelled", "cancelled" }, seen.command)
    assert(own.proc:kill("SIGCONT"))
    wait.until_true(function() return seen.wait end, "the cancelled task's wait ended", 5)
    assert.same({ nil, "the wait timed out", "timeout" }, seen.wait)
    assert.equal("v", c:command("GET", "k"))
  end)

  it("closes: a parked command answers \"closed\", later ones too", function()
    assert(own.proc:kill("SIGSTOP"))
    local t = sched.spawn(function() return c:command("PING") end)
    sched.sleep(0) -- one turn: the task sends PING and parks
    assert.is_true(c:close())
    local ok, v, msg, code = t:wait(5)
    assert.is_true(ok)
    assert.is_nil(v)
    assert.matches("closed", msg)
    assert.equal("closed", code)
    v, msg, code = c:command("PING")
    assert.same({ nil, "the Redis client is closed", "closed" }, { v, msg, code })
    assert.is_false(c:is_up())
    assert.is_true(c:close()) -- twice is fine
    assert.matches("closed", tostring(c))
  end)
end)
