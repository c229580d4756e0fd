-- Message types (j.Message, MessageHandler, publishing a typed message),
-- publisher:schedule, header propagation from a consumed message to what
-- its handler publishes, and the embedded broker's purge by ids; in one
-- process on a real embedded broker in a temporary file. End to end with
-- worker processes: spec/integration/bus_spec.lua.
local j = require "jararaca"
local bc = require "jararaca.bus.controller"
local message_type = require "jararaca.bus.message_type"
local propagation = require "jararaca.bus.propagation"
local embedded = require "jararaca.bus.embedded"
local interceptors = require "jararaca.interceptors"
local context = require "jararaca.context"
local files = require "spec.support.files"
local bus = require "spec.support.bus"
local s = j.schema

local THIS = debug.getinfo(1, "S").short_src

describe("j.Message: a named schema carrying its topic", function()
  it("is the named object schema, with its topic; calling it makes a typed message", function()
    local T = j.Message("MsgSpecCreated", { topic = "spec.created", fields = { id = s.integer() },
      description = "made by a spec" })
    assert.is_true(s.is_schema(T))
    assert.equal("object", T.kind)
    assert.equal("MsgSpecCreated", T.name)
    assert.equal("made by a spec", T.description)
    assert.equal(T, s.lookup("MsgSpecCreated"))
    assert.equal("spec.created", message_type.topic(T))
    assert.same({ id = 3 }, assert(T:validate { id = 3 }))
    local m = T { id = 3 }
    assert.is_true(message_type.is_typed(m))
    assert.equal(T, m.type)
    assert.same({ id = 3 }, m.value)
    assert.is_nil(message_type.topic(s.object { id = s.integer() }))
  end)

  it("misuse raises at the caller's line", function()
    local function err_of(fn)
      local ok, e = pcall(fn)
      assert.is_false(ok)
      return e
    end
    local line = debug.getinfo(1, "l").currentline
    local e = err_of(function() j.Message("MsgSpecBad", { topic = "a.*", fields = {} }) end)
    assert.equal(THIS .. ":" .. (line + 1) .. ": j.Message('MsgSpecBad'): topic: the topic \"a.*\" has a wildcard "
      .. "word (*): wildcards belong in binding patterns", e)
    assert.truthy(err_of(function() j.Message("MsgSpecBad", { fields = {} }) end)
      :find("j.Message('MsgSpecBad'): topic: expected a string, got nil", 1, true))
    assert.truthy(err_of(function() j.Message("MsgSpecBad", { topic = "a", fields = {}, queue = "q" }) end)
      :find('unknown field "queue"', 1, true))
    assert.truthy(err_of(function() j.Message("MsgSpecBad", { topic = "a" }) end)
      :find("j.Message('MsgSpecBad'): fields is missing", 1, true))
    line = debug.getinfo(1, "l").currentline
    e = err_of(function() j.Message("MsgSpecBad", { topic = "a", fields = { x = 1 } }) end)
    assert.equal(THIS .. ":" .. (line + 1) .. ": schema.object('MsgSpecBad'): field 'x' must be a schema, got number", e)
    assert.truthy(err_of(function() j.Message("bad name", { topic = "a", fields = {} }) end)
      :find("the name must be an identifier", 1, true))
    assert.truthy(err_of(function() return s.object { id = s.integer() } { id = 1 } end)
      :find("is not callable (only a j.Message type is)", 1, true))
    local T = j.Message("MsgSpecCall", { topic = "a.b", fields = {} })
    assert.truthy(err_of(function() return T("x") end)
      :find("MsgSpecCall { ... }: expected a table of the message's fields, got string", 1, true))
  end)

  it("a second definition of the name elsewhere is a clash (the definition's place is the caller's)", function()
    local function define()
      local T = j.Message("MsgSpecTwice", { topic = "a.b", fields = {} })
      return T
    end
    define()
    define() -- the same place again: replaces
    assert.has_error(function() j.Message("MsgSpecTwice", { topic = "a.c", fields = {} }) end)
  end)
end)

describe("MessageHandler(MessageType, [opts], fn)", function()
  local T = j.Message("MsgSpecTask", { topic = "task.typed", fields = { id = s.integer() } })

  it("handles the type's topic with the type as its payload schema", function()
    local W = j.MessageBusController { name = "W" }
    W.on = j.MessageHandler(T, { max_retries = 1 }, function() end); local line = debug.getinfo(1, "l").currentline
    W.plain = j.MessageHandler(T, function() end)
    local hs = bc.handlers(j.Microservice { name = "app", controllers = { W } })
    assert.same({ "on", "task.typed", 1, "app.on" }, { hs[1].name, hs[1].topic, hs[1].max_retries, hs[1].queue })
    assert.equal(T, hs[1].payload)
    assert.equal(THIS .. ":" .. line, hs[1].defined_at)
    assert.equal(T, hs[2].payload)
  end)

  it("misuse raises", function()
    assert.has_error(function() j.MessageHandler(s.object { id = s.integer() }, function() end) end,
      "MessageHandler(MessageType, [opts], fn): expected a message type (j.Message(name, { topic = ..., fields = ... })),"
      .. " got schema<object>")
    assert.has_error(function() j.MessageHandler("task.x", function() end) end)
    assert.has_error(function() j.MessageHandler(T, { payload = T }, function() end) end,
      "MessageHandler(MessageType, [opts], fn): opts.payload is the message type already; use IncomingHandler for "
      .. "another schema")
    assert.has_error(function() j.MessageHandler(T, 3, function() end) end,
      "MessageHandler(MessageType, [opts], fn): opts must be a table, got number")
    assert.has_error(function() j.MessageHandler(T, {}) end,
      "MessageHandler(MessageType, [opts], fn): expected a handler function as the last argument, got nil")
  end)
end)

describe("propagate_headers settings", function()
  it("Microservice{ bus = { propagate_headers } } is checked at declaration", function()
    assert.has_no_error(function() j.Microservice { bus = { propagate_headers = { "x-tenant", "X-Request-Id" } } } end)
    assert.has_error(function() j.Microservice { bus = { propagate_headers = "x-tenant" } } end,
      "Microservice.bus.propagate_headers: expected a list of header names, got string")
    assert.has_error(function() j.Microservice { bus = { propagate_headers = { a = "x" } } } end,
      "Microservice.bus.propagate_headers: expected a list of header names (not a map)")
    assert.has_error(function() j.Microservice { bus = { propagate_headers = { "x tenant" } } } end,
      'Microservice.bus.propagate_headers: [1]: expected a header name (letters, digits, \'-\', ...), got "x tenant"')
    assert.has_error(function() j.Microservice { bus = { propagate_headers = { "a", "X-Retry-Count" } } } end,
      'Microservice.bus.propagate_headers: [2]: "X-Retry-Count" describes one delivery and is never propagated')
  end)

  it("the allow-list: the W3C trace context always, the app's names in lower case", function()
    assert.same({ traceparent = true, tracestate = true, baggage = true, ["x-tenant"] = true },
      propagation.allow_list { "X-Tenant" })
    local allow = propagation.allow_list { "x-tenant" }
    assert.same({ traceparent = "t", ["X-Tenant"] = "a", mine = "1", ["content-type"] = "text/plain" },
      propagation.apply({ mine = "1", ["content-type"] = "text/plain" }, { traceparent = "t", ["X-Tenant"] = "a",
        ["x-retry-count"] = 2, ["x-secret"] = "s", ["content-type"] = "application/json" }, allow))
    -- the publisher's own header wins, whatever its case
    assert.same({ ["X-TENANT"] = "mine" }, propagation.apply({ ["X-TENANT"] = "mine" }, { ["x-tenant"] = "a" }, allow))
  end)
end)

describe("publishing typed messages, schedule, propagation", function()
  local T = j.Message("MsgSpecPub", { topic = "pub.typed", fields = { id = s.integer { minimum = 1 } } })
  local app, rt, broker

  before_each(function()
    app = bus.start_app(function(url)
      local W = j.MessageBusController { name = "W" }
      W.h = j.IncomingHandler("pub.#", function() end)
      return j.Microservice { name = "pub", controllers = { W },
        bus = { url = url, propagate_headers = { "x-tenant" } } }
    end)
    rt, broker = app.rt, app.broker
  end)

  after_each(function() app.stop() end)

  local function fetch_all()
    return assert(broker:fetch("pub.h", 100))
  end

  it("publish(Type { ... }) sends to the type's topic, validated; delay and schedule take it too", function()
    local pub = j.use_publisher()
    assert.is_true(pub:publish(T { id = 1 }, { headers = { ["x-k"] = "v" } }))
    assert.is_true(pub:delay(T { id = 2 }, 0))
    assert.is_true(pub:schedule(T { id = 3 }, os.time() - 10))
    local ds = fetch_all()
    assert.equal(3, #ds)
    for i, d in ipairs(ds) do
      assert.equal("pub.typed", d.topic)
      assert.equal('{"id":' .. i .. '}', d.body)
      assert.equal("application/json", d.headers["content-type"])
    end
    assert.equal("v", ds[1].headers["x-k"])
    -- a message that does not fit its type: nil, message, "invalid"; nothing sent
    local ok, err, code = pub:publish(T { id = 0 })
    assert.same({ nil, "invalid" }, { ok, code })
    assert.truthy(err:find("^the MsgSpecPub message is invalid: "), err)
    assert.same({}, fetch_all())
    assert.has_error(function() pub:publish(T { id = 1 }, "pub.other") end,
      "publisher: a MsgSpecPub message is sent to its type's topic (pub.typed); leave the topic out")
  end)

  it("schedule(payload, topic, at): not deliverable before at; a past time is deliverable at once", function()
    local pub = j.use_publisher()
    assert.is_true(pub:schedule({ n = 1 }, "pub.later", os.time() + 3600))
    assert.same({}, fetch_all())
    assert.equal(1, assert(broker:stats()).queues["pub.h"].delayed)
    assert.is_true(pub:schedule({ n = 2 }, "pub.now", os.time() - 1))
    local ds = fetch_all()
    assert.equal(1, #ds)
    assert.equal("pub.now", ds[1].topic)
    assert.has_error(function() pub:schedule({}, "pub.a", "tomorrow") end,
      "publisher:schedule(payload, topic, at): at must be a time in seconds since the epoch, got tomorrow")
    assert.has_error(function() pub:schedule({}, "pub.a") end)
  end)

  -- fn in a transaction of kind "message" consuming a message with headers
  local function handling(headers, fn)
    local ctx, prev = context.new("message", rt.container, { message = { headers = headers } }), context.current()
    context.bind(ctx)
    local ok, err = interceptors.run(rt.interceptors, ctx, fn)
    context.bind(prev)
    assert(ok, err)
  end

  it("in a message handler, publishes inherit the trace context and the allow-listed headers only", function()
    handling({ traceparent = "00-aa-bb-01", tracestate = "v=1", baggage = "u=2", ["x-tenant"] = "acme",
      ["x-secret"] = "s", ["x-retry-count"] = 3, ["content-type"] = "text/plain" }, function()
      assert.is_true(j.use_publisher():publish({ n = 1 }, "pub.a"))
      assert.is_true(j.use_publisher():publish(T { id = 1 }, { headers = { ["x-tenant"] = "other" } }))
    end)
    local ds = fetch_all()
    assert.equal(2, #ds)
    assert.same({ traceparent = "00-aa-bb-01", tracestate = "v=1", baggage = "u=2", ["x-tenant"] = "acme",
      ["content-type"] = "application/json" }, ds[1].headers)
    assert.equal("other", ds[2].headers["x-tenant"]) -- the publisher's own wins
    -- outside a handler: nothing to inherit
    assert.is_true(j.use_publisher():publish({ n = 2 }, "pub.b"))
    assert.same({ ["content-type"] = "application/json" }, fetch_all()[1].headers)
  end)
end)

describe("the embedded broker's dlq_purge(queue, ids)", function()
  it("deletes the dead letters with those ids, or all of them", function()
    local dir = files.temp_dir("bus-purge")
    local b = assert(embedded.open(dir .. "/b.db"))
    assert(b:bind("q", "t.#"))
    assert(b:publish { { topic = "t.a", id = "A", body = "a" }, { topic = "t.a", id = "B", body = "b" },
      { topic = "t.a", id = "C", body = "c" } })
    for _, d in ipairs(assert(b:fetch("q", 10))) do assert(b:dead_letter(d, "x")) end
    assert.equal(2, assert(b:dlq_purge("q", { "A", "C", "nope" })))
    local left = assert(b:dlq_list("q"))
    assert.same({ "B" }, { left[1].id, left[2] })
    assert.equal(1, assert(b:dlq_purge("q", "all")))
    assert.has_error(function() b:dlq_purge("q", 3) end, 'broker:dlq_purge(queue, ids): ids must be a list of ids or "all"')
    assert.has_error(function() b:dlq_purge("q", { 1 }) end, "broker:dlq_purge(): ids[1] must be a string, got number")
    assert(b:close())
    files.remove_dir(dir)
  end)
end)
