-- jararaca.core.otlp: the exporter binding against a real collector on a
-- real socket. The spec itself is the collector: the exporter POSTs from a
-- thread of its own, so the spec can accept and answer with blocking
-- sockets (every read has a timeout) while the Lua side waits; e:flush()
-- then returns once the exporter has taken the answer in.
local ffi = require "ffi"
local otlp = require "jararaca.core.otlp"
local config = require "jararaca.otlp.config"
require "spec.support.client" -- its cdefs: socket, bind, setsockopt, recv, send, close, ...

pcall(ffi.cdef, [[
  int listen(int fd, int backlog);
  int accept(int fd, void *addr, void *len);
]])
local C = ffi.C

local function raises(pattern, fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok)
  assert.matches(pattern, tostring(e))
end

-- A listening socket on 127.0.0.1 (a free port); accept and reads time out after 5 s.
local Collector = {}
Collector.__index = Collector

local function collector()
  local fd = C.socket(2, 1, 0)
  local sa = ffi.new("struct sockaddr_in_")
  sa.sin_family = 2
  sa.sin_port = 0
  sa.sin_addr = 0x0100007f
  assert(C.bind(fd, sa, ffi.sizeof(sa)) == 0)
  assert(C.listen(fd, 8) == 0)
  local len = ffi.new("socklen_t[1]", ffi.sizeof(sa))
  C.getsockname(fd, sa, len)
  local tv = ffi.new("struct timeval_", 5, 0)
  C.setsockopt(fd, 1, 20, tv, ffi.sizeof(tv)) -- SO_RCVTIMEO: accept gives up after 5 s
  return setmetatable({ fd = fd, port = C.ntohs(sa.sin_port), buf = "" }, Collector)
end

function Collector:url(path) return ("http://127.0.0.1:%d%s"):format(self.port, path or "/v1/traces") end

function Collector:accept()
  local c = C.accept(self.fd, nil, nil)
  assert(c >= 0, "the exporter did not connect")
  local tv = ffi.new("struct timeval_", 5, 0)
  C.setsockopt(c, 1, 20, tv, ffi.sizeof(tv))
  self.conn, self.buf = c, ""
end

local rbuf = ffi.new("char[65536]")
-- The next request on the accepted connection: { head =, body = }.
function Collector:request()
  while true do
    local hend = self.buf:find("\r\n\r\n", 1, true)
    if hend then
      local head = self.buf:sub(1, hend + 3)
      local len = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: *(%d+)") or "0")
      if #self.buf >= hend + 3 + len then
        local body = self.buf:sub(hend + 4, hend + 3 + len)
        self.buf = self.buf:sub(hend + 4 + len)
        return { head = head, body = body }
      end
    end
    local n = C.recv(self.conn, rbuf, 65536, 0)
    assert(n > 0, "no request from the exporter")
    self.buf = self.buf .. ffi.string(rbuf, n)
  end
end

function Collector:answer(status, body, extra)
  body = body or ""
  local s = ("HTTP/1.1 %d X\r\n%sContent-Length: %d\r\n\r\n%s"):format(status, extra or "", #body, body)
  assert(C.send(self.conn, s, #s, 0x4000) == #s)
end

-- Takes e's next POST on a new connection, answers 200, waits until e is
-- done with it. The request.
function Collector:take(e)
  self:accept()
  local req = self:request()
  self:answer(200)
  assert.is_true(e:flush(5))
  return req
end

function Collector:close()
  if self.conn then C.close(self.conn) end
  C.close(self.fd)
end

local function exporter(url, opts)
  local cfg = { traces = { url = url, max_batch = 3, schedule_delay_ms = 60000,
    headers = { { "X-Tenant", "acme" } } },
    resource = "\10\3res", scope_name = "jararaca", scope_version = "9.9" }
  for k, v in pairs(opts or {}) do cfg.traces[k] = v end
  return assert(otlp.new(cfg))
end

describe("jararaca.core.otlp", function()
  it("refuses a bad configuration with nil, message, \"invalid\", and raises on misuse", function()
    local e, msg, code = otlp.new { traces = { url = "ftp://x/v1/traces" } }
    assert.is_nil(e)
    assert.equal("invalid", code)
    assert.matches("http:// or https://", msg)
    e, msg, code = otlp.new {}
    assert.is_nil(e)
    assert.equal("invalid", code)
    assert.matches("no signal", msg)
    e, msg, code = otlp.new { logs = { url = "http://h/v1/logs", headers = { { "X-A", "1\r\nX-B: 2" } } } }
    assert.is_nil(e)
    assert.equal("invalid", code)
    assert.matches("line break", msg)
    raises("cfg.traces.max_batch must be a non%-negative integer",
      otlp.new, { traces = { url = "http://h/", max_batch = -1 } })
    raises("cfg.traces.url is missing", otlp.new, { traces = {} })
    raises("cfg.logs.compression must be \"none\" or \"gzip\"", otlp.new,
      { logs = { url = "http://h/", compression = "br" } })
    e, msg, code = otlp.new { traces = { enabled = false, url = "http://h/v1/traces" } }
    assert.is_nil(e)
    assert.equal("invalid", code)
    assert.matches("no signal", msg)
    raises("headers%[1%] must be {name, value}", otlp.new, { traces = { url = "http://h/", headers = { "X" } } })
  end)

  it("posts a full batch as an ExportTraceServiceRequest and counts it exported", function()
    local col = collector()
    local e = exporter(col:url())
    for i = 1, 3 do assert.is_true(e:push("traces", "span-" .. i)) end
    local req = col:take(e)
    assert.matches("^POST /v1/traces HTTP/1.1\r\n", req.head)
    assert.matches("\r\nContent%-Type: application/x%-protobuf\r\n", req.head)
    assert.matches("\r\nX%-Tenant: acme\r\n", req.head)
    -- resource_spans(1) { resource(1) "\10\3res", scope_spans(2) { scope(1) { "jararaca", "9.9" }, spans(2)... } }
    local scope = "\10\8jararaca\18\0039.9"
    local spans = "\18\6span-1\18\6span-2\18\6span-3"
    local scoped = "\10" .. string.char(#scope) .. scope .. spans
    local resourced = "\10\5\10\3res\18" .. string.char(#scoped) .. scoped
    assert.equal("\10" .. string.char(#resourced) .. resourced, req.body)
    local st = e:stats("traces")
    assert.same({ queued = 0, exported = 3, dropped = 0, failed = 0, rejected = 0, retries = 0, batches = 1, connects = 1,
      last_status = 200, last_error = "" }, st)
    e:close()
    col:close()
  end)

  -- one span pushed and sent; the collector answers each status in turn
  -- on the one connection; the stats once the exporter is done with it
  local function answered(...)
    local col = collector()
    local e = exporter(col:url())
    assert.is_true(e:push("traces", "a"))
    assert.is_true(e:send_now())
    col:accept()
    local req
    for _, a in ipairs({ ... }) do
      req = col:request()
      col:answer(a[1], a[2])
    end
    assert.is_true(e:flush(5))
    local st = e:stats("traces")
    e:close()
    col:close()
    return st, req
  end

  it("retries a 503 on the same connection and keeps the error text", function()
    local st, again = answered({ 503, "overloaded" }, { 200 })
    assert.matches("\18\1a$", again.body)
    assert.same({ 1, 1, 0, 200 }, { st.exported, st.retries, st.failed, st.last_status })
    assert.matches("HTTP 503 from 127.0.0.1:%d+: overloaded", st.last_error)
  end)

  it("fails a batch the collector refuses with 400, without retrying", function()
    local st = answered({ 400, "bad span" })
    assert.same({ 0, 0, 1, 400 }, { st.exported, st.retries, st.failed, st.last_status })
    assert.matches("HTTP 400 .*bad span", st.last_error)
  end)

  it("drops what does not fit the queue, times a flush out, and closes while a POST hangs", function()
    local col = collector()
    local e = exporter(col:url(), { max_batch = 1, max_queue = 2, timeout_ms = 60000, export_timeout_ms = 60000 })
    assert.is_true(e:push("traces", "first"))
    col:accept()
    col:request() -- the exporter now waits for an answer that will not come
    assert.is_true(e:push("traces", "b"))
    assert.is_true(e:push("traces", "c"))
    local ok, msg, code = e:push("traces", "d")
    assert.is_nil(ok)
    assert.equal("queue full", msg)
    assert.equal("full", code)
    local st = e:stats("traces")
    assert.equal(1, st.dropped)
    assert.equal(2, st.queued)
    ok, msg, code = e:flush(0.05)
    assert.is_nil(ok)
    assert.equal("timeout", code)
    assert.matches("pending", msg)
    e:close(0) -- returns although the POST would wait a minute
    e:close()  -- idempotent
    raises("closed", e.push, e, "traces", "x")
    raises("closed", e.stats, e, "traces")
    col:close()
  end)

  it("raises for a signal that is not enabled or unknown, and for bytes that are not a string", function()
    local col = collector()
    local e = exporter(col:url())
    raises("logs export is not enabled", e.push, e, "logs", "x")
    raises("invalid option 'spans'", e.push, e, "spans", "x")
    raises("string expected", e.push, e, "traces", nil)
    e:close()
    col:close()
  end)

  it("sends gzip bodies when asked", function()
    local col = collector()
    local e = exporter(col:url(), { compression = "gzip" })
    for i = 1, 3 do assert.is_true(e:push("traces", "span-" .. i)) end
    local req = col:take(e)
    assert.matches("\r\nContent%-Encoding: gzip\r\n", req.head)
    assert.equal("\31\139", req.body:sub(1, 2)) -- the gzip magic (test_otlp.c inflates it)
    assert.equal(3, e:stats("traces").exported)
    e:close()
    col:close()
  end)

  it("runs on what jararaca.otlp.config makes of the environment", function()
    local col = collector()
    local env = { OTEL_EXPORTER_OTLP_ENDPOINT = ("http://127.0.0.1:%d/"):format(col.port),
      OTEL_EXPORTER_OTLP_HEADERS = "authorization=Bearer%20t0k", OTEL_METRICS_EXPORTER = "none",
      OTEL_LOGS_EXPORTER = "none" }
    local cfg = assert(config.from(nil, function(k) return env[k] end, "tasks"))
    cfg.resource, cfg.scope_name = "", "jararaca"
    local e = assert(otlp.new(cfg))
    assert.is_true(e:push("traces", "s"))
    raises("metrics export is not enabled", e.push, e, "metrics", "m") -- OTEL_METRICS_EXPORTER=none
    e:send_now()
    local req = col:take(e)
    assert.matches("^POST /v1/traces HTTP/1.1\r\n", req.head)
    assert.matches("\r\nauthorization: Bearer t0k\r\n", req.head)
    assert.equal(1, e:stats("traces").exported)
    e:close()
    col:close()
  end)
end)
