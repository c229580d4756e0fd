-- Process lifecycle: startup/shutdown hooks, graceful shutdown with an
-- in-flight request, and startup errors that name the file.
local client = require "spec.support.client"
local server = require "spec.support.server"
local process = require "jararaca.core.process"
local cjson = require "cjson"
local sched = require "jararaca.sched"
local ffi = require "ffi"

ffi.cdef [[
  int mkfifo(const char *path, unsigned int mode);
  int open(const char *path, int flags, ...);
  long write(int fd, const void *buf, size_t n);
  int ioctl(int fd, unsigned long request, ...);
]]
local O_WRONLY, O_NONBLOCK, ENXIO, TIOCOUTQ = 1, 2048, 6, 0x5411

-- Wait until the server's kernel acknowledged everything sent on c: the
-- bytes are then in the server's socket, whether or not it reads them.
-- (send() returning only means they left ours.)
local function delivered(c)
  local n, deadline = ffi.new("int[1]", 1), sched.clock() + 5
  repeat
    assert.equal(0, ffi.C.ioctl(c.fd, TIOCOUTQ, n))
    if n[0] == 0 then return end
    sched.sleep(0.005)
  until sched.clock() > deadline
  error("the server did not acknowledge the request", 2)
end

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- Run the binary to completion; returns status, combined output.
local function run(args, env)
  local out = os.tmpname()
  local argv = { server.bin }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv.stdout, argv.stderr, argv.env = out, out, env
  local p = assert(process.spawn(argv))
  local status = p:wait(20)
  local text = read(out)
  os.remove(out)
  return status, text
end

describe("lifecycle", function()
  it("enters interceptors in order, exits them in reverse, per request and per process", function()
    local trace = os.tmpname()
    local srv = server.start("spec/integration/apps/lifecycle.lua", {}, { TRACE_FILE = trace })
    local res = assert(client.request(srv.port, "GET", "/ping"))
    assert.equal(200, res.status)
    -- b's exit runs first (reverse): it sees the full path; a's exit also sees ">a>b"
    assert.equal(">a>b", res.headers["x-path-a"])
    assert.equal(">a>b", res.headers["x-path-b"])
    assert.equal(0, (srv:stop()))
    assert.equal("start a\nstart b\nstop b\nstop a\n", read(trace))
    os.remove(trace)
  end)

  it("lets an in-flight request finish on SIGTERM, closes idle connections, exits 0", function()
    local trace = os.tmpname()
    -- one process (no watchdog master): the handler's SIGTERM to its own
    -- process stops the server; under a master it would recycle the worker
    local srv = server.start("spec/integration/apps/lifecycle.lua", { "--grace-period", "5", "--worker-timeout", "0" },
      { TRACE_FILE = trace })
    local idle = assert(client.connect(srv.port))
    idle:send(client.format("GET", "/ping"))
    assert.equal(200, assert(idle:read_response()).status)
    local busy = assert(client.connect(srv.port))
    busy:send(client.format("GET", "/slow-then-stop")) -- SIGTERM from inside its handler
    local res = assert(busy:read_response())
    assert.equal(200, res.status)
    assert.same({ done = true }, cjson.decode(res.body))
    assert.equal("close", res.headers["connection"])
    assert.is_true(idle:closed(2))
    local status = srv:wait(10)
    assert.equal(0, status)
    -- no longer listening
    assert.is_nil(client.connect(srv.port))
    assert.truthy(read(trace):find("stop a", 1, true))
    os.remove(trace)
  end)

  it("on SIGTERM answers a request pipelined behind the in-flight one, the last with Connection: close", function()
    local trace = os.tmpname()
    local srv = server.start("spec/integration/apps/lifecycle.lua", { "--grace-period", "5", "--worker-timeout", "0" },
      { TRACE_FILE = trace })
    local c = assert(client.connect(srv.port))
    -- both requests in one write: the second is in the server's buffer while
    -- the first (which sends SIGTERM) is being handled
    c:send(client.format("GET", "/slow-then-stop") .. client.format("GET", "/ping"))
    local r1 = assert(c:read_response())
    assert.equal(200, r1.status)
    assert.same({ done = true }, cjson.decode(r1.body))
    assert.equal("keep-alive", r1.headers["connection"])
    local r2 = assert(c:read_response())
    assert.equal(200, r2.status)
    assert.same({ pong = true }, cjson.decode(r2.body))
    assert.equal("close", r2.headers["connection"])
    assert.is_true(c:closed(2))
    assert.equal(0, (srv:wait(10)))
    assert.is_nil(client.connect(srv.port))
    os.remove(trace)
  end)

  it("on SIGTERM answers a request already in an idle connection's socket, with Connection: close", function()
    local trace, fifo = os.tmpname(), os.tmpname()
    os.remove(fifo)
    assert.equal(0, ffi.C.mkfifo(fifo, tonumber("600", 8)))
    local srv = server.start("spec/integration/apps/lifecycle.lua", { "--grace-period", "5", "--worker-timeout", "0" },
      { TRACE_FILE = trace, BLOCK_FIFO = fifo })
    -- The FIFO's write end opens once a handler holds the read end: from
    -- then on that handler blocks the server's loop until we write a line.
    local function blocked_handler()
      local fd, deadline = -1, sched.clock() + 10
      while fd < 0 and sched.clock() < deadline do
        fd = ffi.C.open(fifo, O_WRONLY + O_NONBLOCK)
        if fd < 0 then
          assert.equal(ENXIO, ffi.errno()) -- no reader yet
          sched.sleep(0.01)
        end
      end
      assert.is_true(fd >= 0, "no handler opened the FIFO; server log:\n" .. srv:output())
      return fd
    end
    local function release(fd)
      assert.equal(3, tonumber(ffi.C.write(fd, "go\n", 3)))
      ffi.C.close(fd)
    end
    -- two keep-alive connections, idle after one answer each
    local idle, b = assert(client.connect(srv.port)), assert(client.connect(srv.port))
    for _, c in ipairs { idle, b } do
      c:send(client.format("GET", "/ping"))
      assert.equal("keep-alive", assert(c:read_response()).headers["connection"])
    end
    -- a: sends SIGTERM, then blocks; b's next request arrives meanwhile
    local a = assert(client.connect(srv.port))
    a:send(client.format("GET", "/stop-and-block"))
    local fd = blocked_handler()
    b:send(client.format("GET", "/block"))
    delivered(b)
    release(fd)
    assert.same({ released = "go" }, cjson.decode(assert(a:read_response()).body))
    -- The loop now sees b's request and the signal together; libuv runs
    -- signal watchers after the other events of a poll, so b's handler
    -- blocks before the shutdown starts. idle's next request goes into its
    -- socket now: the shutdown finds it there, unread.
    fd = blocked_handler()
    assert.is_true(idle:send(client.format("GET", "/ping")))
    delivered(idle)
    release(fd)
    assert.same({ released = "go" }, cjson.decode(assert(b:read_response()).body))
    local res = assert(idle:read_response())
    assert.equal(200, res.status)
    assert.same({ pong = true }, cjson.decode(res.body))
    assert.equal("close", res.headers["connection"])
    assert.is_true(idle:closed(2))
    assert.is_true(a:closed(2))
    assert.is_true(b:closed(2))
    assert.equal(0, (srv:wait(10)))
    os.remove(trace)
    os.remove(fifo)
  end)

  it("force-closes requests still running after the grace period", function()
    local trace = os.tmpname()
    local srv = server.start("spec/integration/apps/lifecycle.lua",
      { "--grace-period", "0.1", "--worker-timeout", "0" }, { TRACE_FILE = trace })
    local busy = assert(client.connect(srv.port))
    busy:send(client.format("GET", "/slow-then-stop")) -- 0.5 s handler, 0.1 s grace
    assert.is_true(busy:closed(3))
    assert.equal(0, (srv:wait(10)))
    os.remove(trace)
  end)
end)

describe("bad app files", function()
  it("a missing file exits non-zero and says so", function()
    local status, out = run({ "server", "spec/integration/apps/does_not_exist.lua" })
    assert.equal(1, status)
    assert.truthy(out:find("cannot open app file 'spec/integration/apps/does_not_exist.lua'", 1, true), out)
  end)

  it("a syntax error names the file and line", function()
    local status, out = run({ "server", "spec/integration/apps/syntax_error.lua" })
    assert.equal(1, status)
    assert.truthy(out:find("syntax_error.lua:%d+:"), out)
  end)

  it("a file that does not return a Microservice is refused", function()
    local status, out = run({ "server", "spec/integration/apps/not_microservice.lua" })
    assert.equal(1, status)
    assert.truthy(out:find("must return jararaca.Microservice", 1, true), out)
  end)

  it("a missing provider is a startup error naming consumer and token", function()
    local status, out = run({ "server", "spec/integration/apps/missing_provider.lua", "--port", "0" })
    assert.equal(1, status)
    assert.truthy(out:find('no provider for "TasksRepository" (needed by NeedsRepo.repo)', 1, true), out)
  end)
end)

describe("command line", function()
  it("prints help and the version", function()
    local status, out = run({ "--help" })
    assert.equal(0, status)
    assert.truthy(out:find("jararaca server APP.lua", 1, true))
    status, out = run({ "version" })
    assert.equal(0, status)
    assert.truthy(out:match("^jararaca %d+%.%d+%.%d+"))
  end)

  it("rejects unknown commands and options, and bad values, with exit 2", function()
    local status, out = run({ "frobnicate" })
    assert.equal(2, status)
    assert.truthy(out:find("unknown command 'frobnicate'", 1, true))
    status, out = run({ "server", "examples/hello/app.lua", "--nope" })
    assert.equal(2, status)
    assert.truthy(out:find("unknown option --nope", 1, true))
    status, out = run({ "server", "examples/hello/app.lua", "--port", "abc" })
    assert.equal(2, status)
    assert.truthy(out:find("--port: expected a non-negative integer, got 'abc'", 1, true))
    status, out = run({ "server", "examples/hello/app.lua" }, { JARARACA_WORKERS = "zero" })
    assert.equal(2, status)
    assert.truthy(out:find("JARARACA_WORKERS", 1, true))
  end)

  it("takes options from the environment", function()
    local port = client.free_port()
    local srv = server.start("examples/hello/app.lua", {}, { JARARACA_ACCESS_LOG = "1" })
    assert.equal(200, assert(client.request(srv.port, "GET", "/hello?name=env")).status)
    srv.proc:kill("SIGTERM")
    srv:wait(10)
    assert.truthy(srv:output():find("GET /hello?name=env 200", 1, true), srv:output())
    os.remove(srv.log)
    local _ = port
  end)
end)
