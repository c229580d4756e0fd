-- Specs for jararaca.staged: actions that run after their transaction
-- succeeded and are dropped when it failed, through the interceptor chain
-- every transaction runs in.
local staged = require "jararaca.staged"
local interceptors = require "jararaca.interceptors"
local context = require "jararaca.context"

-- Run fn as a transaction of kind through interceptors (list), with ctx bound.
local function transaction(list, fn, kind)
  local ctx = context.new(kind or "http", {})
  local prev = context.current()
  context.bind(ctx)
  local r = { interceptors.run(list, ctx, fn) }
  context.bind(prev)
  return ctx, r
end

describe("jararaca.staged", function()
  it("runs the actions in order, with their arguments, after the chain's exits", function()
    local trace = {}
    local icpt = { exit = function(_, _, err) trace[#trace + 1] = "exit:" .. tostring(err) end }
    local ctx = transaction({ icpt }, function()
      assert.equal("staged", staged.add(nil, function(a, b) trace[#trace + 1] = a .. b end, "x", "1"))
      staged.add(nil, function(...) trace[#trace + 1] = select("#", ...) end, nil, nil)
      trace[#trace + 1] = "handler"
    end)
    assert.same({ "handler", "exit:nil", "x1", 2 }, trace)
    assert.equal(0, staged.pending(ctx))
  end)

  it("drops them when the handler raises", function()
    local ran = false
    local _, r = transaction({}, function()
      staged.add(nil, function() ran = true end)
      error("boom", 0)
    end)
    assert.is_false(r[1])
    assert.is_false(ran)
  end)

  it("drops them when an exit raises (a failed commit)", function()
    local ran = false
    local commit = { exit = function() error("commit failed", 0) end }
    local _, r = transaction({ commit }, function() staged.add(nil, function() ran = true end) end)
    assert.same({ false, "commit failed" }, r)
    assert.is_false(ran)
  end)

  it("drops them when the handler raised, even if an exit suppressed the error", function()
    -- a session inside the suppressing interceptor has rolled back: the
    -- messages would announce changes that were never committed
    local ran, rolled_back = false, false
    local forgive = { exit = function() return true end }
    local session = { exit = function(_, _, err) rolled_back = err ~= nil end }
    local _, r = transaction({ forgive, session }, function()
      staged.add(nil, function() ran = true end)
      error("boom", 0)
    end)
    assert.same({ true }, r) -- the transaction's caller sees the suppression
    assert.is_true(rolled_back)
    assert.is_false(ran)
  end)

  it("drops them when an exit raised and an outer one suppressed it", function()
    local ran = false
    local forgive = { exit = function() return true end }
    local commit = { exit = function() error("commit failed", 0) end }
    transaction({ forgive, commit }, function() staged.add(nil, function() ran = true end) end)
    assert.is_false(ran)
  end)

  it("runs the next actions when one raises, and logs it", function()
    local trace = {}
    transaction({}, function()
      staged.add(nil, function() error("first fails", 0) end)
      staged.add(nil, function() trace[#trace + 1] = "second" end)
    end)
    assert.same({ "second" }, trace)
  end)

  it("runs at once outside a transaction and in startup/shutdown", function()
    local prev = context.current()
    context.bind(nil)
    local ran = 0
    assert.equal("ran", staged.add(nil, function() ran = ran + 1 end))
    context.bind(context.new("startup", {}))
    assert.equal("ran", staged.add(nil, function() ran = ran + 1 end))
    context.bind(prev)
    assert.equal(2, ran)
  end)

  it("after the outcome: runs at once after a success, drops after a failure", function()
    local ok_ctx = transaction({}, function() end)
    local bad_ctx = transaction({}, function() error("x", 0) end)
    local ran = {}
    assert.equal("ran", staged.add(ok_ctx, function() ran[#ran + 1] = "ok" end))
    assert.equal("dropped", staged.add(bad_ctx, function() ran[#ran + 1] = "bad" end))
    assert.same({ "ok" }, ran)
  end)

  it("takes an explicit context", function()
    local ctx = context.new("message", {})
    assert.equal("staged", staged.add(ctx, function() end))
    assert.equal(1, staged.pending(ctx))
    staged.settle(ctx, false)
    assert.equal(0, staged.pending(ctx))
  end)

  it("treats a context made with _staged = false (the dispatcher's) as having nothing staged", function()
    local ran = {}
    local ctx = { kind = "http", _staged = false }
    assert.equal(0, staged.pending(ctx))
    assert.equal("staged", staged.add(ctx, function(v) ran[#ran + 1] = v end, "a"))
    assert.equal(1, staged.pending(ctx))
    staged.settle(ctx, true)
    assert.same({ "a" }, ran)
    local empty = { kind = "http", _staged = false }
    staged.settle(empty, true) -- nothing to run
    assert.equal("ran", staged.add(empty, function(v) ran[#ran + 1] = v end, "b"))
    local failed = { kind = "http", _staged = false }
    staged.settle(failed, false)
    assert.equal("dropped", staged.add(failed, function() ran[#ran + 1] = "c" end))
    assert.same({ "a", "b" }, ran)
  end)

  it("settled: runs fn(true, ...) after a success, in order with the others", function()
    local trace = {}
    local commit = { exit = function() trace[#trace + 1] = "commit" end }
    transaction({ commit }, function()
      staged.add(nil, function() trace[#trace + 1] = "add" end)
      assert.equal("staged", staged.settled(nil, function(ok, a, b) trace[#trace + 1] = { ok, a, b } end, "x", nil))
    end)
    assert.same({ "commit", "add", { true, "x", nil } }, trace)
  end)

  it("settled: runs fn(false, ...) after a failed commit, a raise, an exit suppressing either", function()
    local commit = { exit = function() error("commit failed", 0) end }
    local forgive = { exit = function() return true end }
    local cases = {
      { { commit }, function() end },
      { {}, function() error("boom", 0) end },
      { { forgive, commit }, function() end },
      { { forgive }, function() error("boom", 0) end },
    }
    for i, c in ipairs(cases) do
      local got = {}
      transaction(c[1], function()
        staged.add(nil, function() got[#got + 1] = "dropped one ran" end)
        staged.settled(nil, function(ok, v) got[#got + 1] = { ok, v } end, i)
        c[2]()
      end)
      assert.same({ { false, i } }, got)
    end
  end)

  it("settled: after the outcome and outside a transaction, runs at once with the outcome", function()
    local ok_ctx = transaction({}, function() end)
    local bad_ctx = transaction({}, function() error("x", 0) end)
    local got = {}
    local function note(ok, v) got[#got + 1] = { ok, v } end
    assert.equal("ran", staged.settled(ok_ctx, note, "a"))
    assert.equal("ran", staged.settled(bad_ctx, note, "b"))
    local prev = context.current()
    context.bind(nil)
    assert.equal("ran", staged.settled(nil, note, "c"))
    context.bind(prev)
    assert.same({ { true, "a" }, { false, "b" }, { true, "c" } }, got)
  end)

  it("raises for misuse, naming the caller", function()
    local ok, err = pcall(staged.add, nil, "not a function")
    assert.is_false(ok)
    assert.matches("fn must be a function, got string$", err)
    ok, err = pcall(staged.add, 42, function() end)
    assert.is_false(ok)
    assert.matches("ctx must be a transaction context or nil, got number$", err)
    ok, err = pcall(function() staged.settled(nil, 1) end)
    assert.is_false(ok)
    assert.matches("^[^:]*staged_spec.lua:%d+: staged.settled%(ctx, fn, ...%): fn must be a function, got number$", err)
  end)
end)
