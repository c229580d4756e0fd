-- The app the integration specs run with the real binary.
local j = require "jararaca"
local sys = require "jararaca.core.sys"

local Counter = { __name = "Counter" }
Counter.__index = Counter
function Counter.new() return setmetatable({ n = 0 }, Counter) end
function Counter:next() self.n = self.n + 1; return self.n end

-- An interceptor that tags every response and records the order of hooks.
local Tagger = {}
function Tagger:enter(ctx) ctx.tagged = true end
function Tagger:exit(ctx, err)
  local resp = ctx.request and ctx.request.response
  if resp then resp.headers["X-Tagged"] = "yes" end
end

local Api = j.RestController("", { name = "Api", inject = { counter = Counter } })

Api.hello = j.Get("/hello", function(self, req)
  return { message = "Hello " .. (req.query.name or "world") }
end)

Api.sleep = j.Get("/sleep", function(self, req)
  j.sleep(tonumber(req.query.s) or 0.1)
  return { slept = tonumber(req.query.s) or 0.1 }
end)

Api.boom = j.Get("/boom", function(self, req)
  error("kaboom in handler")
end)

Api.teapot = j.Get("/teapot", function(self, req)
  error(j.HTTPError(418, "short and stout", { ["X-Pot"] = "1" }))
end)

Api.echo = j.Post("/echo", function(self, req)
  return { body = req.body, json = req.json, ct = req:header("content-type") }
end)

Api.info = j.Get("/info/{id:int}/{name}", function(self, req)
  local ctx = j.use_app_context()
  return {
    id = req.params.id, name = req.params.name, query = req.query_all,
    headers = { x_multi = req.headers["x-multi"], host = req:header("HOST") },
    kind = ctx.kind, member = ctx.member, tagged = ctx.tagged,
    request_id = req.id, remote = req.remote_addr,
  }
end)

Api.created = j.Post("/created", { status = 201 }, function(self, req)
  return { ok = true }
end)

Api.nothing = j.Delete("/nothing", function(self, req) end)

Api.text = j.Get("/text", function(self, req)
  req.response.headers["X-Extra"] = "1"
  return "plain text", 202
end)

Api.bad_header = j.Get("/bad-header", function(self, req)
  return "x", 200, { ["X-Bad"] = "a\r\nInjected: 1" }
end)

Api.bad_detail = j.Get("/bad-detail", function(self, req)
  error(j.HTTPError(400, { f = function() end }))
end)

Api.bad_status = j.Get("/bad-status", function(self, req)
  return "x", 1000
end)

Api.count = j.Get("/count", function(self, req)
  return { n = self.counter:next() }
end)

Api.pid = j.Get("/pid", function(self, req)
  return { pid = sys.pid() }
end)

Api.crash = j.Post("/crash", function(self, req)
  -- ends this worker process abruptly (used by the --workers spec)
  sys.kill(sys.pid(), "SIGKILL")
end)

Api.gather = j.Get("/gather", function(self, req)
  local t0 = j.now()
  local a, b, c = j.gather(
    function() j.sleep(0.2); return 1 end,
    function() j.sleep(0.2); return 2 end,
    function() j.sleep(0.2); return 3 end)
  return { sum = a + b + c, elapsed = j.now() - t0 }
end)

return j.Microservice {
  providers = { j.ProviderSpec { provide = Counter, use_factory = Counter.new } },
  controllers = { Api },
  interceptors = { Tagger },
}
