-- An HTTP request's root span kept in C (bindings/l_http.c h:trace_begin,
-- core/trace_ctx.c, exported by e:push_http_span) must be the span the Lua
-- path makes: the same name, ids, parent, attributes and status, the same
-- traceparent echoed, the same W3C parsing rules (w3c.lua's, checked on a
-- list of headers), and the same span when Lua takes it over mid-request.
-- A real `jararaca server` exports to the test receiver.
local server = require "spec.support.server"
local client = require "spec.support.client"
local otlp = require "spec.support.otlp"
local w3c = require "jararaca.tracing.w3c"

local APP = server.root .. "/spec/integration/apps/trace_root.lua"
local cjson = require "cjson"

local rcv, srv
local get

local function env(extra)
  local e = { OTEL_EXPORTER_OTLP_ENDPOINT = rcv.endpoint, OTEL_BSP_SCHEDULE_DELAY = "20",
    OTEL_METRICS_EXPORTER = "none", OTEL_LOGS_EXPORTER = "none" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

setup(function()
  rcv = otlp.start()
  srv = server.start(APP, { "--worker-timeout", "0" }, env())
  -- a route's first request takes the Lua path (it makes the route's span
  -- info the C path then uses): one each first
  for _, t in ipairs { "/plain/0", "/touch/0", "/peek/0", "/logs/0", "/boom", "/own", "/later", "/badstatus" } do get(t) end
end)

teardown(function()
  if srv then srv:stop() end
  if rcv then rcv:stop() end
end)

function get(target, headers, method, port)
  local res = assert(client.request(port or srv.port, method or "GET", target, { headers = headers }))
  return res
end

local function echoed(res)
  local tp = assert(res.headers.traceparent, "no traceparent echoed")
  local trace, span, flags = tp:match("^00%-(%x+)%-(%x+)%-(%x%x)$")
  assert.truthy(trace, tp)
  return trace, span, flags
end

-- The span with this span id, once the receiver has it.
local function span_of(span_id)
  local items = rcv:wait_for("traces", function(items)
    for _, s in ipairs(items) do if s.spanId == span_id then return { s } end end
  end, 10)
  return items[1]
end

-- Attributes without the ones that differ by request (host, timing)
local function request_attrs(s)
  local a = {}
  for k, v in pairs(s.attrs) do a[k] = v end
  return a
end

describe("an HTTP root span kept in C", function()
  it("is exported with the name, kind, ids, attributes and status the Lua path gives", function()
    local res = get("/plain/7?q=1&r=2", { ["X-Thing"] = "a", ["x-thing"] = "b", Authorization = "Bearer s3cret",
      Cookie = "sid=1" })
    assert.equal(200, res.status, res.body)
    local trace, span, flags = echoed(res)
    assert.equal("01", flags)
    local s = span_of(span)
    assert.equal(trace, s.traceId)
    assert.is_nil(s.parentSpanId)
    assert.equal("GET /plain/{id}", s.name)
    assert.equal(2, s.kind)
    assert.is_nil(s.status and s.status.code)
    local a = request_attrs(s)
    assert.same({
      ["app.context_type"] = "http", ["http.method"] = "GET", ["http.route.path"] = "/plain/{id}",
      ["http.route.endpoint.name"] = "plain", ["http.url"] = "/plain/7?q=1&r=2", ["http.path"] = "/plain/7",
      ["http.query"] = "q=1&r=2", ["http.request.path_param.id"] = "7",
      ["http.request.header.x-thing"] = a["http.request.header.x-thing"], -- (order of the two lines: the client's)
      ["http.request.header.authorization"] = "[redacted]", ["http.request.header.cookie"] = "[redacted]",
      ["http.request.header.host"] = "127.0.0.1", ["http.request.client.host"] = "127.0.0.1",
      ["http.response.status_code"] = 200,
    }, a)
    assert.truthy(a["http.request.header.x-thing"] == "a, b" or a["http.request.header.x-thing"] == "b, a")
    local start, stop = tonumber(s.startTimeUnixNano), tonumber(s.endTimeUnixNano)
    assert.truthy(start > 0 and stop >= start, "start and end")
    assert.truthy(math.abs(start / 1e9 - os.time()) < 60, "a wall-clock start")
  end)

  -- GET /<member>/<id>?q=<q> with X-Thing: <thing>, a route whose handler
  -- takes the span over and answers its ids: the exported span has those
  -- ids and every attribute, plus extra
  local function taken_over(member, id, q, thing, extra)
    local res = get(("/%s/%s?q=%s"):format(member, id, q), { ["X-Thing"] = thing })
    assert.equal(200, res.status, res.body)
    local body = cjson.decode(res.body)
    local trace, span = echoed(res)
    assert.equal(trace, body.trace_id)
    assert.equal(span, body.span_id)
    local s = span_of(span)
    assert.equal(trace, s.traceId)
    assert.equal(("GET /%s/{id}"):format(member), s.name)
    local want = {
      ["app.context_type"] = "http", ["http.method"] = "GET", ["http.route.path"] = "/" .. member .. "/{id}",
      ["http.route.endpoint.name"] = member, ["http.url"] = ("/%s/%s?q=%s"):format(member, id, q),
      ["http.path"] = ("/%s/%s"):format(member, id), ["http.query"] = "q=" .. q,
      ["http.request.path_param.id"] = id, ["http.request.header.x-thing"] = thing,
      ["http.request.header.host"] = "127.0.0.1", ["http.request.client.host"] = "127.0.0.1",
      ["http.response.status_code"] = 200,
    }
    for k, v in pairs(extra or {}) do want[k] = v end
    assert.same(want, request_attrs(s))
  end

  it("becomes the Lua span, with the same ids and attributes, when the handler asks for it", function()
    taken_over("touch", "9", "1", "a", { touched = true })
  end)

  it("taken over by Lua without its attributes read, is exported with all of them", function()
    taken_over("peek", "4", "2", "c")
  end)

  it("gives a log line written in the request the span's ids", function()
    local res = get("/logs/77")
    assert.equal(200, res.status, res.body)
    local trace, span = echoed(res)
    local s = span_of(span)
    assert.equal("GET /logs/{id}", s.name)
    assert.equal("77", s.attrs["http.request.path_param.id"])
    local line
    for l in srv:output():gmatch("[^\n]+") do
      if l:find("in logs 77", 1, true) then line = l end
    end
    assert.truthy(line, "the log line")
    assert.truthy(line:find("trace_id=" .. trace, 1, true), line)
    assert.truthy(line:find("span_id=" .. span, 1, true), line)
  end)

  it("ends with status error on a 500", function()
    local res = get("/boom")
    assert.equal(500, res.status)
    local _, span = echoed(res)
    local s = span_of(span)
    assert.equal(2, s.status.code)
    assert.equal(500, s.attrs["http.response.status_code"])
  end)

  it("keeps a traceparent the app answers with", function()
    local res = get("/own")
    assert.equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", res.headers.traceparent)
  end)

  it("continues a trusted remote trace, as the Lua path reads a traceparent", function()
    -- each header: what w3c.lua makes of it decides what the C path must do
    local T, P = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    local cases = {
      "00-" .. T .. "-" .. P .. "-01", "00-" .. T .. "-" .. P .. "-00", "00-" .. T .. "-" .. P .. "-03",
      "01-" .. T .. "-" .. P .. "-01-future", "01-" .. T .. "-" .. P .. "-01",
      "00-" .. T:upper() .. "-" .. P .. "-01", "00-" .. T .. "-" .. P .. "-01-x", "ff-" .. T .. "-" .. P .. "-01",
      "00-" .. ("0"):rep(32) .. "-" .. P .. "-01", "00-" .. T .. "-" .. ("0"):rep(16) .. "-01",
      "00-" .. T:sub(2) .. "-" .. P .. "-01", "00-" .. T .. "-" .. P .. "-1", "garbage", "00-" .. T .. "x" .. P .. "-01",
    }
    local last_sampled
    for _, tp in ipairs(cases) do
      local trace, parent, fl = w3c.parse_traceparent(tp)
      local res = get("/plain/1", { traceparent = tp })
      assert.equal(200, res.status)
      local etrace, espan, eflags = echoed(res)
      if trace then
        assert.equal(trace, etrace, tp)
        assert.equal(fl % 2 == 1 and "01" or "00", eflags, tp)
        if fl % 2 == 1 then
          local s = span_of(espan)
          assert.equal(parent, s.parentSpanId, tp)
          assert.equal(trace, s.traceId, tp)
        end
      else
        assert.are_not.equal(T, etrace, tp)
        assert.equal("01", eflags, tp)
        local s = span_of(espan)
        assert.is_nil(s.parentSpanId, tp)
        last_sampled = espan
      end
    end
    -- an unsampled remote parent: no span exported (every sampled one was,
    -- in order, and the receiver has exactly those of trace T)
    assert.truthy(last_sampled)
    local sampled_remote, unsampled = 0, 0
    for _, tp in ipairs(cases) do
      local trace, _, fl = w3c.parse_traceparent(tp)
      if trace and fl % 2 == 1 then sampled_remote = sampled_remote + 1 end
      if trace and fl % 2 == 0 then unsampled = unsampled + 1 end
    end
    local with_t = 0
    for _, s in ipairs(rcv:items("traces")) do
      if s.traceId == T then
        with_t = with_t + 1
        assert.equal(P, s.parentSpanId)
      end
    end
    assert.equal(sampled_remote, with_t)
    assert.truthy(unsampled > 0)
  end)

  it("leaves a request with tracestate or baggage to the Lua path, which propagates them", function()
    local T, P = "5bf92f3577b34da6a3ce929d0e0e4736", "10f067aa0ba902b7"
    local res = get("/plain/3", { traceparent = "00-" .. T .. "-" .. P .. "-01", tracestate = "k=v" })
    local trace, span = echoed(res)
    assert.equal(T, trace)
    local s = span_of(span)
    assert.equal(P, s.parentSpanId)
    assert.equal("k=v", s.traceState)
    assert.equal("/plain/3", s.attrs["http.url"])
    assert.equal("3", s.attrs["http.request.path_param.id"])
    assert.equal(200, s.attrs["http.response.status_code"])
  end)

  it("is the parent of a span a task the handler spawned runs after the answer, as a Lua span is", function()
    -- the Lua path (a tracestate) and the C path: the same parent
    for _, headers in ipairs { { traceparent = "00-7bf92f3577b34da6a3ce929d0e0e4736-30f067aa0ba902b7-01",
      tracestate = "k=v" }, {} } do
      local res = get("/later", headers)
      assert.equal(200, res.status, res.body)
      local trace, span = echoed(res)
      local items = rcv:wait_for("traces", function(items)
        for _, s in ipairs(items) do
          if s.name == "later" and s.traceId == trace then return { s } end
        end
      end, 10)
      assert.equal(span, items[1].parentSpanId, headers.tracestate and "Lua path" or "C path")
      -- the root span itself: exported once
      assert.equal("GET /later", span_of(span).name)
      local n = 0
      for _, s in ipairs(rcv:items("traces")) do if s.spanId == span then n = n + 1 end end
      assert.equal(1, n)
    end
  end)

  it("is exported for an answer the server refuses, with the 500 sent, as a Lua span is", function()
    for n, headers in ipairs { { traceparent = "00-8bf92f3577b34da6a3ce929d0e0e4736-40f067aa0ba902b7-01",
      tracestate = "k=v" }, {} } do
      local url = "/badstatus?n=" .. n
      local res = get(url, headers)
      assert.equal(500, res.status, res.body)
      local ok, items = pcall(rcv.wait_for, rcv, "traces", function(items)
        for _, s in ipairs(items) do
          if s.attrs and s.attrs["http.url"] == url then return { s } end
        end
      end, 5)
      assert(ok, (headers.tracestate and "Lua path" or "C path") .. ": no span exported")
      assert.equal("GET /badstatus", items[1].name)
      assert.equal(500, items[1].attrs["http.response.status_code"])
      assert.equal(2, items[1].status.code)
    end
  end)

  it("names a HEAD on a GET route as the Lua path does", function()
    local res = get("/plain/5", nil, "HEAD")
    assert.equal(200, res.status)
    local _, span = echoed(res)
    local s = span_of(span)
    assert.equal("HEAD", s.attrs["http.method"])
    assert.equal("HEAD /plain/{id}", s.name)
  end)
end)

describe("an HTTP root span kept in C, pre-forked workers", function()
  it("draws different ids in each worker", function()
    local s2 = server.start(APP, { "--workers", "2" }, env())
    local ok, err = pcall(function()
      local seen, n, pids, workers = {}, 0, {}, 0
      -- (a connection each: either worker answers; until both have, at
      -- least 40 requests, at most 400)
      for i = 1, 400 do
        if n >= 40 and workers >= 2 then break end
        local res = get("/plain/" .. (100 + i), nil, nil, s2.port)
        assert.equal(200, res.status)
        local pid = cjson.decode(res.body).pid
        if not pids[pid] then pids[pid], workers = true, workers + 1 end
        local trace, span = echoed(res)
        assert.is_nil(seen[trace], "trace id drawn twice: " .. trace)
        assert.is_nil(seen[span], "span id drawn twice: " .. span)
        seen[trace], seen[span] = true, true
        n = n + 1
      end
      assert.truthy(n >= 40)
      assert.equal(2, workers, "both workers answered")
    end)
    s2:stop()
    assert(ok, err)
  end)
end)

describe("an HTTP root span kept in C, sampling", function()
  it("samples nothing at sample = 0 and still echoes the trace", function()
    local s0 = server.start(APP, { "--worker-timeout", "0" }, env { TRACE_SAMPLE = "0" })
    local ok, err = pcall(function()
      local before = #rcv:items("traces")
      for _ = 1, 5 do
        local res = get("/plain/2", nil, nil, s0.port)
        local _, _, flags = echoed(res)
        assert.equal("00", flags)
      end
      -- a request with a sampled remote parent, on the same server: its
      -- span is queued after anything the five made, so once it is there
      -- nothing of theirs can be on its way
      local res = get("/plain/4", { traceparent = "00-6bf92f3577b34da6a3ce929d0e0e4736-20f067aa0ba902b7-01" }, nil,
        s0.port)
      local _, span = echoed(res)
      span_of(span)
      for _, s in ipairs(rcv:items("traces")) do
        assert.are_not.equal("/plain/2", s.attrs and s.attrs["http.url"])
      end
      assert.truthy(#rcv:items("traces") > before)
    end)
    s0:stop()
    assert(ok, err)
  end)
end)
