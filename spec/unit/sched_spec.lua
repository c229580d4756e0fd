-- Tasks, sleeping, structured concurrency and context inheritance, run
-- inside the real scheduler (these specs only work under `jararaca test`).
local sched = require "jararaca.sched"
local context = require "jararaca.context"
local j = require "jararaca"
local wait = require "spec.support.wait"

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

  it("wait raises the error of a failed task again, as the same value", function()
    local t = sched.spawn(function() error("boom", 0) end)
    assert.has_error(function() t:wait() end, "boom")
    local e = setmetatable({}, { __tostring = function() return "an error object" end })
    local t2 = sched.spawn(function() error(e) end)
    local ok, got = pcall(t2.wait, t2)
    assert.is_false(ok)
    assert.equal(e, got)
  end)

  it("wait with a timeout returns nil, msg, 'timeout' and the task goes on", function()
    local t = sched.spawn(function() sched.sleep(0.2); return 1 end)
    local ok, err, code = t:wait(0.01)
    assert.is_nil(ok)
    assert.equal("the task is still running: timed out after 0.01 s", err)
    assert.equal("timeout", code)
    assert.same({ true, 1 }, { t:wait() })
  end)

  it("wait on a cancelled task returns nil, msg, 'cancelled'", function()
    local t = sched.spawn(function() sched.sleep(5) end)
    sched.sleep(0)
    assert.is_true(t:cancel())
    assert.same({ nil, "the task was cancelled", "cancelled" }, { t:wait() })
  end)

  it("a task cancelled while it waits for another gets CANCELLED raised", function()
    local inner = sched.spawn(function() sched.sleep(0.05); return "inner done" end)
    local waiter = sched.spawn(function() return inner:wait() end)
    sched.sleep(0) -- the waiter parks in wait()
    assert.is_true(waiter:cancel())
    assert.same({ nil, "the task was cancelled", "cancelled" }, { waiter:wait() })
    assert.same({ true, "inner done" }, { inner:wait() }) -- the awaited task goes on
  end)

  it("wait misused raises: a timeout that is not a number", function()
    local t = sched.spawn(function() sched.sleep(0.01) end)
    assert.has_error(function() t:wait("1") end, "task:wait([timeout]): timeout must be a number of seconds")
    t:wait()
    assert.same({ true }, { t:wait() }) -- a finished task can be waited for again
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

  it("timeout returns every result, nils included", function()
    local function pack(...) return { n = select("#", ...), ... } end
    local r = pack(j.timeout(1, function() return nil, 2 end))
    assert.equal(3, r.n)
    assert.is_true(r[1])
    assert.is_nil(r[2])
    assert.equal(2, r[3])
  end)

  it("timeout cancels a slow function and returns nil, msg, 'timeout'", function()
    local caught
    local ok, err, code = j.timeout(0.02, function()
      local _, e = pcall(sched.sleep, 5)
      caught = e
      error(e, 0)
    end)
    assert.is_nil(ok)
    assert.equal("timed out after 0.02 s", err)
    assert.equal("timeout", code)
    -- the cancellation resumes the function on the next tick
    sched.sleep(0)
    assert.equal(sched.CANCELLED, caught)
  end)

  it("timeout raises fn's error again, as the same value", function()
    assert.has_error(function() j.timeout(1, function() error("inside", 0) end) end, "inside")
    local e = { code = 7 }
    local ok, got = pcall(j.timeout, 1, function() sched.sleep(0.001); error(e) end)
    assert.is_false(ok)
    assert.equal(e, got)
  end)

  it("timeout cancelled while it waits cancels fn's task and raises CANCELLED", function()
    local inner_caught, parked
    local outer = sched.spawn(function()
      return j.timeout(5, function()
        parked = true
        local _, e = pcall(sched.sleep, 5)
        inner_caught = e
      end)
    end)
    wait.until_true(function() return parked end, "fn's task sleeps", 5, 0)
    assert.is_true(outer:cancel())
    assert.same({ nil, "the task was cancelled", "cancelled" }, { outer:wait() })
    sched.sleep(0)
    assert.equal(sched.CANCELLED, inner_caught)
  end)

  it("timeout misused raises", function()
    assert.has_error(function() j.timeout("1", function() end) end, "timeout(seconds, fn, ...): seconds must be a number")
    assert.has_error(function() j.timeout(1, 42) end, "timeout(seconds, fn, ...): fn must be a function")
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
    assert.same({ nil, "the task was cancelled", "cancelled" }, { t:wait() })
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

describe("an error value whose __tostring raises", function()
  it("comes back from j.timeout as raised, and a failed spawned task still reports it", function()
    local bad = setmetatable({ tag = "mine" }, { __tostring = function() error("no text") end })
    local ok, err = pcall(j.timeout, 1, function() error(bad) end)
    assert.is_false(ok)
    assert.equal(bad, err)
    -- a fire-and-forget task: its failure is logged, the pooled coroutine lives on
    j.spawn(function() error(bad) end)
    j.sleep(0)
    assert.same({ true, 42 }, { j.timeout(1, function() return 42 end) })
  end)
end)
