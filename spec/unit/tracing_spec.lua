-- jararaca.tracing: ids, W3C parsing, spans and their parentage, sampling,
-- off = no spans; root spans of HTTP requests and what they publish (the
-- in-process client, a real embedded broker in a temporary file).
local j = require "jararaca"
local tracing = require "jararaca.tracing"
local span = require "jararaca.tracing.span"
local w3c = require "jararaca.tracing.w3c"
local memory = require "jararaca.tracing.memory"
local embedded = require "jararaca.bus.embedded"
local testing = require "jararaca.testing"
local context = require "jararaca.context"

local TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

describe("tracing ids", function()
  it("are random lower-case hex of 16 and 8 bytes", function()
    local a, b = span.trace_id(), span.trace_id()
    assert.truthy(a:find("^[0-9a-f]+$"))
    assert.equal(32, #a)
    assert.not_equal(a, b)
    assert.equal(16, #span.span_id())
    assert.truthy(span.span_id():find("^[0-9a-f]+$"))
  end)
end)

describe("span ids", function()
  it("the traceparent, made from the id words, agrees with the ids read later", function()
    for _ = 1, 200 do
      local sp = span.new("x", "server", nil, true)
      local t, p, f = w3c.parse_traceparent(sp:traceparent())
      assert.equal(sp.trace_id, t)
      assert.equal(sp.span_id, p)
      assert.equal(1, f)
      assert.truthy(sp.trace_id:find("^%x+$") and #sp.trace_id == 32)
      local child = span.new("y", nil, sp)
      assert.equal(sp.trace_id, child.trace_id)
      assert.equal(sp.span_id, child.parent_id)
      assert.equal("00-" .. sp.trace_id .. "-" .. child.span_id .. "-01", child:traceparent())
    end
    -- ids read first, traceparent after: the same
    local sp = span.new("z", "server", nil, false)
    local t, s = sp.trace_id, sp.span_id
    assert.equal("00-" .. t .. "-" .. s .. "-00", sp:traceparent())
  end)

  it("a span shares status, events and links until it has its own", function()
    local a, b = span.new("a", nil, nil, true), span.new("b", nil, nil, true)
    assert.equal("unset", a.status.code)
    assert.equal(0, #a.events)
    assert.has_error(function() a.events[1] = "x" end)
    a:add_event("e"):set_status("error", "bad"):add_link({ trace_id = ("1"):rep(32), span_id = ("2"):rep(16) })
    assert.equal("e", a.events[1].name)
    assert.equal("bad", a.status.message)
    assert.equal(1, #a.links)
    assert.equal(0, #b.events)
    assert.equal(0, #b.links)
    assert.equal("unset", b.status.code)
    local u = span.new("u", nil, nil, false) -- unsampled: records nothing
    assert.is_nil(u.events)
    assert.is_nil(u.attributes)
  end)
end)

describe("w3c", function()
  it("parses a valid traceparent and formats one", function()
    local t, p, f = w3c.parse_traceparent(TP)
    assert.equal("4bf92f3577b34da6a3ce929d0e0e4736", t)
    assert.equal("00f067aa0ba902b7", p)
    assert.equal(1, f)
    assert.equal(TP, w3c.format_traceparent(t, p, true))
    assert.equal(TP:sub(1, -2) .. "0", w3c.format_traceparent(t, p, false))
    -- a future version: its first four fields
    assert.equal(t, (w3c.parse_traceparent("01" .. TP:sub(3) .. "-extra")))
  end)

  it("refuses invalid traceparents with nil, message, 'invalid'", function()
    for _, s in ipairs {
      "ff" .. TP:sub(3), TP:upper(), TP .. "-", "00-" .. ("0"):rep(32) .. TP:sub(36),
      TP:sub(1, 36) .. ("0"):rep(16) .. "-01", "00-abc-00f067aa0ba902b7-01", "", 42,
    } do
      local v, msg, code = w3c.parse_traceparent(s)
      assert.is_nil(v, tostring(s))
      assert.equal("string", type(msg))
      assert.equal("invalid", code)
    end
  end)

  it("validates tracestate and baggage", function()
    assert.equal("a=1,b@c=x", w3c.parse_tracestate("a=1,b@c=x"))
    assert.is_nil(w3c.parse_tracestate("A=1"))
    assert.is_nil(w3c.parse_tracestate("a=1,=2"))
    assert.is_nil(w3c.parse_tracestate(""))
    assert.equal("k=v;p=1, x=y", w3c.parse_baggage("k=v;p=1, x=y"))
    assert.is_nil(w3c.parse_baggage("no-equals"))
    assert.is_nil(w3c.parse_baggage(("a=b,"):rep(3000)))
  end)
end)

-- Configure tracing for the specs outside an app (runtime.start does it).
local function on(opts) tracing.configure(opts) end

describe("spans", function()
  local mem
  before_each(function()
    mem = memory.new()
    on { exporter = mem.export, batch_size = 1 }
  end)
  after_each(function() tracing.configure(nil) end)

  it("nest: a child's parent is the enclosing span, same trace", function()
    local outer, inner
    local r1, r2 = j.start_span("outer", function(o)
      outer = o
      o:set_attribute("k", 1)
      return j.start_span("inner", { kind = "client", attributes = { a = "b" } }, function(i)
        inner = i
        i:add_event("ev", { n = 2 })
        return "x", "y"
      end)
    end)
    assert.equal("x", r1)
    assert.equal("y", r2)
    assert.equal(outer.trace_id, inner.trace_id)
    assert.equal(outer.span_id, inner.parent_id)
    assert.is_nil(outer.parent_id)
    assert.equal("client", inner.kind)
    assert.equal("b", inner.attributes.a)
    assert.equal("ev", inner.events[1].name)
    assert.equal(2, #mem.spans)
    assert.equal("inner", mem.spans[1].name) -- ended first
    assert.truthy(outer.end_us >= outer.start_us)
  end)

  it("record an error and raise it again, same value", function()
    local err = { code = 7 }
    local ok, e = pcall(j.start_span, "bad", function() error(err) end)
    assert.is_false(ok)
    assert.equal(err, e)
    local s = mem.find("bad")
    assert.equal("error", s.status.code)
    assert.equal("exception", s.events[1].name)
  end)

  it("TracedFunc and traced(Class) make child spans with the same results", function()
    local f = j.TracedFunc("f", function(a, b) return a + b, "ok" end)
    local Repo = { __name = "Repo" }
    function Repo.get(_, id) return id * 2 end
    function Repo._private() return 0 end
    j.traced(Repo)
    local s, t = f(1, 2)
    assert.equal(3, s)
    assert.equal("ok", t)
    assert.equal(10, Repo:get(5))
    Repo._private()
    assert.truthy(mem.find("f"))
    assert.truthy(mem.find("Repo.get"))
    assert.equal(2, #mem.spans)
  end)

  it("tasks spawned inside a span (j.spawn, j.gather) make children of it", function()
    local parent, kids = nil, {}
    j.start_span("parent", function(p)
      parent = p
      j.gather(function() j.start_span("a", function(s) kids.a = s end) end,
        function() j.start_span("b", function(s) kids.b = s end) end)
      j.spawn(function() j.start_span("c", function(s) kids.c = s end) end):wait()
    end)
    for _, k in ipairs { "a", "b", "c" } do
      assert.equal(parent.span_id, kids[k].parent_id, k)
      assert.equal(parent.trace_id, kids[k].trace_id, k)
    end
  end)

  it("set_status checks its code", function()
    assert.has_error(function() j.start_span("s", function(sp) sp:set_status("nope") end) end)
  end)

  it("sampling: ratio 0 records nothing but still makes ids; parent-based for children", function()
    on { exporter = mem.export, batch_size = 1, sample = 0 }
    j.start_span("root", function(r)
      assert.is_false(r:is_recording())
      assert.equal(32, #r.trace_id)
      assert.truthy(r:traceparent():find("%-00$"))
      j.start_span("child", function(c) assert.is_false(c.sampled) end)
    end)
    assert.equal(0, #mem.spans)
  end)

  it("sampling: a ratio records about that share of new traces", function()
    on { exporter = mem.export, batch_size = 1000, sample = 0.5 }
    local n = 0
    for _ = 1, 2000 do j.start_span("r", function(r) if r.sampled then n = n + 1 end end) end
    -- 2000 draws at p = 0.5: outside 800..1200 has a probability far below 1e-18
    assert.truthy(n > 800 and n < 1200, tostring(n))
  end)

  it("off: start_span and TracedFunc call through with the no-op span, no spans", function()
    tracing.configure(nil)
    local seen
    assert.equal(5, j.start_span("x", function(sp, a) seen = sp; return a end, 5))
    assert.equal(tracing.NOOP, seen)
    assert.is_false(seen:is_recording())
    seen:set_attribute("a", 1):add_event("e"):record_exception("x")
    local f = j.TracedFunc("f", function(...) return select("#", ...), ... end)
    local n, a, b = f(nil, 2)
    assert.equal(2, n); assert.is_nil(a); assert.equal(2, b)
    assert.equal(0, #mem.spans)
    assert.equal(tracing.NOOP, j.current_span())
  end)

  it("Microservice{ tracing } is checked", function()
    assert.has_error(function() j.Microservice { name = "x", tracing = { sample = 2 } } end,
      "Microservice.tracing: sample: expected a number in 0..1")
    assert.has_error(function() j.Microservice { name = "x", tracing = { nope = 1 } } end,
      'Microservice.tracing: unknown field "nope"')
  end)
end)

describe("root spans of HTTP requests (in-process client)", function()
  local dir, client, broker, mem, seen

  local function start(opts)
    dir = testing.temp_dir()
    local url = "sqlite:///" .. dir .. "/bus.db"
    local C = j.RestController("/items", { name = "Items" })
    C.get = j.Get("/{id}", function(_, req)
      seen = j.current_span()
      j.start_span("work", function() j.log.info("inside work") end)
      assert(j.use_publisher():publish({ n = 1 }, "t.http"))
      return { id = req.params.id }
    end)
    C.boom = j.Post("/boom", function() error("boom") end)
    C.pfail = j.Post("/publish-then-fail", function()
      assert(j.use_publisher():publish({ n = 1 }, "t.fail"))
      error("after the publish")
    end)
    local W = j.MessageBusController { name = "W" }
    W.h = j.IncomingHandler("t.#", function() end)
    mem = memory.new()
    opts.exporter = mem.export
    opts.batch_size = 1
    client = testing.client(j.Microservice { name = "tr", controllers = { C, W }, bus = { url = url },
      tracing = opts })
    broker = assert(embedded.open(dir .. "/bus.db"))
  end

  after_each(function()
    broker:close()
    client:close()
    testing.cleanup()
    tracing.configure(nil)
  end)

  local function published()
    local ds = assert(broker:fetch("tr.h", 10))
    assert.equal(1, #ds)
    return ds[1].headers
  end

  it("a trusted inbound traceparent: child of the caller, echoed, published with a new parent id", function()
    start {}
    local res = client:get("/items/7?x=1", { headers = { traceparent = TP, tracestate = "a=1", baggage = "k=v",
      Authorization = "Bearer secret", cookie = "s=1", ["x-api-key"] = "k" } })
    assert.equal(200, res.status, res.body)
    local root = mem.find("GET /items/{id}")
    assert.truthy(root, "root span")
    assert.equal(seen, root)
    assert.equal("server", root.kind)
    assert.equal("4bf92f3577b34da6a3ce929d0e0e4736", root.trace_id)
    assert.equal("00f067aa0ba902b7", root.parent_id)
    assert.equal(root:traceparent(), res.headers.traceparent)
    local a = root.attributes
    assert.equal("GET", a["http.method"])
    assert.equal("/items/{id}", a["http.route.path"])
    assert.equal("7", a["http.request.path_param.id"])
    assert.equal(200, a["http.response.status_code"])
    assert.equal("[redacted]", a["http.request.header.authorization"])
    assert.equal("[redacted]", a["http.request.header.cookie"])
    assert.equal("[redacted]", a["http.request.header.x-api-key"])
    assert.equal("/items/7", a["http.path"])
    assert.equal("/items/7?x=1", a["http.url"])
    assert.equal("x=1", a["http.query"])
    assert.equal("127.0.0.1", a["http.request.client.host"])
    assert.equal("a=1", a["http.request.header.tracestate"])
    local work = mem.find("work")
    assert.equal(root.span_id, work.parent_id)
    -- the publish: a PRODUCER span, child of the root, whose id the message carries
    local prod = mem.find("t.http publish")
    assert.truthy(prod, "producer span")
    assert.equal("producer", prod.kind)
    assert.equal(root.trace_id, prod.trace_id)
    assert.equal(root.span_id, prod.parent_id)
    assert.equal("unset", prod.status.code)
    assert.truthy(prod.end_us <= root.end_us)
    local pa = prod.attributes
    assert.equal("jararaca.embedded", pa["messaging.system"])
    assert.equal("publish", pa["messaging.operation"])
    assert.equal("t.http", pa["messaging.destination.name"])
    assert.equal(7, pa["messaging.message.body.size"]) -- {"n":1}
    local ds = assert(broker:fetch("tr.h", 10))
    assert.equal(1, #ds)
    assert.equal(pa["messaging.message.id"], ds[1].id)
    local h = ds[1].headers
    assert.equal(w3c.format_traceparent(root.trace_id, prod.span_id, true), h.traceparent)
    assert.equal(prod:traceparent(), h.traceparent)
    assert.equal("a=1", h.tracestate)
    assert.equal("k=v", h.baggage)
  end)

  it("a publish staged by a transaction that fails: its producer span ends with the root, status error", function()
    start {}
    assert.equal(500, client:post("/items/publish-then-fail").status)
    local root = mem.find("POST /items/publish-then-fail")
    local prod = mem.find("t.fail publish")
    assert.truthy(root and prod)
    assert.equal(root.span_id, prod.parent_id)
    assert.equal("error", prod.status.code)
    assert.truthy(prod.status.message:find("rolled back", 1, true), prod.status.message)
    assert.equal(0, #assert(broker:fetch("tr.h", 10))) -- nothing was published
  end)

  it("a producer span of an immediate publish (startup) ends with it; unsampled ones record nothing", function()
    start {}
    -- as in a startup hook: the publish is not staged
    local function in_startup(fn)
      local ok, err = j.spawn(function()
        context.bind(context.new("startup", client.rt.container))
        fn()
      end):wait()
      assert(ok, err)
    end
    in_startup(function()
      j.start_span("outside", function(outer)
        assert.is_true(j.use_publisher():publish({ n = 2 }, "t.out"))
        local prod = mem.find("t.out publish")
        assert.truthy(prod, "ended at once")
        assert.equal(outer.span_id, prod.parent_id)
        assert.equal(prod:traceparent(), published().traceparent)
      end)
    end)
    tracing.configure { exporter = mem.export, batch_size = 1, sample = 0 }
    mem.clear()
    in_startup(function()
      j.start_span("unsampled", function()
        assert.is_true(j.use_publisher():publish({ n = 3 }, "t.out"))
      end)
    end)
    assert.equal(0, #mem.spans)
    assert.truthy(published().traceparent:find("%-00$"))
  end)

  it("http.path is the decoded path; no query, no http.query", function()
    start {}
    assert.equal(200, client:get("/items/a%20b").status)
    local a = mem.find("GET /items/{id}").attributes
    assert.equal("/items/a b", a["http.path"])
    assert.equal("/items/a%20b", a["http.url"])
    assert.is_nil(a["http.query"])
    assert.equal("a b", a["http.request.path_param.id"])
    mem.clear()
    assert.equal(200, client:get("/items/c%41d?q=a%20b&r=").status)
    a = mem.find("GET /items/{id}").attributes
    assert.equal("/items/cAd", a["http.path"])
    assert.equal("q=a%20b&r=", a["http.query"])
    mem.clear()
    assert.equal(200, client:get("/items/e?q=%41").status) -- an escape in the query only
    a = mem.find("GET /items/{id}").attributes
    assert.equal("/items/e", a["http.path"])
    assert.equal("q=%41", a["http.query"])
  end)

  it("untrusted inbound: a new trace linked to the remote one, no inbound baggage", function()
    start { trust_inbound = false }
    assert.equal(200, client:get("/items/1", { headers = { traceparent = TP, baggage = "k=v" } }).status)
    local root = mem.find("GET /items/{id}")
    assert.not_equal("4bf92f3577b34da6a3ce929d0e0e4736", root.trace_id)
    assert.is_nil(root.parent_id)
    assert.equal("4bf92f3577b34da6a3ce929d0e0e4736", root.links[1].trace_id)
    local h = published()
    assert.truthy(h.traceparent:find(root.trace_id, 1, true))
    assert.is_nil(h.baggage)
  end)

  it("parent-based sampling: a caller's unsampled traceparent is followed (nothing recorded, flags 00 on)", function()
    start {}
    local res = client:get("/items/2", { headers = { traceparent = TP:sub(1, -3) .. "00" } })
    assert.equal(200, res.status)
    assert.truthy(res.headers.traceparent:find("^00%-4bf92f3577b34da6a3ce929d0e0e4736%-%x+%-00$"))
    assert.equal(0, #mem.spans)
    assert.truthy(published().traceparent:find("%-00$"))
  end)

  it("a failing handler: status error, 500 still echoes traceparent", function()
    start {}
    local res = client:post("/items/boom")
    assert.equal(500, res.status)
    local root = mem.find("POST /items/boom")
    assert.equal("error", root.status.code)
    assert.equal(root:traceparent(), res.headers.traceparent)
  end)
end)

describe("root spans of deliveries and scheduled runs", function()
  local worker = require "jararaca.bus.worker"
  local run = require "jararaca.schedule.run"
  local bus_support = require "spec.support.bus"
  local wait = require "spec.support.wait"

  after_each(function() tracing.configure(nil) end)

  it("a delivery is a consumer span, child of the publishing span; its publishes chain on", function()
    local mem = memory.new()
    local app, done
    app = bus_support.start_app(function(url)
      local W = j.MessageBusController { name = "W" }
      W.one = j.IncomingHandler("t.one", function()
        j.start_span("step", function() end)
        assert(j.use_publisher():publish({ n = 2 }, "t.two"))
      end)
      W.two = j.IncomingHandler("t.two", function(_, msg) done = msg.headers.traceparent end)
      return j.Microservice { name = "chain", controllers = { W }, bus = { url = url },
        tracing = { exporter = mem.export, batch_size = 1 } }
    end)
    local ok, err = pcall(function()
      local client
      j.start_span("client", { kind = "producer" }, function(sp)
        client = sp
        assert.is_true(j.use_publisher():publish({ n = 1 }, "t.one"))
      end)
      local w = assert(worker.start(app.rt, {}))
      wait.until_true(function() return done end, "the second handler ran")
      w:stop(5)
      local one, two = mem.find("TASK t.one"), mem.find("TASK t.two")
      assert.truthy(one and two, "both consumer spans")
      assert.equal("consumer", one.kind)
      -- client -> producer "t.one publish" -> consumer "TASK t.one" -> producer
      -- "t.two publish" -> consumer "TASK t.two"
      local p1, p2 = mem.find("t.one publish"), mem.find("t.two publish")
      assert.truthy(p1 and p2, "both producer spans")
      assert.equal(client.trace_id, one.trace_id)
      assert.equal(client.span_id, p1.parent_id)
      assert.equal(p1.span_id, one.parent_id)
      assert.equal(one.trace_id, two.trace_id)
      assert.equal(one.span_id, p2.parent_id)
      assert.equal(p2.span_id, two.parent_id)
      assert.equal(p2:traceparent(), done)
      assert.equal(one.attributes["bus.message.id"], p1.attributes["messaging.message.id"])
      assert.equal(one.span_id, mem.find("step").parent_id)
      assert.equal("t.one", one.attributes["bus.message.topic"])
      assert.equal(1, one.attributes["bus.message.processing_attempt"])
    end)
    app.stop()
    assert(ok, err)
  end)

  it("a scheduled run is a new trace named 'Scheduler Task <name>'; a failure sets status error", function()
    local mem = memory.new()
    on { exporter = mem.export, batch_size = 1 }
    local cls = {}
    local inner
    local a = { name = "tick", controller = cls, member = "tick", fn = function()
      j.start_span("inner", function(sp) inner = sp end)
      error("nope")
    end }
    local outcome = run.execute({ container = {}, chain = {}, instances = { [cls] = {} } }, a,
      { action = "tick", tick = 60, fired_at = 60.001, token = 7 })
    assert.equal("failed", outcome)
    local root = mem.find("Scheduler Task tick")
    assert.truthy(root)
    assert.is_nil(root.parent_id)
    assert.equal("tick", root.attributes["sched.task_name"])
    assert.equal("error", root.status.code)
    assert.equal(root.span_id, inner.parent_id)
  end)
end)
