-- Specs for jararaca.http.controller: RestController, verb helpers, collect.
local controller = require("jararaca.http.controller")
local di = require("jararaca.di")

local RestController, Get, Post, Put, Patch, Delete, Route =
  controller.RestController, controller.Get, controller.Post, controller.Put,
  controller.Patch, controller.Delete, controller.Route
local collect = controller.collect

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- { "METHOD path member", ... } of a controller, in collect order.
local function summary(cls)
  local out = {}
  for i, r in ipairs(collect(cls)) do out[i] = r.method .. " " .. r.path .. " " .. r.member end
  return out
end

local function handler() end

describe("jararaca.http.controller", function()
  describe("RestController", function()
    it("returns a controller class table", function()
      local C = RestController("/tasks", { name = "TasksController", inject = { repo = "Repo" }, tags = { "tasks" } })
      assert.is_true(controller.is_controller(C))
      assert.are.equal("TasksController", C.__name)
      assert.are.equal("/tasks", C.__controller.prefix)
      assert.are.same({ repo = "Repo" }, C.inject)
      assert.are.same({ repo = "Repo" }, C.__controller.inject)
      assert.are.same({ "tasks" }, C.__controller.tags)
      assert.are.same({}, C.__controller.middlewares)
      assert.matches("controller_spec.lua:%d+$", C.__controller.defined_at)
    end)

    it("keeps middlewares and unknown options", function()
      local mw = {}
      local C = RestController("/x", { middlewares = { mw }, router_options = { deprecated = true } })
      assert.are.equal(mw, C.__controller.middlewares[1])
      assert.is_true(C.__controller.opts.router_options.deprecated)
    end)

    it("derives a name from the prefix", function()
      assert.are.equal("TasksController", RestController("/tasks").__name)
      assert.are.equal("ApiUserTasksController", RestController("/api/{uid}/user-tasks").__name)
      assert.are.equal("Controller", RestController("").__name)
    end)

    it("treats nil and \"/\" as the empty prefix", function()
      assert.are.equal("", RestController().__controller.prefix)
      assert.are.equal("", RestController("/").__controller.prefix)
    end)

    it("rejects bad prefixes at the caller", function()
      assert.matches('must start with "/"', err_of(RestController, "tasks"), 1, true)
      assert.matches('must not end with "/"', err_of(RestController, "/tasks/"), 1, true)
      assert.matches("prefix must be a string", err_of(RestController, 5))
      assert.matches('contains "//"', err_of(RestController, "/a//b"), 1, true)
      local ok, e = pcall(function() RestController("bad") end)
      assert.is_false(ok)
      assert.matches("controller_spec.lua:%d+:", e)
    end)

    it("rejects bad options", function()
      assert.matches("opts must be a table", err_of(RestController, "/x", "nope"))
      assert.matches("opts.name must be a non%-empty string", err_of(RestController, "/x", { name = 1 }))
      assert.matches("opts.inject must be a table", err_of(RestController, "/x", { inject = "Repo" }))
      assert.matches("opts.middlewares must be a list", err_of(RestController, "/x", { middlewares = 1 }))
      assert.matches("opts.tags%[1%] must be a string", err_of(RestController, "/x", { tags = { 1 } }))
      assert.matches("opts.extends must be a controller table", err_of(RestController, "/x", { extends = "B" }))
    end)

    it("is built by the DI container with its injected fields", function()
      local C = RestController("/t", { inject = { repo = "Repo" } })
      function C:count() return #self.repo end
      C.list = Get("/", function(self) return self:count() end)
      local c = di.Container.new({ di.ProviderSpec { provide = "Repo", use_value = { 1, 2, 3 } } })
      local inst = c:get_controller(C)
      assert.are.equal(3, inst:count())
      assert.are.equal(C, getmetatable(inst))
      assert.are.equal(inst, c:get_controller(C))
      assert.are.equal(3, collect(C)[1].fn(inst, {}))
    end)

    it("is_controller is false for instances and other values", function()
      local C = RestController("/t")
      local inst = setmetatable({}, C)
      assert.is_false(controller.is_controller(inst))
      assert.is_false(controller.is_controller({}))
      assert.is_false(controller.is_controller("C"))
    end)
  end)

  describe("route helpers", function()
    it("return route descriptors", function()
      local fn = function() end
      local r = Get("/items/{id:int}", { status = 200, summary = "one item" }, fn)
      assert.is_true(r.__route)
      assert.is_true(controller.is_route(r))
      assert.are.equal("GET", r.method)
      assert.are.equal("/items/{id:int}", r.path)
      assert.are.equal(fn, r.fn)
      assert.are.equal("one item", r.opts.summary)
      assert.is_number(r.order)
    end)

    it("give every verb its method", function()
      assert.are.equal("POST", Post("/", handler).method)
      assert.are.equal("PUT", Put("/", handler).method)
      assert.are.equal("PATCH", Patch("/", handler).method)
      assert.are.equal("DELETE", Delete("/", handler).method)
      assert.are.equal("HEAD", controller.Head("/", handler).method)
      assert.are.equal("OPTIONS", controller.Options("/", handler).method)
      assert.are.equal("PURGE", Route("purge", "/", handler).method)
      assert.are.equal("GET", Route("GET", "/x", { name = "x" }, handler).method)
    end)

    it("use an increasing global order", function()
      local a = Get("/a", handler)
      local b = Post("/b", handler)
      local c = Route("PUT", "/c", handler)
      assert.is_true(a.order < b.order)
      assert.is_true(b.order < c.order)
    end)

    it("accept (fn), (path, fn), (opts, fn) and (path, opts, fn)", function()
      local r1 = Get(handler)
      assert.are.equal("/", r1.path)
      assert.are.same({}, r1.opts)
      local r2 = Get("/x", handler)
      assert.are.equal("/x", r2.path)
      local r3 = Post({ status = 201 }, handler)
      assert.are.equal("/", r3.path)
      assert.are.equal(201, r3.opts.status)
      local r4 = Put("/y", { name = "put_y" }, handler)
      assert.are.equal("/y", r4.path)
      assert.are.equal("put_y", r4.opts.name)
    end)

    it("keep schema options as given", function()
      local params = { id = { type = "integer" } }
      local r = Get("/{id}", { params = params, query = {}, body = "B", response = "R", tags = { "t" } }, handler)
      assert.are.equal(params, r.opts.params)
      assert.are.equal("B", r.opts.body)
      assert.are.equal("R", r.opts.response)
      assert.are.same({ "t" }, r.opts.tags)
    end)

    it("are callable like methods", function()
      local C = RestController("/c")
      C.hello = Get("/hello", function(self, req) return self.greeting .. req.name end)
      local inst = setmetatable({ greeting = "hi " }, C)
      assert.are.equal("hi bob", inst:hello({ name = "bob" }))
    end)

    it("reject bad arguments at the caller", function()
      assert.matches("expected a handler function", err_of(Get, "/x"))
      assert.matches("expected a handler function", err_of(Get, "/x", {}, "nope"))
      assert.matches('must start with "/"', err_of(Get, "x", handler), 1, true)
      assert.matches("path must be a string", err_of(Get, 5, {}, handler))
      assert.matches('contains "//"', err_of(Get, "/a//b", handler), 1, true)
      assert.matches('contains a space, "?" or "#"', err_of(Get, "/a?b=1", handler), 1, true)
      assert.matches("opts must be a table", err_of(Get, "/x", 5, handler))
      assert.matches("method must be an HTTP method name", err_of(Route, "GE T", "/", handler))
      assert.matches("method must be an HTTP method name", err_of(Route, nil, "/", handler))
      local ok, e = pcall(function() Post("nope", handler) end)
      assert.is_false(ok)
      assert.matches("controller_spec.lua:%d+: Post:", e)
    end)
  end)

  describe("collect", function()
    it("lists routes in declaration order with member names", function()
      local C = RestController("/tasks")
      C.zeta = Get("/z", handler)
      C.alpha = Post("/a", handler)
      C.mid = Delete("/{id:uuid}", handler)
      C.helper = function() end -- plain methods are not routes
      C.data = { 1, 2 }
      assert.are.same({ "GET /tasks/z zeta", "POST /tasks/a alpha", "DELETE /tasks/{id:uuid} mid" }, summary(C))
    end)

    it("fills every field of a route", function()
      local fn = function() end
      local C = RestController("/tasks")
      C.get_item = Get("/items/{id:int}", { status = 202 }, fn)
      local r = collect(C)[1]
      assert.are.equal("GET", r.method)
      assert.are.equal("/tasks/items/{id:int}", r.path)
      assert.are.equal("/items/{id:int}", r.template)
      assert.are.equal("get_item", r.member)
      assert.are.equal(fn, r.fn)
      assert.are.equal(202, r.opts.status)
      assert.are.equal(C, r.controller)
      assert.is_number(r.order)
    end)

    it("joins prefixes and paths", function()
      local C = RestController("/tasks")
      C.root = Get(handler)
      C.bare = Post("", handler)
      C.sub = Put("/x", handler)
      assert.are.same({ "GET /tasks/ root", "POST /tasks bare", "PUT /tasks/x sub" }, summary(C))
      local R = RestController("")
      R.root = Get(handler)
      R.bare = Post("", handler)
      R.sub = Put("/x", handler)
      assert.are.same({ "GET / root", "POST / bare", "PUT /x sub" }, summary(R))
    end)

    it("orders by declaration even when fields are assigned out of order", function()
      local first = Get("/first", handler)
      local second = Get("/second", handler)
      local C = RestController("")
      C.b = second
      C.a = first
      assert.are.same({ "GET /first a", "GET /second b" }, summary(C))
    end)

    it("includes inherited routes and lets a subclass override them", function()
      local Base = RestController("/base")
      Base.list = Get("/", handler)
      Base.show = Get("/{id}", handler)
      Base.remove = Delete("/{id}", handler)
      local new_show = function() end
      local Sub = RestController("/sub", { extends = Base })
      Sub.show = Get("/{id}/details", new_show)
      Sub.extra = Post("/extra", handler)
      local routes = collect(Sub)
      assert.are.same({ "GET /sub/ list", "DELETE /sub/{id} remove", "GET /sub/{id}/details show", "POST /sub/extra extra" },
        summary(Sub))
      for _, r in ipairs(routes) do assert.are.equal(Sub, r.controller) end
      assert.are.equal(new_show, routes[3].fn)
      -- the base is untouched
      assert.are.same({ "GET /base/ list", "GET /base/{id} show", "DELETE /base/{id} remove" }, summary(Base))
    end)

    it("a plain function override keeps the base mapping with the new body", function()
      local Base = RestController("/b")
      Base.show = Get("/{id}", { status = 200 }, handler)
      local Sub = RestController("/s", { extends = Base })
      local body = function() return "sub" end
      Sub.show = body
      local r = collect(Sub)[1]
      assert.are.equal("GET /s/{id} show", r.method .. " " .. r.path .. " " .. r.member)
      assert.are.equal(body, r.fn)
      assert.are.equal(200, r.opts.status)
    end)

    it("false in a subclass removes an inherited route", function()
      local Base = RestController("/b")
      Base.keep = Get("/keep", handler)
      Base.drop = Get("/drop", handler)
      local Sub = RestController("/s", { extends = Base })
      Sub.drop = false
      assert.are.same({ "GET /s/keep keep" }, summary(Sub))
    end)

    it("walks multi-level inheritance (the last definition wins)", function()
      local A = RestController("/a")
      A.x = Get("/x-a", handler)
      A.y = Get("/y-a", handler)
      local B = RestController("/b", { extends = A })
      B.x = Get("/x-b", handler)
      local C = RestController("/c", { extends = B })
      C.y = Get("/y-c", handler)
      assert.are.same({ "GET /c/x-b x", "GET /c/y-c y" }, summary(C))
    end)

    it("supports inheritance set with a plain metatable and inherits inject", function()
      local Base = RestController("/b", { inject = { repo = "Repo" } })
      Base.list = Get("/", handler)
      local Sub = setmetatable(RestController("/s"), { __index = Base })
      assert.are.same({ "GET /s/ list" }, summary(Sub))
      assert.are.same({ repo = "Repo" }, Sub.inject)
      local c = di.Container.new({ di.ProviderSpec { provide = "Repo", use_value = "r" } })
      assert.are.equal("r", c:get_controller(Sub).repo)
    end)

    it("rejects non-controllers", function()
      assert.matches("expected a controller made by RestController", err_of(collect, {}))
      assert.matches("expected a controller made by RestController", err_of(collect, "C"))
    end)
  end)
end)
