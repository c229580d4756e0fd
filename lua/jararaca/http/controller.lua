--- jararaca.http.controller: declaring REST controllers and their routes.
--
--     local Tasks = j.RestController("/tasks", { inject = { tasks = "TasksRepository" } })
--
--     Tasks.list = j.Get(function(self, req) ... end)               -- GET  /tasks/
--     Tasks.get_item = j.Get("/{id:int}", function(self, req) ... end)
--     Tasks.create = j.Post("", { status = 201 }, function(self, req) ... end)  -- POST /tasks
--
-- `RestController(prefix, opts)` returns a class table
--     { __name, __controller = { prefix, inject, middlewares, tags, opts, defined_at },
--       inject = opts.inject, __index = <itself> }
-- built by the DI container like any class (`container:get_controller(cls)`).
-- prefix is "" or "/a/b" (no trailing slash; "/" means ""); opts: name
-- (default derived from the prefix: "/api/tasks" -> "ApiTasksController"; set
-- it when the name must be stable, e.g. for generated clients), inject,
-- middlewares (list), tags (list of strings), extends (a base controller
-- class: sets the metatable { __index = base }); other keys are kept in
-- `__controller.opts`.
--
-- Verb helpers `Get/Post/Put/Patch/Delete(path, [opts], fn)`,
-- `Route(method, path, [opts], fn)` and `WebSocketEndpoint(path, [opts], fn)`
-- (a GET with websocket = true) return a route descriptor
--     { __route = true, method, path, opts, fn, order, defined_at = "file:line" [, websocket] }
-- `order` is a global counter, so routes keep source order. path defaults to
-- "/" (route "<prefix>/", with a trailing slash, like the original); use ""
-- for the bare prefix. The descriptor is callable: `ctrl:get_item(req)` calls
-- fn(ctrl, req), handy in tests. opts (status, params, query, body,
-- response, ...) are kept as given: jararaca.http.route_spec checks and
-- reads them once the route's controller is known (at startup, for the
-- server, the OpenAPI document and gen-tsi alike). Path templates
-- `{name}` / `{name:int|uuid|str|path}` are checked by the router there too.
--
-- `collect(cls)` lists the routes of a controller in declaration order,
-- including inherited ones (metatable `__index` chain): a field of the same
-- name in a subclass overrides the base route; a plain function there keeps
-- the base's mapping with the new body; `false` removes the route.
-- @module jararaca.http.controller
local M = {}

local type, pairs, error, setmetatable, getmetatable, rawget =
  type, pairs, error, setmetatable, getmetatable, rawget
local format, upper = string.format, string.upper

---------------------------------------------------------------------------
-- Routes
---------------------------------------------------------------------------

local order_counter = 0

local Route_mt = {}
Route_mt.__index = Route_mt
function Route_mt.__call(route, self, ...)
  return route.fn(self, ...)
end
function Route_mt.__tostring(route)
  return "Route(" .. route.method .. " " .. route.path .. ")"
end

local function is_route(v)
  return type(v) == "table" and rawget(v, "__route") == true
end
M.is_route = is_route

local function check_path(path, what, level)
  if type(path) ~= "string" then
    error(format("%s: path must be a string, got %s", what, type(path)), level + 1)
  end
  if path ~= "" and path:sub(1, 1) ~= "/" then
    error(format("%s: path %q must start with \"/\" (or be \"\")", what, path), level + 1)
  end
  if path:find("//", 1, true) then
    error(format("%s: path %q contains \"//\"", what, path), level + 1)
  end
  if path:find("[%s%?#]") then
    error(format("%s: path %q contains a space, \"?\" or \"#\"", what, path), level + 1)
  end
end

-- Only the shape is checked here; the options themselves are checked once,
-- with the controller known, by jararaca.http.route_spec.
local function check_opts(opts, what, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(format("%s: opts must be a table, got %s", what, type(opts)), level + 1)
  end
  return opts
end

-- (path, opts, fn) | (path, fn) | (opts, fn) | (fn) ; level: caller's user level
local function make_route(method, what, a, b, c, level)
  level = level + 1
  local path, opts, fn
  if type(a) == "function" and b == nil and c == nil then
    fn = a
  elseif type(b) == "function" and c == nil then
    if type(a) == "table" then opts = a else path = a end
    fn = b
  else
    path, opts, fn = a, b, c
  end
  if type(fn) ~= "function" then
    error(format("%s: expected a handler function as the last argument, got %s", what, type(fn)), level)
  end
  if path == nil then path = "/" end
  check_path(path, what, level)
  opts = check_opts(opts, what, level)
  order_counter = order_counter + 1
  -- where the user declared it, for startup messages about its options
  local info = debug.getinfo(level, "Sl")
  return setmetatable({
    __route = true, method = method, path = path, opts = opts, fn = fn, order = order_counter,
    defined_at = info and (info.short_src .. ":" .. (info.currentline or 0)) or nil,
  }, Route_mt)
end

--- Generic route: `Route(method, path, [opts], fn)`; method is upper-cased.
function M.Route(method, a, b, c)
  if type(method) ~= "string" or not upper(method):find("^%u+$") then
    error("Route(method, ...): method must be an HTTP method name, got " ..
      (type(method) == "string" and format("%q", method) or type(method)), 2)
  end
  method = upper(method)
  local r = make_route(method, "Route(" .. method .. ")", a, b, c, 2)
  return r
end

local function verb(method)
  local what = method:sub(1, 1) .. method:sub(2):lower()
  return function(a, b, c)
    local r = make_route(method, what, a, b, c, 2)
    return r
  end
end

--- `WebSocketEndpoint(path, [opts], fn)`: a WebSocket endpoint, routed like
--- a GET (the upgrade request); fn(self, ws) gets the socket
--- (jararaca.ws.endpoint). Its options are checked by route_spec.
function M.WebSocketEndpoint(a, b, c)
  local r = make_route("GET", "WebSocketEndpoint", a, b, c, 2)
  r.websocket = true
  return r
end

--- `Get(path, [opts], fn)` etc.: route descriptors for the verb.
M.Get = verb("GET")
M.Post = verb("POST")
M.Put = verb("PUT")
M.Patch = verb("PATCH")
M.Delete = verb("DELETE")
M.Head = verb("HEAD")
M.Options = verb("OPTIONS")

---------------------------------------------------------------------------
-- Controllers
---------------------------------------------------------------------------

--- The class name a prefix gives: "/api/tasks" -> "ApiTasks" .. suffix
--- (default "Controller"; the RPC client's classes end in "Client").
local function derive_name(prefix, suffix)
  local name = ""
  for seg in prefix:gmatch("[^/]+") do
    if not seg:find("^{") then
      for word in seg:gmatch("%w+") do
        name = name .. word:sub(1, 1):upper() .. word:sub(2)
      end
    end
  end
  return name .. (suffix or "Controller")
end
M.derive_name = derive_name

--- Declare a controller class. See the module comment.
function M.RestController(prefix, opts)
  if prefix == nil then prefix = "" end
  if type(prefix) ~= "string" then
    error("RestController(prefix, opts): prefix must be a string, got " .. type(prefix), 2)
  end
  if prefix == "/" then prefix = "" end
  if prefix ~= "" then
    if prefix:sub(1, 1) ~= "/" then
      error(format("RestController: prefix %q must start with \"/\"", prefix), 2)
    end
    if prefix:sub(-1) == "/" then
      error(format("RestController: prefix %q must not end with \"/\"", prefix), 2)
    end
    if prefix:find("//", 1, true) or prefix:find("[%s%?#]") then
      error(format("RestController: prefix %q contains \"//\", a space, \"?\" or \"#\"", prefix), 2)
    end
  end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("RestController(prefix, opts): opts must be a table, got " .. type(opts), 2)
  end
  local name = opts.name
  if name ~= nil and (type(name) ~= "string" or name == "") then
    error("RestController: opts.name must be a non-empty string, got " .. type(name), 2)
  end
  if opts.inject ~= nil and type(opts.inject) ~= "table" then
    error("RestController: opts.inject must be a table { field = key }, got " .. type(opts.inject), 2)
  end
  if opts.middlewares ~= nil and type(opts.middlewares) ~= "table" then
    error("RestController: opts.middlewares must be a list, got " .. type(opts.middlewares), 2)
  end
  if opts.tags ~= nil then
    if type(opts.tags) ~= "table" then
      error("RestController: opts.tags must be a list of strings, got " .. type(opts.tags), 2)
    end
    for i = 1, #opts.tags do
      if type(opts.tags[i]) ~= "string" then
        error(format("RestController: opts.tags[%d] must be a string, got %s", i, type(opts.tags[i])), 2)
      end
    end
  end
  local base = opts.extends
  if base ~= nil and type(base) ~= "table" then
    error("RestController: opts.extends must be a controller table, got " .. type(base), 2)
  end
  local info = debug.getinfo(2, "Sl")
  local cls = {
    __name = name or derive_name(prefix),
    __controller = {
      prefix = prefix,
      inject = opts.inject,
      middlewares = opts.middlewares or {},
      tags = opts.tags or {},
      opts = opts,
      defined_at = info and (info.short_src .. ":" .. (info.currentline or 0)) or nil,
    },
    inject = opts.inject,
  }
  cls.__index = cls
  if base ~= nil then setmetatable(cls, { __index = base }) end
  return cls
end

--- True when v is a controller class made by RestController (its own
--- `__controller` field; instances and plain subtables do not count).
local function is_controller(v)
  return type(v) == "table" and type(rawget(v, "__controller")) == "table"
end
M.is_controller = is_controller

-- The next table up the inheritance chain of t, or nil.
local function parent(t)
  local mt = getmetatable(t)
  if type(mt) ~= "table" then return nil end
  local idx = rawget(mt, "__index")
  if type(idx) == "table" and idx ~= t then return idx end
  return nil
end

local function join(prefix, path)
  local full = prefix .. path
  if full == "" then return "/" end
  return full
end

--- The routes of a controller class, in declaration order:
--- { method, path, template, member, fn, opts, controller, order, defined_at, websocket }.
function M.collect(cls)
  if not is_controller(cls) then
    error("collect(cls): expected a controller made by RestController, got " ..
      (type(cls) == "table" and "a table without __controller" or type(cls)), 2)
  end
  local prefix = cls.__controller.prefix
  local seen = {}    -- member -> true once the most derived field is known
  local body = {}    -- member -> overriding plain function (waiting for a base route)
  local routes = {}
  local visited = {}
  local t = cls
  while t ~= nil and not visited[t] do
    visited[t] = true
    for member, v in pairs(t) do
      if type(member) == "string" and not seen[member] then
        if is_route(v) then
          seen[member] = true
          routes[#routes + 1] = {
            method = v.method,
            path = join(prefix, v.path),
            template = v.path,
            member = member,
            fn = body[member] or v.fn,
            opts = v.opts,
            websocket = v.websocket,
            controller = cls,
            order = v.order,
            defined_at = v.defined_at,
          }
        elseif type(v) == "function" then
          if body[member] == nil then body[member] = v end -- keep looking for a base mapping
        elseif v == false then
          seen[member] = true -- removes an inherited route
        else
          seen[member] = true -- any other value shadows the base field
        end
      end
    end
    t = parent(t)
  end
  -- Insertion sort by (order, member): runs at startup, but stays in Lua
  -- frames anyway (no comparator called from C).
  for i = 2, #routes do
    local r = routes[i]
    local j = i - 1
    while j >= 1 and (routes[j].order > r.order or
      (routes[j].order == r.order and routes[j].member > r.member)) do
      routes[j + 1] = routes[j]
      j = j - 1
    end
    routes[j + 1] = r
  end
  return routes
end

return M
