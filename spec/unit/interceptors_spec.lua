-- Specs for jararaca.interceptors: the per-transaction chain and lifecycles.
local interceptors = require("jararaca.interceptors")
local di = require("jararaca.di")
local errors = require("jararaca.errors")

local run = interceptors.run

-- An interceptor recording its calls into `log` as "name:event[:err]".
local function rec(log, name, opts)
  opts = opts or {}
  return {
    enter = function(self, ctx)
      log[#log + 1] = name .. ":enter"
      if opts.enter_error then error(opts.enter_error, 0) end
    end,
    exit = function(self, ctx, err)
      log[#log + 1] = name .. ":exit:" .. tostring(err)
      if opts.exit_error then error(opts.exit_error, 0) end
      return opts.suppress
    end,
  }
end

describe("jararaca.interceptors.run", function()
  it("calls fn directly with an empty list", function()
    local ok, a, b = run({}, {}, function(x, y) return x + y, "r" end, 1, 2)
    assert.is_true(ok)
    assert.are.equal(3, a)
    assert.are.equal("r", b)
  end)

  it("returns false, err with an empty list when fn fails", function()
    local ok, e = run({}, {}, function() error("boom", 0) end)
    assert.is_false(ok)
    assert.are.equal("boom", e)
  end)

  it("enters in order and exits in reverse order with nil on success", function()
    local log = {}
    local list = { rec(log, "a"), rec(log, "b"), rec(log, "c") }
    local ok, r = run(list, {}, function() log[#log + 1] = "fn"; return 42 end)
    assert.is_true(ok)
    assert.are.equal(42, r)
    assert.are.same({ "a:enter", "b:enter", "c:enter", "fn", "c:exit:nil", "b:exit:nil", "a:exit:nil" }, log)
  end)

  it("passes the ctx and self to enter and exit", function()
    local seen = {}
    local it = {}
    function it:enter(ctx) seen.enter_self, seen.enter_ctx = self, ctx end
    function it:exit(ctx, err) seen.exit_self, seen.exit_ctx = self, ctx end
    local ctx = { kind = "http" }
    run({ it }, ctx, function() end)
    assert.are.equal(it, seen.enter_self)
    assert.are.equal(ctx, seen.enter_ctx)
    assert.are.equal(it, seen.exit_self)
    assert.are.equal(ctx, seen.exit_ctx)
  end)

  it("passes the arguments and all results (including nils) through", function()
    local log = {}
    local ok, a, b, c = run({ rec(log, "a") }, {}, function(x) return nil, x, nil end, "arg")
    assert.is_true(ok)
    assert.is_nil(a)
    assert.are.equal("arg", b)
    assert.is_nil(c)
    assert.are.equal(4, select("#", run({ rec(log, "a") }, {}, function() return nil, nil, nil end)))
  end)

  it("exits in reverse order with the error and returns it", function()
    local log = {}
    local list = { rec(log, "a"), rec(log, "b") }
    local ok, e = run(list, {}, function() error("boom", 0) end)
    assert.is_false(ok)
    assert.are.equal("boom", e)
    assert.are.same({ "a:enter", "b:enter", "b:exit:boom", "a:exit:boom" }, log)
  end)

  it("preserves non-string error values as-is", function()
    local herr = errors.HTTPError(404, "nope")
    local got
    local list = { { exit = function(_, _, err) got = err end } }
    local ok, e = run(list, {}, function() error(herr) end)
    assert.is_false(ok)
    assert.are.equal(herr, e)
    assert.are.equal(herr, got)
  end)

  it("an exit returning true suppresses the error; later exits get nil", function()
    local log = {}
    local list = { rec(log, "a"), rec(log, "b", { suppress = true }), rec(log, "c") }
    local ok, r = run(list, {}, function() error("boom", 0) end)
    assert.is_true(ok)
    assert.is_nil(r)
    assert.are.same({ "a:enter", "b:enter", "c:enter", "c:exit:boom", "b:exit:boom", "a:exit:nil" }, log)
  end)

  it("returning true without an error changes nothing", function()
    local log = {}
    local ok, r = run({ rec(log, "a", { suppress = true }) }, {}, function() return "v" end)
    assert.is_true(ok)
    assert.are.equal("v", r)
  end)

  it("an exit that raises replaces the error; later exits get the new error", function()
    local log = {}
    local list = { rec(log, "a"), rec(log, "b", { exit_error = "commit failed" }), rec(log, "c") }
    local ok, e = run(list, {}, function() error("boom", 0) end)
    assert.is_false(ok)
    assert.are.equal("commit failed", e)
    assert.are.same({ "a:enter", "b:enter", "c:enter", "c:exit:boom", "b:exit:boom", "a:exit:commit failed" }, log)
  end)

  it("an exit that raises after a success turns it into a failure", function()
    local log = {}
    local ok, e = run({ rec(log, "a"), rec(log, "b", { exit_error = "flush failed" }) }, {},
      function() return "fine" end)
    assert.is_false(ok)
    assert.are.equal("flush failed", e)
    assert.are.same({ "a:enter", "b:enter", "b:exit:nil", "a:exit:flush failed" }, log)
  end)

  it("a failure replaced and then suppressed returns true with the results of fn", function()
    local log = {}
    local ok, r = run({ rec(log, "a", { suppress = true }), rec(log, "b", { exit_error = "x" }) }, {},
      function() return "kept" end)
    assert.is_true(ok)
    assert.are.equal("kept", r)
  end)

  it("an enter failure exits only the already entered ones and skips fn", function()
    local log = {}
    local called = false
    local list = { rec(log, "a"), rec(log, "b"), rec(log, "c", { enter_error = "no db" }), rec(log, "d") }
    local ok, e = run(list, {}, function() called = true end)
    assert.is_false(ok)
    assert.are.equal("no db", e)
    assert.is_false(called)
    assert.are.same({ "a:enter", "b:enter", "c:enter", "b:exit:no db", "a:exit:no db" }, log)
  end)

  it("interceptors without enter still get their exit", function()
    local log = {}
    local only_exit = { exit = function(_, _, err) log[#log + 1] = "x:" .. tostring(err) end }
    local only_enter = { enter = function() log[#log + 1] = "e" end }
    local ok = run({ only_exit, only_enter }, {}, function() log[#log + 1] = "fn" end)
    assert.is_true(ok)
    assert.are.same({ "e", "fn", "x:nil" }, log)
  end)

  it("turns nil and false error values into strings so exits see a failure", function()
    local got
    local list = { { exit = function(_, _, err) got = err end } }
    local ok, e = run(list, {}, function() error(nil) end)
    assert.is_false(ok)
    assert.are.equal("error raised with a nil value", e)
    assert.are.equal(e, got)
    ok, e = run(list, {}, function() error(false) end)
    assert.is_false(ok)
    assert.are.equal("error raised with a false value", e)
  end)

  it("never raises, even when every step fails", function()
    local list = { { enter = function() end, exit = function() error("x", 0) end } }
    assert.has_no.errors(function() run(list, {}, function() error("y", 0) end) end)
  end)

  it("lets fn yield when run inside a coroutine", function()
    local log = {}
    local list = { rec(log, "a"), rec(log, "b") }
    local result
    local step = coroutine.wrap(function()
      result = { run(list, {}, function(x)
        log[#log + 1] = "before-io"
        local v = coroutine.yield("waiting")
        log[#log + 1] = "after-io:" .. v
        return x .. v
      end, "got ") }
      return "done"
    end)
    assert.are.equal("waiting", step())
    assert.are.same({ "a:enter", "b:enter", "before-io" }, log)
    assert.is_nil(result)
    assert.are.equal("done", step("data"))
    assert.are.same({ true, "got data" }, result)
    assert.are.same({ "a:enter", "b:enter", "before-io", "after-io:data", "b:exit:nil", "a:exit:nil" }, log)
  end)

  it("lets fn yield and fail after resuming", function()
    local log = {}
    local result
    local step = coroutine.wrap(function()
      result = { run({ rec(log, "a") }, {}, function()
        coroutine.yield()
        error("late", 0)
      end) }
    end)
    step()
    step()
    assert.are.same({ false, "late" }, result)
    assert.are.same({ "a:enter", "a:exit:late" }, log)
  end)

  it("lets enter and exit yield", function()
    local log = {}
    local it = {
      enter = function() log[#log + 1] = "enter"; coroutine.yield("e") end,
      exit = function() log[#log + 1] = "exit"; coroutine.yield("x") end,
    }
    local co = coroutine.wrap(function()
      return "end", run({ it }, {}, function() log[#log + 1] = "fn"; return 1 end)
    end)
    assert.are.equal("e", co())
    assert.are.equal("x", co())
    local tag, ok, r = co()
    assert.are.same({ "end", true, 1 }, { tag, ok, r })
    assert.are.same({ "enter", "fn", "exit" }, log)
  end)

  describe("xrun", function()
    it("passes errors of fn through the handler", function()
      local ok, e = interceptors.xrun({}, {}, function(err) return "handled:" .. err end,
        function() error("boom", 0) end)
      assert.is_false(ok)
      assert.are.equal("handled:boom", e)
    end)

    it("passes errors of enter and exit through the handler", function()
      local h = function(err) return "h(" .. err .. ")" end
      local ok, e = interceptors.xrun({ { enter = function() error("in", 0) end } }, {}, h, function() end)
      assert.is_false(ok)
      assert.are.equal("h(in)", e)
      ok, e = interceptors.xrun({ { exit = function() error("out", 0) end } }, {}, h, function() end)
      assert.are.equal("h(out)", e)
    end)

    it("with the dispatcher's handler, exit gets the error as raised; the traceback is kept aside", function()
      local dispatch = require "jararaca.http.dispatch"
      local context = require "jararaca.context"
      local sched = require "jararaca.sched"
      local ctx = {}
      local seen = {}
      local it_ = { exit = function(self, c, err) seen[#seen + 1] = { self = self, ctx = c, err = err } end }
      local herr = errors.HTTPError(400, "bad")
      local ok, a, b, c = sched.spawn(function()
        context.bind(ctx)
        local r1, e1 = interceptors.xrun({ it_ }, ctx, dispatch.keep_traceback, function() error("boom") end)
        local tb = rawget(ctx, "_traceback")
        ctx._traceback = nil
        local r2, e2 = interceptors.xrun({ it_ }, ctx, dispatch.keep_traceback, function() error(herr) end)
        return { r1, e1, r2, e2 }, tb, rawget(ctx, "_traceback")
      end):wait()
      assert.is_true(ok)
      assert.is_false(a[1])
      assert.matches("^[^\n]*: boom$", a[2])             -- no traceback glued on
      assert.are.equal(a[2], seen[1].err)                 -- exit(self, ctx, err) saw the same value
      assert.are.equal(it_, seen[1].self)
      assert.are.equal(ctx, seen[1].ctx)
      assert.matches("stack traceback:", b)               -- kept in the context, for the log
      assert.is_false(a[3])
      assert.are.equal(herr, a[4])
      assert.are.equal(herr, seen[2].err)
      assert.is_nil(c)                                    -- HTTPErrors are answers: no traceback
    end)

    it("returns results on success", function()
      assert.are.same({ true, 1, 2 }, { interceptors.xrun({ rec({}, "a") }, {}, debug.traceback,
        function(x, y) return x, y end, 1, 2) })
    end)
  end)
end)

describe("jararaca.interceptors lifecycle", function()
  local app = { name = "app" }

  local function lifecycle(log, name, opts)
    opts = opts or {}
    return {
      __name = name,
      startup = function(self, a, c)
        log[#log + 1] = name .. ":startup"
        if opts.startup_error then error(opts.startup_error, 0) end
      end,
      shutdown = function(self, a, c)
        log[#log + 1] = name .. ":shutdown"
        if opts.shutdown_error then error(opts.shutdown_error, 0) end
      end,
    }
  end

  it("calls startup in order and shutdown in reverse order", function()
    local log = {}
    local c = di.Container.new({})
    local list = { lifecycle(log, "a"), lifecycle(log, "b"), lifecycle(log, "c") }
    local lc = interceptors.start(app, c, list)
    assert.are.same({ "a:startup", "b:startup", "c:startup" }, log)
    assert.are.same(list, lc.list)
    assert.is_true(lc:stop())
    assert.are.same({ "a:startup", "b:startup", "c:startup", "c:shutdown", "b:shutdown", "a:shutdown" }, log)
  end)

  it("passes app and container to startup and shutdown", function()
    local got = {}
    local c = di.Container.new({})
    local it = {
      startup = function(self, a, cont) got.s = { self, a, cont } end,
      shutdown = function(self, a, cont) got.d = { self, a, cont } end,
    }
    local lc = interceptors.start(app, c, { it })
    lc:stop()
    assert.are.same({ it, app, c }, got.s)
    assert.are.same({ it, app, c }, got.d)
  end)

  it("stop calls every shutdown and collects the errors", function()
    local log = {}
    local c = di.Container.new({})
    local lc = interceptors.start(app, c, {
      lifecycle(log, "a", { shutdown_error = "a broke" }),
      lifecycle(log, "b"),
      lifecycle(log, "c", { shutdown_error = "c broke" }),
    })
    local ok, msg, code, errs = lc:stop()
    assert.is_nil(ok)
    assert.equal("error", code)
    assert.equal("shutdown failed: interceptor #3 (c) shutdown failed: c broke; interceptor #1 (a) shutdown failed: a broke", msg)
    assert.are.same({
      "interceptor #3 (c) shutdown failed: c broke",
      "interceptor #1 (a) shutdown failed: a broke",
    }, errs)
    assert.are.same({ "a:startup", "b:startup", "c:startup", "c:shutdown", "b:shutdown", "a:shutdown" }, log)
  end)

  it("stop is idempotent", function()
    local log = {}
    local lc = interceptors.start(app, di.Container.new({}), { lifecycle(log, "a") })
    lc:stop()
    assert.is_true(lc:stop())
    assert.are.same({ "a:startup", "a:shutdown" }, log)
  end)

  it("a failed startup rolls back the started ones in reverse and names the index", function()
    local log = {}
    local c = di.Container.new({})
    local ok, e = pcall(interceptors.start, app, c, {
      lifecycle(log, "a"),
      lifecycle(log, "b"),
      lifecycle(log, "c", { startup_error = "no broker" }),
      lifecycle(log, "d"),
    })
    assert.is_false(ok)
    assert.are.equal("interceptor #3 (c) startup failed: no broker", e)
    assert.are.same({ "a:startup", "b:startup", "c:startup", "b:shutdown", "a:shutdown" }, log)
  end)

  it("names a startup error whose __tostring raises instead of raising that", function()
    local nasty = setmetatable({}, { __tostring = function() error("no text") end })
    local ok, e = pcall(interceptors.start, app, di.Container.new({}), {
      { startup = function() error(nasty) end },
    })
    assert.is_false(ok)
    assert.are.equal("interceptor #1 startup failed: (a table error value that cannot be shown)", e)
  end)

  it("reports rollback failures too", function()
    local log = {}
    local ok, e = pcall(interceptors.start, app, di.Container.new({}), {
      lifecycle(log, "a", { shutdown_error = "stuck" }),
      lifecycle(log, "b", { startup_error = "boom" }),
    })
    assert.is_false(ok)
    assert.are.equal("interceptor #2 (b) startup failed: boom; while rolling back: interceptor #1 (a) shutdown failed: stuck", e)
  end)

  it("resolves class interceptors through the container", function()
    local Session = { __name = "Session", inject = { url = "db_url" } }
    function Session:enter(ctx) ctx.url = self.url end
    local c = di.Container.new({ di.ProviderSpec { provide = "db_url", use_value = "sqlite://" } })
    local lc = interceptors.start(app, c, { Session })
    assert.are.equal("sqlite://", lc.list[1].url)
    assert.are_not.equal(Session, lc.list[1])
    local ctx = {}
    run(lc.list, ctx, function() end)
    assert.are.equal("sqlite://", ctx.url)
  end)

  it("resolves factory interceptors with the container", function()
    local c = di.Container.new({ di.ProviderSpec { provide = "n", use_value = 5 } })
    local lc = interceptors.start(app, c, { function(cont) return { n = cont:get("n"), enter = function() end } end })
    assert.are.equal(5, lc.list[1].n)
  end)

  it("resolves ProviderSpec interceptors and registers them in the container", function()
    local c = di.Container.new({})
    local spec = di.ProviderSpec { provide = di.Token("Audit"), use_factory = function() return { exit = function() end } end }
    local lc = interceptors.start(app, c, { spec })
    assert.are.equal(c:get(di.Token("Audit")), lc.list[1])
  end)

  it("interleaves resolution with startup: #2 may depend on what #1 registered", function()
    local log = {}
    local Config = {
      __name = "Config",
      startup = function(self, a, cont)
        log[#log + 1] = "config:startup"
        cont:register(di.Token("AppConfig"), { url = "amqp://broker" })
      end,
    }
    local Publisher = { __name = "Publisher", inject = { cfg = di.Token("AppConfig") } }
    function Publisher:init() log[#log + 1] = "publisher:built" end
    function Publisher:startup() log[#log + 1] = "publisher:startup:" .. self.cfg.url end
    local factory_saw
    local c = di.Container.new({})
    local lc = interceptors.start(app, c, {
      Config,
      Publisher,
      function(cont) factory_saw = cont:get(di.Token("AppConfig")).url; return { enter = function() end } end,
    })
    assert.are.same({ "config:startup", "publisher:built", "publisher:startup:amqp://broker" }, log)
    assert.are.equal("amqp://broker", lc.list[2].cfg.url)
    assert.are.equal("amqp://broker", factory_saw)
  end)

  it("a resolution failure rolls back and names the index", function()
    local log = {}
    local Needs = { __name = "Needs", inject = { x = "Missing" } }
    local ok, e = pcall(interceptors.start, app, di.Container.new({}), { lifecycle(log, "a"), Needs })
    assert.is_false(ok)
    assert.are.equal('interceptor #2 (Needs) could not be resolved: no provider for "Missing" (needed by Needs.x)', e)
    assert.are.same({ "a:startup", "a:shutdown" }, log)
  end)

  it("rejects entries that are not interceptors", function()
    local c = di.Container.new({})
    local function fails(entry)
      local ok, e = pcall(interceptors.start, app, c, { entry })
      assert.is_false(ok)
      return e
    end
    assert.matches("interceptor #1 could not be resolved: has none of enter, exit, startup, shutdown", fails({}), 1, true)
    assert.matches("interceptor #1 could not be resolved: is a string", fails("x"), 1, true)
    assert.matches("enter is a string, expected a function", fails({ enter = "x" }), 1, true)
    assert.matches("the factory returned a nil", fails(function() end), 1, true)
  end)

  it("rejects a bad list argument", function()
    assert.matches("list must be a table", select(2, pcall(interceptors.start, app, di.Container.new({}), "x")))
  end)

  it("startup and shutdown may yield", function()
    local log = {}
    local it = {
      startup = function() coroutine.yield("s"); log[#log + 1] = "started" end,
      shutdown = function() coroutine.yield("d"); log[#log + 1] = "stopped" end,
    }
    local co = coroutine.wrap(function()
      local lc = interceptors.start(app, di.Container.new({}), { it })
      lc:stop()
      return "end"
    end)
    assert.are.equal("s", co())
    assert.are.equal("d", co())
    assert.are.equal("end", co())
    assert.are.same({ "started", "stopped" }, log)
  end)
end)

describe("headers an interceptor's exit sets after the answer was built", function()
  it("are added to the answer; a header the handler returned keeps the handler's value", function()
    local j = require "jararaca"
    local testing = require "jararaca.testing"
    local C = j.RestController("/lh", { name = "LateHeaders" })
    C.get = j.Get("/x", function(_, req)
      req.response.headers["Cache-Control"] = "no-store" -- overridden by the returned header below
      return "x", 200, { ["Cache-Control"] = "max-age=60" }
    end)
    local Late = {}
    function Late:exit(ctx) ctx.request.response.headers["X-Late"] = "yes" end
    local client = testing.client(j.Microservice { controllers = { C }, interceptors = { Late }, openapi = false })
    local res = client:get("/lh/x")
    assert.equal(200, res.status)
    assert.equal("max-age=60", res.headers["cache-control"])
    assert.equal("yes", res.headers["x-late"])
    client:close()
  end)
end)
