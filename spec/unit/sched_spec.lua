-- Tasks, sleeping, structured concurrency and context inheritance, run
-- inside the real scheduler (these specs only work under `jararaca test`).
local sched = require "jararaca.sched"
local context = require "jararaca.context"
local j = require "jararaca"

describe("sched", function()
  it("sleep yields to the loop and resumes after the delay", function()
    local t0 = sched.clock()
    sched.sleep(0.05)
    local dt = sched.clock() - t0
    assert.is_true(dt >= 0.045, "slept " .. dt)
  end)

  it("sleep(0) lets other tasks run first", function()
    local order = {}
    local t = sched.spawn(function() order[#order + 1] = "child" end)
    order[#order + 1] = "parent"
    sched.sleep(0)
    assert.same({ "parent", "child" }, order)
    assert.is_true((t:wait()))
  end)

  it("a task woken by another runs as soon as the waker stops, before the loop's next event", function()
    -- A and C wake from timers of the same turn; A wakes B. B runs right
    -- after A parks (a hand-over costs no turn of the loop), before C.
    local csched = require "jararaca.core.sched"
    local order, hb, gb = {}, nil, nil
    local b = sched.spawn(function()
      hb, gb = csched.current()
      csched.wait()
      order[#order + 1] = "B"
    end)
    local a = sched.spawn(function()
      sched.sleep(0.01)
      order[#order + 1] = "A"
      csched.wake(hb, gb)
      sched.sleep(0.02)
    end)
    local c = sched.spawn(function()
      sched.sleep(0.01)
      order[#order + 1] = "C"
    end)
    for _, t in ipairs { a, b, c } do assert.is_true((t:wait(1))) end
    assert.same({ "A", "B", "C" }, order)
  end)

  it("sleep rejects a non-number", function()
    assert.has_error(function() sched.sleep("1") end, "sleep(seconds): seconds must be a number")
  end)

  it("spawn + wait returns the results", function()
    local t = sched.spawn(function(a, b) sched.sleep(0.01); return a + b, "x" end, 2, 3)
    local ok, sum, x = t:wait()
    assert.is_true(ok)
    assert.equal(5, sum)
    assert.equal("x", x)
  end)

  it("wait returns false and the error of a failed task", function()
    local t = sched.spawn(function() error("boom", 0) end)
    local ok, err = t:wait()
    assert.is_false(ok)
    assert.equal("boom", err)
  end)

  it("wait with a timeout returns nil, 'timeout' and the task goes on", function()
    local t = sched.spawn(function() sched.sleep(0.2); return 1 end)
    local ok, err = t:wait(0.01)
    assert.is_nil(ok)
    assert.equal("timeout", err)
    assert.same({ true, 1 }, { t:wait() })
  end)

  it("gather runs concurrently: three 0.2 s sleeps finish well before 0.6 s", function()
    local t0 = sched.clock()
    local a, b, c = j.gather(
      function() sched.sleep(0.2); return "a" end,
      function() sched.sleep(0.2); return "b" end,
      function() sched.sleep(0.2); return "c" end)
    local dt = sched.clock() - t0
    assert.same({ "a", "b", "c" }, { a, b, c })
    assert.is_true(dt < 0.45, "gather took " .. dt)
  end)

  it("gather raises the first error after all finished", function()
    local finished = 0
    assert.has_error(function()
      j.gather(
        function() sched.sleep(0.02); finished = finished + 1 end,
        function() error("second failed", 0) end,
        function() sched.sleep(0.01); finished = finished + 1 end)
    end, "second failed")
    assert.equal(2, finished)
  end)

  it("timeout returns the results when fast enough", function()
    assert.same({ true, 42 }, { j.timeout(1, function() sched.sleep(0.01); return 42 end) })
  end)

  it("timeout cancels a slow function", function()
    local caught
    local ok, err = j.timeout(0.02, function()
      local _, e = pcall(sched.sleep, 5)
      caught = e
      error(e, 0)
    end)
    assert.is_nil(ok)
    assert.equal("timeout", err)
    -- the cancellation resumes the function on the next tick
    sched.sleep(0)
    assert.equal(sched.CANCELLED, caught)
  end)

  it("cancel raises CANCELLED inside the sleeping task", function()
    local caught
    local t = sched.spawn(function()
      local ok, err = pcall(sched.sleep, 5)
      caught = err
      error(err, 0)
    end)
    sched.sleep(0) -- one tick: the task starts and parks in its sleep
    assert.is_true(t:cancel())
    local ok, err = t:wait()
    assert.is_false(ok)
    assert.equal(sched.CANCELLED, err)
    assert.equal(sched.CANCELLED, caught)
  end)

  it("a user's coroutine.wrap that sleeps inside still works", function()
    local gen = coroutine.wrap(function()
      for i = 1, 3 do
        sched.sleep(0.005)
        coroutine.yield(i)
      end
      return "done"
    end)
    assert.same({ 1, 2, 3, "done" }, { gen(), gen(), gen(), gen() })
  end)

  it("coroutine.resume reports errors of a user's coroutine", function()
    local co = coroutine.create(function() sched.sleep(0.001); error("inner", 0) end)
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.equal("inner", err)
  end)

  it("a bare coroutine.yield inside a task just lets others run", function()
    local t = sched.spawn(function()
      -- yield at the top of the task: the scheduler resumes it next tick
      local r = { coroutine.running() }
      coroutine.yield()
      return "after"
    end)
    assert.same({ true, "after" }, { t:wait(1) })
  end)

  it("spawned tasks and user coroutines inherit the context", function()
    local ctx = context.new("test", nil, { marker = "m1" })
    local saved = context.current()
    context.bind(ctx)
    local seen = {}
    local t = sched.spawn(function()
      seen.task = context.current().marker
      local co = coroutine.wrap(function() seen.co = context.current().marker end)
      co()
    end)
    t:wait()
    context.bind(saved)
    assert.same({ task = "m1", co = "m1" }, seen)
  end)

  it("use_current_container / use_app_context raise outside a transaction", function()
    local t = sched.spawn(function()
      context.bind(nil)
      return pcall(j.use_app_context)
    end)
    local _, ok, err = t:wait()
    assert.is_false(ok)
    assert.matches("outside a transaction", err)
  end)
end)
