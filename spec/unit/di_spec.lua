-- Specs for jararaca.di (the container) and jararaca.errors.
local di = require("jararaca.di")
local context = require("jararaca.context")
local errors = require("jararaca.errors")

local ProviderSpec, Token, Container = di.ProviderSpec, di.Token, di.Container

-- Message of an error raised by fn(...), as a string.
local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- Run fn inside a coroutine bound to a fresh transaction context.
local function in_tx(container, fn)
  local ctx = context.new("test", container)
  local co = coroutine.create(function()
    context.bind(ctx)
    return fn(ctx)
  end)
  local ok, a, b = coroutine.resume(co)
  if not ok then error(a, 0) end
  return a, b, ctx
end

describe("jararaca.di", function()
  describe("Token", function()
    it("interns tokens by name", function()
      assert.are.equal(Token("AppConfig"), Token("AppConfig"))
      assert.are_not.equal(Token("AppConfig"), Token("Other"))
    end)

    it("prints as Token(name) and is recognised by is_token", function()
      assert.are.equal("Token(AppConfig)", tostring(Token("AppConfig")))
      assert.is_true(di.is_token(Token("X")))
      assert.is_false(di.is_token({ name = "X" }))
      assert.is_false(di.is_token("X"))
    end)

    it("is read-only", function()
      assert.has_error(function() Token("RO").name = "other" end)
      assert.are.equal("RO", Token("RO").name)
    end)

    it("rejects a non-string or empty name", function()
      assert.matches("non%-empty string", err_of(Token, 42))
      assert.matches("non%-empty string", err_of(Token, ""))
    end)

    it("is usable as a key", function()
      local c = Container.new({ ProviderSpec { provide = Token("Cfg"), use_value = { port = 80 } } })
      assert.are.equal(80, c:get(Token("Cfg")).port)
    end)
  end)

  describe("describe", function()
    it("describes strings, tokens and classes", function()
      assert.are.equal("Repo", di.describe("Repo"))
      assert.are.equal("Token(T)", di.describe(Token("T")))
      assert.are.equal("MyClass", di.describe({ __name = "MyClass" }))
      assert.matches("^<class table: 0x%x+>$", di.describe({}))
    end)

    it("bypasses a __tostring metamethod for anonymous classes", function()
      local cls = setmetatable({}, { __tostring = function() return "nope" end })
      assert.matches("^<class table: 0x%x+>$", di.describe(cls))
      assert.are.equal("nope", tostring(cls)) -- metamethod restored
    end)
  end)

  describe("ProviderSpec", function()
    it("returns a spec object", function()
      local s = ProviderSpec { provide = "X", use_value = 1 }
      assert.is_true(di.is_provider_spec(s))
      assert.are.equal("X", s.provide)
      assert.are.equal("singleton", s.scope)
      assert.is_false(s.after_interceptors)
      assert.is_false(di.is_provider_spec({ provide = "X" }))
    end)

    it("needs one of use_value, use_factory, use_class", function()
      assert.matches("ProviderSpec for X needs one of use_value, use_factory, use_class",
        err_of(ProviderSpec, { provide = "X" }), 1, true)
    end)

    it("rejects more than one kind", function()
      assert.matches("more than one",
        err_of(ProviderSpec, { provide = "X", use_value = 1, use_factory = function() end }))
    end)

    it("needs a valid provide key", function()
      assert.matches("needs a provide key", err_of(ProviderSpec, { use_value = 1 }))
      assert.matches("provide is a number", err_of(ProviderSpec, { provide = 1, use_value = 1 }))
      assert.matches("provide is an empty string", err_of(ProviderSpec, { provide = "", use_value = 1 }))
    end)

    it("validates field types", function()
      assert.matches("use_factory must be a function",
        err_of(ProviderSpec, { provide = "X", use_factory = 3 }))
      assert.matches("use_class must be a class table",
        err_of(ProviderSpec, { provide = "X", use_class = "C" }))
      assert.matches("scope must be",
        err_of(ProviderSpec, { provide = "X", use_factory = function() end, scope = "request" }))
      assert.matches("after_interceptors must be a boolean",
        err_of(ProviderSpec, { provide = "X", use_factory = function() end, after_interceptors = 1 }))
      assert.matches("inject must be a table",
        err_of(ProviderSpec, { provide = "X", use_factory = function() end, inject = "Y" }))
      assert.matches("inject.y is a number",
        err_of(ProviderSpec, { provide = "X", use_factory = function() end, inject = { y = 5 } }))
      assert.matches("inject makes no sense with use_value",
        err_of(ProviderSpec, { provide = "X", use_value = 1, inject = { y = "Y" } }))
      assert.matches("use_value cannot be transaction%-scoped",
        err_of(ProviderSpec, { provide = "X", use_value = 1, scope = "transaction" }))
    end)

    it("rejects unknown fields (typo guard)", function()
      assert.matches('unknown field "use_vaule"',
        err_of(ProviderSpec, { provide = "X", use_value = 1, use_vaule = 2 }), 1, true)
    end)

    it("reports misuse at the caller's line", function()
      local ok, e = pcall(function() ProviderSpec { provide = "X" } end)
      assert.is_false(ok)
      assert.matches("di_spec.lua:%d+:", e)
    end)
  end)

  describe("Container", function()
    it("binds use_value, honouring falsy values", function()
      local c = Container.new({
        ProviderSpec { provide = "f", use_value = false },
        ProviderSpec { provide = "z", use_value = 0 },
        ProviderSpec { provide = "s", use_value = "" },
      })
      assert.is_false(c:get("f"))
      assert.are.equal(0, c:get("z"))
      assert.are.equal("", c:get("s"))
      assert.is_true(c:has("f"))
    end)

    it("calls factories with their injected deps", function()
      local seen
      local c = Container.new({
        ProviderSpec { provide = "url", use_value = "sqlite://x" },
        ProviderSpec { provide = "db", inject = { url = "url" }, use_factory = function(deps)
          seen = deps
          return { url = deps.url }
        end },
      })
      assert.are.equal("sqlite://x", c:get("db").url)
      assert.are.same({ url = "sqlite://x" }, seen)
    end)

    it("builds a class with deps as the instance and calls init", function()
      local Repo = { __name = "Repo", inject = { url = "url" } }
      function Repo:init() self.ready = true end
      function Repo:where() return self.url end
      local c = Container.new({ ProviderSpec { provide = "url", use_value = "u" }, Repo })
      local r = c:get(Repo)
      assert.are.equal("u", r:where())
      assert.is_true(r.ready)
      assert.are.equal(Repo, getmetatable(r).__index)
    end)

    it("uses the class itself as metatable when cls.__index == cls", function()
      local Repo = { inject = {} }
      Repo.__index = Repo
      local c = Container.new({ Repo })
      assert.are.equal(Repo, getmetatable(c:get(Repo)))
    end)

    it("calls cls.new(deps) when the class has a constructor", function()
      local Svc = { inject = { n = "n" } }
      function Svc.new(deps) return { doubled = deps.n * 2 } end
      local c = Container.new({ ProviderSpec { provide = "n", use_value = 21 }, Svc })
      assert.are.equal(42, c:get(Svc).doubled)
    end)

    it("builds use_class under another key, with spec.inject overriding cls.inject", function()
      local Impl = { inject = { a = "A" } }
      local c = Container.new({
        ProviderSpec { provide = "A", use_value = "a" },
        ProviderSpec { provide = "B", use_value = "b" },
        ProviderSpec { provide = "Port", use_class = Impl },
        ProviderSpec { provide = "Port2", use_class = Impl, inject = { a = "B" } },
      })
      assert.are.equal("a", c:get("Port").a)
      assert.are.equal("b", c:get("Port2").a)
      assert.is_false(c:has(Impl))
    end)

    it("builds singletons once per container", function()
      local calls = 0
      local specs = { ProviderSpec { provide = "S", use_factory = function() calls = calls + 1; return {} end } }
      local c = Container.new(specs)
      assert.are.equal(c:get("S"), c:get("S"))
      assert.are.equal(1, calls)
      local c2 = Container.new(specs)
      assert.are_not.equal(c:get("S"), c2:get("S"))
      assert.are.equal(2, calls)
    end)

    it("shares a singleton between consumers", function()
      local Shared = { inject = {} }
      local A = { inject = { s = Shared } }
      local B = { inject = { s = Shared } }
      local c = Container.new({ Shared, A, B })
      assert.are.equal(c:get(A).s, c:get(B).s)
    end)

    it("rejects duplicate keys naming the key", function()
      local e = err_of(Container.new, {
        ProviderSpec { provide = "Dup", use_value = 1 },
        ProviderSpec { provide = "Dup", use_value = 2 },
      })
      assert.matches("duplicate provider for Dup (providers[1] and providers[2])", e, 1, true)
    end)

    it("rejects bad provider entries", function()
      assert.matches("providers%[2%] is a string", err_of(Container.new, { ProviderSpec { provide = "a", use_value = 1 }, "x" }))
      assert.matches("providers%[1%] is a Token", err_of(Container.new, { Token("T") }))
    end)

    it("names the consumer and the key of a missing provider", function()
      local TasksController = { __name = "TasksController", inject = { tasks = "TasksRepository" } }
      local c = Container.new({})
      assert.are.equal('no provider for "TasksRepository" (needed by TasksController.tasks)',
        err_of(c.get_controller, c, TasksController))
      assert.are.equal('no provider for "Nothing"', err_of(c.get, c, "Nothing"))
      assert.are.equal('no provider for "Token(Missing)"', err_of(c.get, c, Token("Missing")))
    end)

    it("names the missing provider at any depth", function()
      local c = Container.new({
        ProviderSpec { provide = "A", inject = { b = "B" }, use_factory = function(d) return d end },
        ProviderSpec { provide = "B", inject = { cfg = Token("Cfg") }, use_factory = function(d) return d end },
      })
      assert.are.equal('no provider for "Token(Cfg)" (needed by B.cfg)', err_of(c.get, c, "A"))
    end)

    it("reports a dependency cycle at construction", function()
      local function f(d) return d end
      local e = err_of(Container.new, {
        ProviderSpec { provide = "A", inject = { b = "B" }, use_factory = f },
        ProviderSpec { provide = "B", inject = { c = "C" }, use_factory = f },
        ProviderSpec { provide = "C", inject = { a = "A" }, use_factory = f },
      })
      assert.are.equal("dependency cycle: A -> B -> C -> A", e)
    end)

    it("reports a self-dependency", function()
      local Self = { __name = "Self" }
      Self.inject = { me = Self }
      assert.are.equal("dependency cycle: Self -> Self", err_of(Container.new, { Self }))
    end)

    it("reports a cycle closed by a provider added later", function()
      local Ctrl = { __name = "Ctrl", inject = { a = "A" } }
      local c = Container.new({
        ProviderSpec { provide = "A", inject = { ctrl = Ctrl }, use_factory = function(d) return d end },
      })
      assert.are.equal("dependency cycle: Ctrl -> A -> Ctrl", err_of(c.add, c, Ctrl))
    end)

    it("reports a cycle at build time when a class is completed after construction", function()
      local B = { __name = "B" }
      local c = Container.new({
        ProviderSpec { provide = "A", inject = { b = B }, use_factory = function(d) return d end },
        B,
      })
      B.inject = { a = "A" }
      assert.are.equal("dependency cycle: A -> B -> A", err_of(c.get, c, "A"))
    end)

    it("wraps factory errors with the resolution path", function()
      local c = Container.new({
        ProviderSpec { provide = "Db", use_factory = function() error("connection refused", 0) end },
        ProviderSpec { provide = "Repo", inject = { db = "Db" }, use_factory = function(d) return d end },
      })
      assert.are.equal("while building Db (needed by Repo.db): connection refused", err_of(c.get, c, "Repo"))
      assert.are.equal("while building Db: connection refused", err_of(c.get, c, "Db"))
    end)

    it("wraps constructor errors, including non-string error values", function()
      local Bad = { __name = "Bad", inject = {} }
      function Bad:init() error(errors.HTTPError(503, "down")) end
      local c = Container.new({ Bad })
      assert.are.equal("while building Bad: HTTPError 503: down", err_of(c.get, c, Bad))
    end)

    it("refuses a factory returning nil", function()
      local c = Container.new({ ProviderSpec { provide = "N", use_factory = function() end } })
      assert.are.equal("while building N: the factory returned nil", err_of(c.get, c, "N"))
    end)

    it("does not cache a failed build", function()
      local n = 0
      local c = Container.new({ ProviderSpec { provide = "Flaky", use_factory = function()
        n = n + 1
        if n == 1 then error("first", 0) end
        return { n = n }
      end } })
      assert.has_error(function() c:get("Flaky") end)
      assert.are.equal(2, c:get("Flaky").n)
    end)

    it("rejects misuse of get", function()
      local c = Container.new({})
      assert.matches("key is a number", err_of(c.get, c, 1))
      assert.matches("key is nil", err_of(c.get, c, nil))
    end)

    describe("register", function()
      it("binds a value at runtime", function()
        local c = Container.new({})
        assert.is_false(c:has("Cfg"))
        c:register("Cfg", { debug = true })
        assert.is_true(c:has("Cfg"))
        assert.is_true(c:get("Cfg").debug)
      end)

      it("refuses to rebind unless replace is true", function()
        local c = Container.new({ ProviderSpec { provide = "X", use_value = 1 } })
        assert.matches("already provided", err_of(c.register, c, "X", 2))
        c:register("X", 2, true)
        assert.are.equal(2, c:get("X"))
      end)

      it("rejects nil instances and bad keys", function()
        local c = Container.new({})
        assert.matches("is nil", err_of(c.register, c, "X", nil))
        assert.matches("key is a number", err_of(c.register, c, 5, 1))
      end)

      it("makes a spec added later a duplicate", function()
        local c = Container.new({})
        c:register("K", 1)
        assert.matches("duplicate provider for K", err_of(c.add, c, ProviderSpec { provide = "K", use_value = 2 }))
      end)
    end)

    describe("transaction scope", function()
      local function make(calls)
        return Container.new({
          ProviderSpec { provide = "Session", scope = "transaction", use_factory = function()
            calls.n = calls.n + 1
            return { id = calls.n }
          end },
          ProviderSpec { provide = "UoW", scope = "transaction", inject = { s = "Session" },
            use_factory = function(d) return d end },
        })
      end

      it("caches per context", function()
        local calls = { n = 0 }
        local c = make(calls)
        local a1, a2, ctx = in_tx(c, function() return c:get("Session"), c:get("Session") end)
        assert.are.equal(a1, a2)
        assert.are.equal(a1, ctx.scope["Session"])
        local b = in_tx(c, function() return c:get("Session") end)
        assert.are_not.equal(a1, b)
        assert.are.equal(2, calls.n)
      end)

      it("shares transaction deps within a context", function()
        local calls = { n = 0 }
        local c = make(calls)
        local uow, s = in_tx(c, function() return c:get("UoW"), c:get("Session") end)
        assert.are.equal(s, uow.s)
        assert.are.equal(1, calls.n)
      end)

      it("is visible from coroutines inheriting the context", function()
        local calls = { n = 0 }
        local c = make(calls)
        local outer, inner = in_tx(c, function()
          local o = c:get("Session")
          local child = coroutine.create(function() return c:get("Session") end)
          context.inherit(child)
          local _, i = coroutine.resume(child)
          return o, i
        end)
        assert.are.equal(outer, inner)
      end)

      it("raises outside a transaction", function()
        local c = make({ n = 0 })
        assert.are.equal("Session is transaction-scoped and was requested outside a transaction",
          err_of(c.get, c, "Session"))
        assert.are.equal("UoW is transaction-scoped and was requested outside a transaction",
          err_of(c.get, c, "UoW"))
        local Handler = { __name = "Handler", inject = { s = "Session" } }
        assert.are.equal("Session is transaction-scoped and was requested outside a transaction (needed by Handler.s)",
          err_of(c.instantiate, c, Handler))
      end)

      it("a singleton depending on it is a startup error naming both", function()
        local e = err_of(Container.new, {
          ProviderSpec { provide = "Session", scope = "transaction", use_factory = function() return {} end },
          ProviderSpec { provide = "Repo", inject = { s = "Session" }, use_factory = function(d) return d end },
        })
        assert.are.equal("singleton Repo depends on transaction-scoped Session (Repo -> Session)", e)
      end)

      it("detects transitive scope violations", function()
        local function f(d) return d end
        local e = err_of(Container.new, {
          ProviderSpec { provide = "Svc", inject = { r = "Repo" }, use_factory = f },
          ProviderSpec { provide = "Repo", scope = "transaction", inject = {}, use_factory = f },
        })
        assert.are.equal("singleton Svc depends on transaction-scoped Repo (Svc -> Repo)", e)
        e = err_of(Container.new, {
          ProviderSpec { provide = "A", inject = { b = "B" }, use_factory = f },
          ProviderSpec { provide = "B", inject = { t = "T" }, use_factory = f },
          ProviderSpec { provide = "T", scope = "transaction", use_factory = f },
        })
        assert.are.equal("singleton A depends on transaction-scoped T (A -> B -> T)", e)
      end)

      it("a controller may not depend on it", function()
        local calls = { n = 0 }
        local c = make(calls)
        local Ctrl = { __name = "Ctrl", inject = { s = "Session" } }
        local ok, e = pcall(in_tx, c, function() return c:get_controller(Ctrl) end)
        assert.is_false(ok)
        assert.are.equal("controller Ctrl depends on transaction-scoped Session (Ctrl -> Session)", e)
      end)

      it("instantiate may depend on it inside a transaction", function()
        local calls = { n = 0 }
        local c = make(calls)
        local Handler = { inject = { s = "Session" } }
        local h, s = in_tx(c, function() return c:instantiate(Handler), c:get("Session") end)
        assert.are.equal(s, h.s)
      end)

      it("a transaction provider may depend on singletons", function()
        local c = Container.new({
          ProviderSpec { provide = "Engine", use_value = { name = "engine" } },
          ProviderSpec { provide = "Session", scope = "transaction", inject = { e = "Engine" },
            use_factory = function(d) return { engine = d.e } end },
        })
        local s = in_tx(c, function() return c:get("Session") end)
        assert.are.equal("engine", s.engine.name)
      end)

      it("factories may yield", function()
        local c = Container.new({
          ProviderSpec { provide = "Slow", scope = "transaction", use_factory = function()
            local v = coroutine.yield("io")
            return { v = v }
          end },
        })
        local ctx = context.new("test", c)
        local co = coroutine.create(function()
          context.bind(ctx)
          return c:get("Slow")
        end)
        local ok, what = coroutine.resume(co)
        assert.is_true(ok)
        assert.are.equal("io", what)
        local ok2, slow = coroutine.resume(co, 7)
        assert.is_true(ok2)
        assert.are.equal(7, slow.v)
        assert.are.equal(slow, ctx.scope.Slow)
      end)
    end)

    describe("start", function()
      it("builds singletons of each phase in registration order", function()
        local order = {}
        local function mk(name) return function() order[#order + 1] = name; return { name = name } end end
        local c = Container.new({
          ProviderSpec { provide = "A", use_factory = mk("A") },
          ProviderSpec { provide = "Late", use_factory = mk("Late"), after_interceptors = true },
          ProviderSpec { provide = "B", use_factory = mk("B") },
          ProviderSpec { provide = "T", use_factory = mk("T"), scope = "transaction" },
        })
        c:start("before")
        assert.are.same({ "A", "B" }, order)
        c:start("after")
        assert.are.same({ "A", "B", "Late" }, order)
      end)

      it("lets after_interceptors providers use values registered in between", function()
        local c = Container.new({
          ProviderSpec { provide = "Client", after_interceptors = true, inject = { cfg = Token("Config") },
            use_factory = function(d) return { url = d.cfg.url } end },
        })
        c:start("before")
        c:register(Token("Config"), { url = "amqp://x" })
        c:start("after")
        assert.are.equal("amqp://x", c:get("Client").url)
      end)

      it("refuses to build an after_interceptors provider during the before phase", function()
        local c = Container.new({
          ProviderSpec { provide = "Late", after_interceptors = true, use_factory = function() return {} end },
          ProviderSpec { provide = "Early", inject = { l = "Late" }, use_factory = function(d) return d end },
        })
        assert.are.equal("Late is after_interceptors and was requested before the interceptors started (needed by Early.l)",
          err_of(c.start, c, "before"))
      end)

      it("rejects an unknown phase", function()
        local c = Container.new({})
        assert.matches('phase must be "before" or "after"', err_of(c.start, c, "during"), 1, true)
      end)
    end)

    describe("get_controller / instantiate", function()
      it("builds a controller once per container", function()
        local inits = 0
        local Ctrl = { __name = "Ctrl", inject = { repo = "Repo" } }
        function Ctrl:init() inits = inits + 1 end
        local c = Container.new({ ProviderSpec { provide = "Repo", use_value = { "r" } } })
        local a, b = c:get_controller(Ctrl), c:get_controller(Ctrl)
        assert.are.equal(a, b)
        assert.are.equal(1, inits)
        assert.are.equal("r", a.repo[1])
      end)

      it("delegates to get when the class is a registered provider", function()
        local Ctrl = { inject = {} }
        local c = Container.new({ Ctrl })
        assert.are.equal(c:get(Ctrl), c:get_controller(Ctrl))
      end)

      it("instantiate builds a fresh object each time", function()
        local Cls = { inject = { v = "V" } }
        local c = Container.new({ ProviderSpec { provide = "V", use_value = 1 } })
        local a, b = c:instantiate(Cls), c:instantiate(Cls)
        assert.are_not.equal(a, b)
        assert.are.equal(1, a.v)
      end)

      it("rejects non-class arguments", function()
        local c = Container.new({})
        assert.matches("expected a class table", err_of(c.get_controller, c, "x"))
        assert.matches("expected a class table", err_of(c.instantiate, c, Token("T")))
      end)
    end)

    it("add registers a spec after construction and validates it", function()
      local c = Container.new({ ProviderSpec { provide = "T", scope = "transaction", use_factory = function() return {} end } })
      c:add(ProviderSpec { provide = "X", use_value = 9 })
      assert.are.equal(9, c:get("X"))
      assert.matches("singleton Y depends on transaction%-scoped T",
        err_of(c.add, c, ProviderSpec { provide = "Y", inject = { t = "T" }, use_factory = function(d) return d end }))
    end)

    it("providers() lists specs in registration order", function()
      local A = { inject = {} }
      local c = Container.new({ ProviderSpec { provide = "x", use_value = 1 }, A })
      local list = c:providers()
      assert.are.equal(2, #list)
      assert.are.equal("x", list[1].provide)
      assert.are.equal(A, list[2].provide)
    end)
  end)
end)

describe("jararaca.errors", function()
  it("HTTPError returns an error object without raising", function()
    local e = errors.HTTPError(404, "not found", { ["X-A"] = "1" })
    assert.are.equal(404, e.status)
    assert.are.equal("not found", e.detail)
    assert.are.same({ ["X-A"] = "1" }, e.headers)
    assert.is_true(errors.is_http_error(e))
    assert.are.equal("HTTPError 404: not found", tostring(e))
  end)

  it("defaults the detail to the reason phrase", function()
    assert.are.equal("Not Found", errors.HTTPError(404).detail)
    assert.are.equal("Unprocessable Content", errors.reason(422))
  end)

  it("keeps structured details", function()
    local e = errors.HTTPError(422, { { loc = { "body", "name" }, msg = "required" } })
    assert.are.equal("required", e.detail[1].msg)
    assert.are.equal('HTTPError 422: {{loc={"body", "name"}, msg="required"}}', tostring(e))
  end)

  it("raise_http raises the object itself", function()
    local ok, e = pcall(errors.raise_http, 409, "conflict")
    assert.is_false(ok)
    assert.is_true(errors.is_http_error(e))
    assert.are.equal(409, e.status)
  end)

  it("is_http_error is false for other values", function()
    assert.is_false(errors.is_http_error("HTTPError 404"))
    assert.is_false(errors.is_http_error({ status = 404 }))
    assert.is_false(errors.is_http_error(nil))
  end)

  it("rejects a bad status or headers at the caller", function()
    for _, s in ipairs({ 99, 600, 404.5, "404" }) do
      local ok, e = pcall(function() errors.HTTPError(s) end)
      assert.is_false(ok)
      assert.matches("di_spec.lua:%d+: HTTPError: status must be an integer in 200..599", e)
    end
    local ok, e = pcall(function() errors.raise_http(404, "x", "headers") end)
    assert.is_false(ok)
    assert.matches("di_spec.lua:%d+: HTTPError: headers must be a table", e)
  end)
end)
