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

return j.Microservice {
  controllers = { C },
  interceptors = { make("a"), make("b") },
}
