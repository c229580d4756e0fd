-- Two controllers with the same routes: MapController declares each input
-- group (params, query, headers, body) as a field map { name = schema },
-- ObjectController as an object schema with the same fields in the same
-- (sorted) order; query is a named object, as `s.object("Q", ...)` in the
-- issue. The server, the OpenAPI document and gen-tsi must treat them alike
-- (spec/integration/route_spec_spec.lua). ExtraController has the
-- `responses` forms and the optional bodies.
local j = require "jararaca"
local s = j.schema

local Thing = s.object("FormsThing", { { "id", s.integer() }, { "label", s.string() } })
local Problem = s.object("FormsProblem", { { "detail", s.string() } })

local FIELDS = {
  params = { { "id", s.uuid() }, { "n", s.integer { minimum = 1 } } },
  query = {
    { "page", s.integer { minimum = 0 }:default(0) },
    { "q", s.string { min_length = 2 } },
    { "tag", s.array(s.string()):optional() },
  },
  headers = { { "x-count", s.integer() }, { "x-note", s.string():optional() } },
  body = { { "label", s.string { min_length = 1 } }, { "size", s.integer():default(1) } },
}

local function as_map(list)
  local m = {}
  for _, f in ipairs(list) do m[f[1]] = f[2] end
  return m
end

local function routes(name, prefix, form)
  local C = j.RestController(prefix, { name = name })
  C.by_params = j.Get("/p/{id}/{n:int}", { params = form("params") }, function(_, req) return req.params end)
  C.by_query = j.Get("/q", { query = form("query") }, function(_, req) return req.query end)
  C.by_headers = j.Get("/h", { headers = form("headers") }, function(_, req) return req.header_params end)
  C.by_body = j.Post("/b", { body = form("body") }, function(_, req) return req.json end)
  return C
end

local Map = routes("MapController", "/map", function(group) return as_map(FIELDS[group]) end)
local Object = routes("ObjectController", "/object", function(group)
  if group == "query" then return s.object("FormsQuery", FIELDS.query) end
  return s.object(FIELDS[group])
end)

local Extra = j.RestController("/extra", { name = "ExtraController" })

-- every documented `responses` form
Extra.answers = j.Get("/a/{id:int}", {
  responses = {
    [200] = Thing,
    [404] = "no such thing",
    [409] = { description = "already taken", schema = Problem },
    ["5XX"] = { description = "server trouble" },
  },
}, function(_, req)
  if req.params.id == 404 then error(j.HTTPError(404, "no such thing")) end
  if req.params.id == 409 then error(j.HTTPError(409, "already taken")) end
  return { id = req.params.id, label = "thing " .. req.params.id }
end)

Extra.maybe = j.Post("/maybe", { body = s.object { { "label", s.string() } }:optional() },
  function(_, req) return { got = req.json ~= nil, label = req.json and req.json.label or nil } end)

Extra.defaulted = j.Post("/defaulted", { body = s.object { { "label", s.string() } }:default({ label = "none" }) },
  function(_, req) return req.json end)

return j.Microservice {
  name = "route forms",
  controllers = { Map, Object, Extra },
}
