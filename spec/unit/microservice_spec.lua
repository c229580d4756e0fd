-- Specs for jararaca.microservice: the application declaration.
local microservice = require("jararaca.microservice")
local di = require("jararaca.di")
local controller = require("jararaca.http.controller")

local Microservice = microservice.Microservice

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("jararaca.microservice", function()
  it("returns a marked table with the declared lists", function()
    local Repo = { inject = {} }
    local spec = di.ProviderSpec { provide = "X", use_value = 1 }
    local Ctrl = controller.RestController("/t")
    local icpt = { enter = function() end }
    local factory = function() return icpt end
    local app = Microservice {
      name = "tasks",
      providers = { spec, Repo },
      controllers = { Ctrl },
      interceptors = { icpt, factory },
    }
    assert.is_true(microservice.is_microservice(app))
    assert.are.equal("tasks", app.name)
    assert.are.same({ spec, Repo }, app.providers)
    assert.are.same({ Ctrl }, app.controllers)
    assert.are.same({ icpt, factory }, app.interceptors)
    assert.are.equal("Microservice(tasks)", tostring(app))
  end)

  it("defaults every list to empty and the name to nil", function()
    local app = Microservice {}
    assert.are.same({}, app.providers)
    assert.are.same({}, app.controllers)
    assert.are.same({}, app.interceptors)
    assert.is_nil(app.name)
  end)

  it("copies the lists (later edits of the declaration do not leak in)", function()
    local list = { controller.RestController("/a") }
    local app = Microservice { controllers = list }
    list[2] = controller.RestController("/b")
    assert.are.equal(1, #app.controllers)
  end)

  it("runs nothing when declared", function()
    local called = false
    local Svc = { inject = {} }
    function Svc.new() called = true; return {} end
    Microservice {
      providers = { Svc, di.ProviderSpec { provide = "F", use_factory = function() called = true; return {} end } },
      interceptors = { function() called = true; return {} end, { startup = function() called = true end } },
    }
    assert.is_false(called)
  end)

  it("is_microservice is false for other tables", function()
    assert.is_false(microservice.is_microservice({ providers = {} }))
    assert.is_false(microservice.is_microservice(nil))
  end)

  it("rejects a non-table argument", function()
    assert.matches("expects a table, got a string", err_of(Microservice, "app"))
  end)

  it("rejects unknown fields, and accepts registered extension fields", function()
    assert.matches('unknown field "controller"', err_of(Microservice, { controller = {} }), 1, true)
    microservice.fields.http_options = true
    local app = Microservice { http_options = { port = 1 } }
    assert.are.equal(1, app.http_options.port)
    microservice.fields.http_options = nil
  end)

  it("validates the name", function()
    assert.matches("Microservice.name must be a non%-empty string", err_of(Microservice, { name = 5 }))
    assert.matches("Microservice.name must be a non%-empty string", err_of(Microservice, { name = "" }))
  end)

  it("names the field and the index of a bad controller", function()
    local C = controller.RestController("/a")
    assert.are.equal("Microservice.controllers[2] is a string, expected a controller table",
      (err_of(Microservice, { controllers = { C, "Other" } }):gsub("^.-:%d+: ", "")))
  end)

  it("reports the error at the caller's line", function()
    local ok, e = pcall(function() Microservice { controllers = { "x" } } end)
    assert.is_false(ok)
    assert.matches("microservice_spec.lua:%d+: Microservice.controllers%[1%]", e)
    ok, e = pcall(function() Microservice { controllers = "x" } end)
    assert.matches("microservice_spec.lua:%d+: Microservice.controllers must be a list", e)
  end)

  it("takes app-wide middlewares: functions or tables with around", function()
    local f = function(req, nxt) return nxt() end
    local t = { around = function(self, req, nxt) return nxt() end }
    assert.are.same({ f, t }, Microservice { middlewares = { f, t } }.middlewares)
    assert.are.same({}, Microservice {}.middlewares)
    assert.are.equal("Microservice.middlewares[2] is a table, expected a function(req, next) or a table with around(self, req, next)",
      (err_of(Microservice, { middlewares = { f, {} } }):gsub("^.-:%d+: ", "")))
    assert.matches("microservice_spec.lua:%d+: Microservice.middlewares must be a list",
      err_of(function() Microservice { middlewares = f } end))
  end)

  it("rejects duplicate controllers", function()
    local C = controller.RestController("/a")
    assert.matches("Microservice.controllers%[3%] is the same controller as controllers%[1%]",
      err_of(Microservice, { controllers = { C, controller.RestController("/b"), C } }))
  end)

  it("rejects tokens, specs and routes as controllers", function()
    assert.matches("controllers%[1%] is a Token", err_of(Microservice, { controllers = { di.Token("C") } }))
    assert.matches("controllers%[1%] is a ProviderSpec",
      err_of(Microservice, { controllers = { di.ProviderSpec { provide = "x", use_value = 1 } } }))
    assert.matches("controllers%[1%] is a route descriptor",
      err_of(Microservice, { controllers = { controller.Get("/", function() end) } }))
  end)

  it("validates providers", function()
    assert.matches("Microservice.providers%[2%] is a number, expected a ProviderSpec or a class table",
      err_of(Microservice, { providers = { {}, 42 } }))
    assert.matches("Microservice.providers%[1%] is a Token", err_of(Microservice, { providers = { di.Token("T") } }))
  end)

  it("validates interceptors", function()
    assert.matches("Microservice.interceptors%[1%] is a string, expected an interceptor",
      err_of(Microservice, { interceptors = { "session" } }))
    assert.matches("Microservice.interceptors%[1%] is a Token", err_of(Microservice, { interceptors = { di.Token("I") } }))
  end)

  it("detects holes in a list (a nil entry, e.g. a misspelt name)", function()
    local A, B = controller.RestController("/a"), controller.RestController("/b")
    assert.matches("Microservice.controllers%[2%] is nil",
      err_of(Microservice, { controllers = { A, nil, B } }))
  end)

  it("rejects lists with non-index keys", function()
    assert.matches('Microservice.providers must be a list, it has the key "x"',
      err_of(Microservice, { providers = { x = {} } }), 1, true)
    assert.matches("Microservice.interceptors must be a list, got a ProviderSpec",
      err_of(Microservice, { interceptors = di.ProviderSpec { provide = "x", use_value = 1 } }))
  end)

  it("feeds a container and the interceptor lifecycle", function()
    local interceptors = require("jararaca.interceptors")
    local Ctrl = controller.RestController("/t", { inject = { cfg = di.Token("Cfg") } })
    local app = Microservice {
      providers = { di.ProviderSpec { provide = di.Token("Cfg"), use_value = { v = 1 } } },
      controllers = { Ctrl },
      interceptors = { { startup = function(_, a, c) c:register("started_by", a.name) end } },
      name = "demo",
    }
    local c = di.Container.new(app.providers)
    c:start("before")
    local lc = interceptors.start(app, c, app.interceptors)
    c:start("after")
    assert.are.equal("demo", c:get("started_by"))
    assert.are.equal(1, c:get_controller(app.controllers[1]).cfg.v)
    assert.is_true(lc:stop())
  end)
end)
