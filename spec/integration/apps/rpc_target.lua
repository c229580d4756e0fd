-- The server spec/integration/rpc_spec.lua calls with the RPC client: it
-- answers with what it received (path, query, headers, body), fails on
-- purpose (503 a given number of times, 404 with a body, a body that is not
-- JSON or does not fit the client's schema), or answers late.
local j = require "jararaca"
local s = j.schema

local T = j.RestController("/t", { name = "RpcTarget" })

local SEEN_HEADERS = { "authorization", "x-api-key", "x-client", "traceparent", "tracestate", "baggage",
  "content-type", "accept" }

local function seen(req)
  local h = {}
  for _, name in ipairs(SEEN_HEADERS) do h[name] = req:header(name) end
  return { method = req.method, path = req.path, query = req.query_all, headers = h, body = req.body }
end

T.echo = j.Get("/echo/{id:int}", function(_, req)
  local r = seen(req)
  r.id = req.params.id
  return r
end)

T.echo_path = j.Get("/files/{rest:path}", function(_, req)
  return { rest = req.params.rest }
end)

T.create = j.Post("/items", { status = 201, body = s.object { { "name", s.string() } } }, function(_, req)
  local r = seen(req)
  r.name = req.json.name
  return r
end)

-- 503 for the first `fail` calls of each key, then 200 with the count.
local calls = {}
local function flaky(_, req)
  local key = req.params.key
  calls[key] = (calls[key] or 0) + 1
  if calls[key] <= (tonumber(req.query.fail) or 0) then
    error(j.HTTPError(503, "try again"))
  end
  return { calls = calls[key] }
end
T.flaky = j.Get("/flaky/{key}", flaky)
T.flaky_post = j.Post("/flaky/{key}", flaky)

T.calls = j.Get("/calls/{key}", function(_, req)
  return { calls = calls[req.params.key] or 0 }
end)

T.slow = j.Get("/slow", function(_, req)
  j.sleep(tonumber(req.query.s) or 1)
  return { slept = true }
end)

T.missing = j.Get("/missing", function()
  error(j.HTTPError(404, "no such thing"))
end)

T.not_json = j.Get("/not-json", function()
  return j.Response { status = 200, body = "{oops", content_type = "application/json" }
end)

T.wrong_shape = j.Get("/wrong-shape", function()
  return { id = "not a number" }
end)

return j.Microservice { name = "rpc_target", controllers = { T } }
