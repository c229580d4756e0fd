-- Interceptors with process lifecycles that do I/O (sleep) and write a trace file.
local j = require "jararaca"
local sys = require "jararaca.core.sys"
local trace = assert(os.getenv("TRACE_FILE"), "TRACE_FILE not set")

local function note(s)
  local f = assert(io.open(trace, "a"))
  f:write(s, "\n")
  f:close()
end

local function make(name)
  return {
    startup = function() j.sleep(0.01); note("start " .. name) end,
    shutdown = function() j.sleep(0.01); note("stop " .. name) end,
    enter = function(self, ctx) ctx.path = (ctx.path or "") .. ">" .. name end,
    exit = function(self, ctx, err)
      ctx.request.response.headers["X-Path-" .. name] = ctx.path
    end,
  }
end

local C = j.RestController("", { name = "Lc" })
C.ping = j.Get("/ping", function(self, req) return { pong = true } end)
C.slow = j.Get("/slow", function(self, req) j.sleep(0.5); return { done = true } end)
-- Signals its own server to stop while it is in flight: specs need no timing
-- guess for "the request reached its handler".
C.slow_then_stop = j.Get("/slow-then-stop", function(self, req)
  sys.kill(sys.pid(), "SIGTERM")
  j.sleep(0.5)
  return { done = true }
end)

-- Block the whole process (a blocking read on the FIFO named by BLOCK_FIFO)
-- until the spec writes a line, so the spec can put requests into sockets
-- that the server does not read meanwhile. /stop-and-block first signals its
-- own server to stop.
local function block()
  local fifo = assert(os.getenv("BLOCK_FIFO"), "BLOCK_FIFO not set")
  while true do
    local f = assert(io.open(fifo, "r"))
    local line = f:read("*l")
    f:close()
    -- EOF without a line: the open met the spec's previous write end just
    -- before it was closed; wait for the next writer
    if line then return { released = line } end
  end
end
C.block = j.Get("/block", block)
C.stop_and_block = j.Get("/stop-and-block", function()
  sys.kill(sys.pid(), "SIGTERM")
  return block()
end)

return j.Microservice {
  controllers = { C },
  interceptors = { make("a"), make("b") },
}
