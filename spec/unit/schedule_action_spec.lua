-- j.ScheduledAction: declaring (misuse raises at the call), the startup
-- check of an app's actions (cron expression, options, names: errors name
-- the file, line and action), Microservice.scheduler, the store's URL,
-- --actions/--groups selection, and one run as a transaction
-- (jararaca.schedule.run) with a fake runtime.
local j = require "jararaca"
local action = require "jararaca.schedule.action"
local settings = require "jararaca.schedule.settings"
local scheduler = require "jararaca.schedule.scheduler"
local run = require "jararaca.schedule.run"
local staged = require "jararaca.staged"

local HERE = debug.getinfo(1, "S").short_src

local function app(controllers, extra)
  local t = { name = "jobs", controllers = controllers }
  for k, v in pairs(extra or {}) do t[k] = v end
  return j.Microservice(t)
end

local function check_error(fn, text)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.is_truthy(tostring(err):find(text, 1, true), tostring(err))
end

describe("j.ScheduledAction", function()
  it("declares a descriptor callable as a method, with or without options", function()
    local C = j.MessageBusController { name = "C" }
    C.a = j.ScheduledAction("* * * * *", function(self, r) return self, r end)
    C.b = j.ScheduledAction("*/5 * * * * *", { timeout = 2 }, function() end)
    assert.is_true(action.is_action(C.a))
    assert.equal(2, C.b.opts.timeout)
    local s, r = C.a("me", { tick = 1 })
    assert.equal("me", s)
    assert.same({ tick = 1 }, r)
  end)

  it("raises at the declaring line for a non-string cron, bad opts, or no function", function()
    check_error(function() j.ScheduledAction(5, function() end) end, "cron must be a string, got number")
    check_error(function() j.ScheduledAction("* * * * *", "x", function() end) end, "opts must be a table")
    check_error(function() j.ScheduledAction("* * * * *", {}) end, "expected an action function")
    local ok, err = pcall(function() j.ScheduledAction("* * * * *") end)
    assert.is_false(ok)
    assert.is_truthy(err:find(HERE, 1, true), err)
  end)
end)

describe("schedule.action.actions(app)", function()
  it("collects the actions of every controller class, in declaration order, with defaults", function()
    local B = j.MessageBusController { name = "B", group = "g1" }
    B.second = j.ScheduledAction("* * * * * */3", function() end)
    local R = j.RestController("/r", { name = "R" })
    R.first = j.ScheduledAction("0 * * * *", { name = "hourly", group = "g2", allow_overlap = true,
      timeout = 1.5, misfire = "run_once", dispatch = "bus", zone = "America/Sao_Paulo" }, function() end)
    R.third = j.ScheduledAction("@daily", { exclusive = false }, function() end)
    local list = action.actions(app({ B, R }))
    assert.equal(3, #list)
    assert.is_false(list[3].exclusive)
    local a, b = list[1], list[2]
    assert.equal("second", a.name)
    assert.equal("g1", a.group) -- the controller's group
    assert.is_false(a.allow_overlap)
    assert.is_true(a.exclusive)
    assert.is_nil(a.timeout)
    assert.equal("skip", a.misfire)
    assert.equal("inline", a.dispatch)
    assert.equal("UTC", a.zone_name)
    assert.equal("jobs.schedule.second", a.topic)
    assert.equal(B, a.controller)
    assert.equal("hourly", b.name)
    assert.same({ "g2", true, true, 1.5, "run_once", "bus", "jobs.schedule.hourly", "America/Sao_Paulo" },
      { b.group, b.allow_overlap, b.exclusive, b.timeout, b.misfire, b.dispatch, b.topic, b.zone_name })
    -- the zone object: midnight in Sao Paulo (UTC-3 in 1970) is 03:00 UTC
    assert.equal(3 * 3600, require("jararaca.core.cron").parse("0 0 * * *"):next(0, b.zone))
    assert.equal(3603, a.cron:next(3600)) -- the parsed expression
  end)

  it("the default zone: Microservice.scheduler.zone, else JARARACA_DEFAULT_TIMEZONE, else UTC", function()
    assert.same({ "Europe/Paris", "Microservice.scheduler.zone" },
      { action.default_zone(app({}, { scheduler = { zone = "Europe/Paris" } }), function() return "Asia/Tokyo" end) })
    assert.same({ "Asia/Tokyo", "JARARACA_DEFAULT_TIMEZONE" },
      { action.default_zone(app({}), function() return "Asia/Tokyo" end) })
    assert.same({ "UTC" }, { action.default_zone(app({}), function() return nil end) })
  end)

  local function bad(opts, text, expr)
    local C = j.MessageBusController { name = "C" }
    C.tick = j.ScheduledAction(expr or "* * * * * *", opts, function() end)
    local line = debug.getinfo(1, "l").currentline - 1
    local ok, err = pcall(action.actions, app({ C }))
    assert.is_false(ok)
    local head = ("%s:%d: scheduled action C.tick (%s): "):format(HERE, line, expr or "* * * * * *")
    assert.equal(head, err:sub(1, #head))
    assert.is_truthy(err:find(text, 1, true), err)
  end

  it("a bad cron expression or option is an error naming the file, line and action", function()
    bad({}, "cron: ", "* * * * * 99")
    bad({}, "position", "61 * * * *")
    bad({ timeout = 0 }, "timeout: expected a number of seconds > 0, got 0")
    bad({ timeout = "5" }, "timeout: expected a number of seconds > 0, got \"5\"")
    bad({ allow_overlap = 1 }, "allow_overlap: expected true or false, got 1")
    bad({ exclusive = "no" }, "exclusive: expected true or false")
    bad({ exception_handler = true }, "exception_handler: expected a function(self, err, run), got boolean")
    bad({ name = "a b" }, "name: expected a non-empty name")
    bad({ group = "" }, "group: expected a non-empty name")
    bad({ zone = "Nowhere/Land" }, "zone: ")
    bad({ zone = 3 }, "zone: expected a time zone name")
    bad({ misfire = "all" }, "misfire: expected one of skip, run_once, got \"all\"")
    bad({ dispatch = "queue" }, "dispatch: expected one of inline, bus, got \"queue\"")
    bad({ every = 3 }, "unknown option \"every\" (known: allow_overlap, exclusive, timeout")
    bad({ misfire = "run_once", exclusive = false }, "misfire: \"run_once\" needs exclusive = true")
  end)

  it("two actions with one name are an error naming both", function()
    local C = j.MessageBusController { name = "C" }
    C.a = j.ScheduledAction("* * * * *", function() end)
    C.b = j.ScheduledAction("* * * * *", { name = "a" }, function() end)
    check_error(function() action.actions(app({ C })) end, "C.b (* * * * *): name: \"a\" is the name of ")
  end)
end)

describe("Microservice.scheduler and the store's URL", function()
  it("checks its shape", function()
    check_error(function() app({}, { scheduler = "redis://x" }) end, "Microservice.scheduler must be a table")
    check_error(function() app({}, { scheduler = { url = "x" } }) end, "unknown field \"url\" (known: store, zone)")
    check_error(function() app({}, { scheduler = { store = 1 } }) end, "Microservice.scheduler.store must be a non-empty")
  end)

  it("the environment wins, then the app, then <app name>.scheduler.db next to the database", function()
    local env = function(k) return k == settings.ENV and "redis://127.0.0.1:6379/2" or nil end
    local none = function() return nil end
    local a = app({}, { scheduler = { store = "sqlite:///var/s.db" } })
    assert.equal("redis://127.0.0.1:6379/2", settings.store_url(a, {}, env))
    assert.equal("sqlite:///var/s.db", settings.store_url(a, {}, none))
    assert.equal("sqlite:////data/jobs.scheduler.db", settings.store_url(app({}), { { path = "/data/app.db" } }, none))
    local url, err, code = settings.store_url(app({}, { scheduler = { store = "mysql://x" } }), {}, none)
    assert.is_nil(url)
    assert.equal("invalid", code)
    assert.is_truthy(err:find("Microservice.scheduler.store: unsupported scheduler store \"mysql://x\"", 1, true))
    url, err = settings.store_url(app({}), {}, function() return "amqp://x" end)
    assert.is_nil(url)
    assert.is_truthy(err:find("JARARACA_SCHEDULER_STORE: unsupported", 1, true))
  end)
end)

describe("--actions / --groups", function()
  local list = { { name = "a", group = "x" }, { name = "b", group = "y" }, { name = "c", group = "x" } }
  it("select by name and by group; an unknown one is invalid", function()
    assert.equal(3, #scheduler.select(list))
    local got = scheduler.select(list, scheduler.split("a, b"))
    assert.same({ "a", "b" }, { got[1].name, got[2].name })
    got = scheduler.select(list, nil, { "x" })
    assert.same({ "a", "c" }, { got[1].name, got[2].name })
    local none, err, code = scheduler.select(list, { "z" })
    assert.is_nil(none)
    assert.equal("invalid", code)
    assert.equal('--actions: no scheduled action named "z" (the app\'s actions: a, b, c)', err)
    none, err = scheduler.select(list, nil, { "w" })
    assert.is_nil(none)
    assert.equal('--groups: no scheduled action is in group "w"', err)
  end)
end)

describe("schedule.run.execute: one run, one transaction", function()
  local function env(chain, instance, cls)
    return { container = {}, chain = chain, instances = { [cls] = instance } }
  end

  local function fake_action(fn, extra)
    local cls = {}
    local a = { name = "tick", controller = cls, member = "tick", fn = fn }
    for k, v in pairs(extra or {}) do a[k] = v end
    return a, cls
  end

  it("ok: the interceptors see kind 'schedule' and the run; staged actions run after the success", function()
    local seen, sent = {}, {}
    local chain = { { enter = function(_, ctx) seen[#seen + 1] = ctx.kind .. ":" .. ctx.run.tick .. ":"
      .. ctx.request_id end,
      exit = function(_, _, err) seen[#seen + 1] = "exit:" .. tostring(err) end } }
    local a, cls = fake_action(function(self, r)
      assert.equal("instance", self.name)
      staged.add(nil, function() sent[#sent + 1] = r.tick end)
      assert.same({}, sent) -- not before the commit
    end)
    local outcome = run.execute(env(chain, { name = "instance" }, cls), a,
      { action = "tick", tick = 60, fired_at = 60.001, token = 7 })
    assert.equal("ok", outcome)
    assert.same({ "schedule:60:tick@60", "exit:nil" }, seen)
    assert.same({ 60 }, sent)
  end)

  it("failed: exits get the error, staged actions are dropped, the exception handler gets (self, err, run)",
    function()
    local got, sent = {}, {}
    local a, cls = fake_action(function()
      staged.add(nil, function() sent[#sent + 1] = true end)
      error({ code = "boom" })
    end, { exception_handler = function(self, err, r) got = { self, err, r } end })
    local inst = {}
    local exits = {}
    local outcome, why = run.execute(env({ { exit = function(_, _, err) exits[#exits + 1] = err end } }, inst, cls),
      a, { action = "tick", tick = 5 })
    assert.equal("failed", outcome)
    assert.is_string(why)
    assert.same({ { code = "boom" } }, exits)
    assert.same({}, sent)
    assert.equal(inst, got[1])
    assert.same({ code = "boom" }, got[2])
    assert.equal(5, got[3].tick)
  end)

  it("an exception handler that raises is logged, not raised", function()
    local a, cls = fake_action(function() error("first") end,
      { exception_handler = function() error("second") end })
    assert.equal("failed", (run.execute(env({}, {}, cls), a, { action = "tick", tick = 1 })))
  end)
end)

describe("schedule.dispatch: a worker's run of a dispatched tick", function()
  local files = require "spec.support.files"
  local schedule = require "jararaca.schedule"
  local dispatch = require "jararaca.schedule.dispatch"
  local context = require "jararaca.context"

  it("records an action's own error reading \"timeout: ...\" as failed, a real timeout as timeout", function()
    local dir, fresh = files.temp_dir("sched-dispatch", ".db")
    local C = j.MessageBusController { name = "C" }
    C.own = j.ScheduledAction("* * * * *", { dispatch = "bus", timeout = 5 }, function()
      error("timeout: the action's own message", 0)
    end)
    C.slow = j.ScheduledAction("* * * * *", { dispatch = "bus", timeout = 0.01 }, function()
      require("jararaca.sched").sleep(1)
    end)
    local a = app({ C }, { scheduler = { store = "sqlite:///" .. fresh() } })
    local container = {}
    local s = assert(schedule.store(container, a))
    local by, tick = {}, math.floor(os.time() / 60) * 60 -- (within the store's window)
    for _, h in ipairs(dispatch.handlers(a)) do by[h.name] = h end
    local function deliver(name)
      local msg = { payload = function() return { action = name, tick = tick, fired_at = tick } end,
        reject = function() error("rejected") end }
      context.bind(context.new("message", container, {}))
      return pcall(by["schedule." .. name].fn, {}, msg)
    end
    assert.is_false((deliver("own")))
    assert.is_false((deliver("slow")))
    assert.equal("failed", s:runs("own")[1].outcome)
    assert.equal("timeout", s:runs("slow")[1].outcome)
    schedule.close(container)
    files.remove_dir(dir)
  end)
end)

describe("scheduler.latest_tick: misfire = 'run_once' picks the latest missed tick", function()
  local cron = require "jararaca.core.cron"
  local function act(expr) return { cron = assert(cron.parse(expr)) } end

  it("after a long downtime too (more than 100000 ticks missed)", function()
    local now = 1796320000.5
    assert.equal(1796320000, scheduler.latest_tick(act("* * * * * *"), now - 2 * 86400, now))
    assert.equal(1796320000 - 40, scheduler.latest_tick(act("* * * * *"), now - 3 * 86400, now)) -- minute 1796319960
    assert.equal(1796320000 - 40, scheduler.latest_tick(act("* * * * *"), 1796320000 - 100, now))
    assert.is_nil(scheduler.latest_tick(act("* * * * *"), 1796319960, now)) -- nothing since last
    -- a tick only once a year: found by walking from last
    assert.equal(1767225600, scheduler.latest_tick(act("0 0 1 1 *"), 1735689600, now)) -- 2026-01-01
  end)
end)
