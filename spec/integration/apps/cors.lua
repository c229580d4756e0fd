-- App-wide middlewares and j.cors (spec/integration/cors_spec.lua).
-- CORS_MODE selects the CORS options: "list" (default), "star", "regex".
local j = require "jararaca"
local s = j.schema

-- outermost: sees every request (404, 405, OPTIONS...) and stamps every answer
local function stamp(req, next)
  local res = next()
  res.headers["X-App"] = "1"
  res.headers["X-Seen"] = req.method .. " " .. req.path
  return res
end

-- innermost app middleware: may short-circuit or raise
local function gate(req, next)
  if req:header("x-block") then return { detail = "blocked" }, 403 end
  if req:header("x-explode") then error("middleware exploded") end
  return next()
end

local modes = {
  list = {
    allow_origins = { "https://app.example" }, allow_methods = { "GET", "POST" },
    allow_headers = { "X-Token" }, allow_credentials = true, expose_headers = { "X-Total" }, max_age = 120,
  },
  star = { allow_origins = { "*" }, allow_methods = { "*" }, allow_headers = { "*" } },
  regex = { allow_origin_regex = "https://[%w-]+%.example%.org" },
}

local C = j.RestController("/api", { name = "Cors" })
C.items = j.Get("/items", function(self, req)
  req.response.headers["X-Total"] = "0"
  return { items = j.json.array({}) }
end)
C.create = j.Post("/items", function() return { ok = true }, 201 end)
C.boom = j.Get("/boom", function() error("handler boom") end)
C.teapot = j.Get("/teapot", function() error(j.HTTPError(418, "tea", { ["X-Pot"] = "1" })) end)
C.typed = j.Get("/typed", { query = { n = s.integer() } }, function(self, req) return { n = req.query.n } end)
C.vary = j.Get("/vary", function() return "v", 200, { Vary = "Accept-Encoding" } end)

return j.Microservice {
  name = "cors",
  controllers = { C },
  middlewares = { stamp, j.cors(modes[os.getenv("CORS_MODE") or "list"]), gate },
  openapi = false,
}
