-- Middlewares per controller and per route, with typed inputs.
local j = require "jararaca"
local s = require "jararaca.schema"

local function tag(name)
  return function(req, next)
    req.trail = (req.trail or "") .. ">" .. name
    local res = next()
    res.headers["X-After-" .. name] = req.trail
    return res
  end
end

-- an auth middleware that short-circuits before input validation
local function auth(req, next)
  if req:header("authorization") ~= "Bearer ok" then
    return { detail = "not authenticated" }, 401
  end
  return next()
end

local Timing = {}
function Timing:around(req, next)
  local res = next()
  res.headers["X-Class-Middleware"] = "1"
  return res
end

local C = j.RestController("/mw", { name = "MwController", middlewares = { tag("c1"), tag("c2") } })

C.open = j.Get("/open", { middlewares = { tag("r1"), Timing } }, function(self, req)
  return { trail = req.trail }
end)

C.secured = j.Post("/secured", {
  middlewares = { auth },
  body = s.object { { "n", s.integer { minimum = 1 } } },
}, function(self, req)
  return { n = req.json.n, trail = req.trail }
end)

-- integers beyond 2^53 stay exact end to end
local N = j.RestController("/num", { name = "NumController" })
N.echo = j.Post("/echo", {
  body = s.object { { "v", s.integer() }, { "list", s.array(s.integer()):optional() } },
  response = s.object { { "v", s.integer() }, { "list", s.array(s.integer()):optional() } },
}, function(self, req) return req.json end)

return j.Microservice { controllers = { C, N }, openapi = false }
