-- `jararaca gen-tsi` end to end: the real binary writes TypeScript, tsc
-- compiles it with --strict, and the compiled client talks to the real
-- server (spec/js/tsgen_client_test.mjs). Needs Node 18+ and the packages of
-- spec/js (cd spec/js && npm ci): missing ones fail, nothing is skipped.
local server = require "spec.support.server"
local runner = require "spec.support.run"

local TSC = "spec/js/node_modules/typescript/bin/tsc"
local CLIENT_TEST = "spec/js/tsgen_client_test.mjs"
local HELLO = "examples/hello/app.lua"
local TYPED = "spec/integration/apps/typed.lua"

local read, run = runner.read, runner.run

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  f:close()
end

local temps = {}
-- A fresh temporary path ending with suffix (removed in teardown).
local function temp(suffix)
  local base = os.tmpname()
  os.remove(base)
  local p = base .. (suffix or "")
  temps[#temps + 1] = p
  return p
end

local function gen_tsi(...)
  return run({ server.bin, "gen-tsi", ... }, 30)
end

-- Fails with a clear message when node or the spec/js packages are missing.
local function require_node()
  local status, out, err = run({ "node", "--version" }, 30)
  assert(status == 0, "gen-tsi specs need Node.js 18+ on PATH (`node --version` failed: " .. err .. ")")
  local major = tonumber(out:match("^v(%d+)"))
  assert(major and major >= 18, "gen-tsi specs need Node.js 18+ (found " .. out .. ")")
  assert(read(TSC), "gen-tsi specs need TypeScript in spec/js/node_modules: run `cd spec/js && npm ci`")
end

-- tsc FILE with the flags the issue names (+ extra): status, output.
local function tsc(file, extra)
  local argv = { "node", TSC, "--strict", "--noEmit", "--target", "ES2020", "--lib", "ES2020,DOM" }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = file
  local status, out, err = run(argv, 180)
  return status, out .. err
end

local function assert_compiles(file, extra)
  local status, output = tsc(file, extra)
  assert(status == 0, ("tsc failed on %s (status %s):\n%s\n--- file ---\n%s"):format(
    file, tostring(status), output, read(file) or "?"))
end

-- A rich app (every schema kind and route shape) written to a temp file.
local MODEL_APP = [==[
local j = require "jararaca"
local s = require "jararaca.schema"
local function handler() end
local Priority = s.enum("Priority", { "low", "normal", "high" })
local Tag = s.object("Tag", { { "name", s.string { description = "The label" } }, { "color", s.string():optional() } })
local TaskCreate = s.object("TaskCreate", {
  { "name", s.string() }, { "priority", Priority:default("normal") }, { "tags", s.array(Tag):default({}) },
  { "due", s.date():optional() }, { "estimate_hours", s.number():nullable():optional() },
  { "meta", s.map(s.string()):optional() }, { "extra", s.any():optional() },
}, { description = "What a client sends\n*/ to create a task." })
local Task = s.extend(TaskCreate, "Task", { { "id", s.uuid() }, { "done", s.boolean() },
  { "created_at", s.datetime() }, { "big", s.integer():optional() }, { "kind", s.literal("task") } })
local TreeNode = s.object("TreeNode", { { "label", s.string() },
  { "children", s.array(s.ref("TreeNode")):default({}) }, { "parent", s.ref("TreeNode"):nullable():optional() } })
local Shape = s.one_of(s.object("Circle", { { "kind", s.literal("circle") }, { "radius", s.number() } }),
  s.object("Square", { { "kind", s.literal("square") }, { "side", s.number() } }))
local Base = s.object("Base", { { "a", s.string() }, { "b", s.integer() } })
s.expose(s.extend(Base, "Derived", { { "b", s.string() }, { "c", s.boolean() } }))
s.expose(s.object("Odd", { { "content-type", s.string() },
  { "nested", s.object { { "x", s.integer() }, { "y", s.array(s.map(s.integer():nullable())):optional() } } },
  { "level", s.enum { "a", "b\"c" } }, { "empty", s.object {} },
  { "lits", s.one_of(s.literal(1), s.literal(-2.5), s.literal(true), s.literal("x\n")) },
  { "inter", s.extend(Base, { { "z", s.boolean() } }) } }))
s.expose(s.enum("Color", { "red", "dark-blue", "2d", "Red" }))
local Tasks = j.RestController("/tasks", { name = "TasksController" })
Tasks.create = j.Post("", { body = TaskCreate, response = Task, status = 201, summary = "Create a task" }, handler)
Tasks.list = j.Get("", { query = { page = s.integer():default(0), priority = Priority:optional(),
  tag = s.array(s.string()):optional() }, response = s.object { { "items", s.array(Task) }, { "total", s.integer() } } },
  handler)
Tasks.get_one = j.Get("/{task_id}", { params = { task_id = s.uuid() }, headers = { ["x-trace"] = s.string():optional(),
  ["x-n"] = s.integer():optional() }, response = Task }, handler)
Tasks.remove = j.Delete("/{task_id}", { params = { task_id = s.uuid() }, status = 204 }, handler)
Tasks.need_header = j.Get("/{flag}/h", { params = { flag = s.boolean() }, query = { q = s.string():optional() },
  headers = { ["x-token"] = s.string() } }, handler)
Tasks["delete"] = j.Get("/del/{p}", { params = { p = Priority } }, handler)
Tasks["odd-name"] = j.Get("/odd", handler)
local Misc = j.RestController("/misc", { name = "MiscController" })
Misc.tree = j.Post("/tree", { body = TreeNode, response = TreeNode }, handler)
Misc.area = j.Post("/area", { body = Shape, response = s.object { { "area", s.number() } } }, handler)
Misc.count = j.Get("/count/{n:int}", {}, handler)
Misc.files = j.Get("/files/{rest:path}", { response = s.array(s.one_of(s.string(), s.integer())) }, handler)
Misc.untyped = j.Put("/u/{id}", handler)
return j.Microservice { controllers = { Tasks, Misc } }
]==]

describe("jararaca gen-tsi", function()
  setup(require_node)

  teardown(function()
    for _, p in ipairs(temps) do
      if not os.remove(p) then run({ "rm", "-rf", p }, 30) end
    end
  end)

  for _, app in ipairs({ HELLO, TYPED }) do
    it("writes TypeScript for " .. app .. " that compiles with tsc --strict", function()
      local out = temp(".ts")
      local status, stdout, stderr = gen_tsi(app, out)
      assert.equal(0, status, stderr)
      assert.equal("", stdout)
      assert.equal("jararaca gen-tsi: wrote " .. out .. "\n", stderr)
      local text = assert(read(out))
      assert.equal(1, text:find("// Generated by `jararaca gen-tsi " .. app .. " " .. out .. "`.", 1, true))
      assert_compiles(out)
    end)
  end

  it("writes every schema shape in a form tsc accepts, even with extra strictness flags", function()
    local app = temp(".lua")
    write(app, MODEL_APP)
    local out = temp(".ts")
    local status, _, stderr = gen_tsi(app, out)
    assert.equal(0, status, stderr)
    local text = read(out)
    assert.truthy(text:find("export interface Derived extends Omit<Base, \"b\"> {", 1, true))
    assert.truthy(text:find("  async \"odd-name\"(query: Record<string, unknown> = {}): Promise<unknown> {", 1, true))
    assert_compiles(out, { "--noUnusedLocals", "--noUnusedParameters", "--exactOptionalPropertyTypes",
      "--noImplicitReturns", "--noUncheckedIndexedAccess", "--noPropertyAccessFromIndexSignature",
      "--noImplicitOverride", "--erasableSyntaxOnly", "--isolatedModules", "--verbatimModuleSyntax" })
  end)

  it("prints the same TypeScript with --stdout, deterministically", function()
    local out = temp(".ts")
    assert.equal(0, (gen_tsi(TYPED, out)))
    local status, stdout, stderr = gen_tsi(TYPED, "--stdout")
    assert.equal(0, status, stderr)
    assert.equal("", stderr)
    local file = read(out)
    local function body(t) return (t:gsub("^[^\n]*\n", "")) end
    assert.equal(1, stdout:find("// Generated by `jararaca gen-tsi " .. TYPED .. " --stdout`.", 1, true))
    assert.equal(body(file), body(stdout))
    local _, again = gen_tsi(TYPED, "--stdout")
    assert.equal(stdout, again)
  end)

  it("prints its usage with --help", function()
    local status, stdout = gen_tsi("--help")
    assert.equal(0, status)
    assert.truthy(stdout:find("usage: jararaca gen-tsi APP.lua OUT.ts", 1, true))
    assert.truthy(stdout:find("--stdout", 1, true))
  end)

  describe("fails with a clear message and a non-zero status", function()
    it("on bad usage (status 2)", function()
      local cases = {
        { {}, "jararaca gen-tsi: missing the app file" },
        { { HELLO }, "jararaca gen-tsi: missing the output path: give OUT.ts, or --stdout" },
        { { HELLO, "x.ts", "--stdout" }, "jararaca gen-tsi: give either an output path or --stdout, not both" },
        { { HELLO, "--watch" }, "jararaca gen-tsi: unknown option --watch" },
        { { HELLO, "a.ts", "b.ts" }, "jararaca gen-tsi: too many arguments" },
      }
      for _, c in ipairs(cases) do
        local status, stdout, stderr = gen_tsi(unpack(c[1]))
        assert.equal(2, status, table.concat(c[1], " "))
        assert.equal("", stdout)
        assert.equal(1, stderr:find(c[2], 1, true), stderr)
      end
    end)

    it("when the app file is missing, broken or not an app (status 1)", function()
      local out = temp(".ts")
      local status, _, stderr = gen_tsi("does/not/exist.lua", out)
      assert.equal(1, status)
      assert.equal("jararaca gen-tsi: cannot open app file 'does/not/exist.lua': no such file or not readable\n", stderr)

      local bad = temp(".lua")
      write(bad, "local j = require 'jararaca'\nreturn j.Microservice {\n")
      status, _, stderr = gen_tsi(bad, out)
      assert.equal(1, status)
      assert.truthy(stderr:find("jararaca gen-tsi: cannot load app file " .. bad .. ":3:", 1, true), stderr)

      write(bad, "error('boom at load')\n")
      status, _, stderr = gen_tsi(bad, out)
      assert.equal(1, status)
      assert.truthy(stderr:find("error while running app file " .. bad, 1, true), stderr)
      assert.truthy(stderr:find("boom at load", 1, true), stderr)

      write(bad, "return 42\n")
      status, _, stderr = gen_tsi(bad, out)
      assert.equal(1, status)
      assert.truthy(stderr:find("must return jararaca.Microservice{...} (it returned number)", 1, true), stderr)
      assert.is_nil(read(out), "no output file on failure")
    end)

    it("when a schema cannot be expressed (status 1, no file written)", function()
      local app = temp(".lua")
      write(app, [[
local j = require "jararaca"
local s = require "jararaca.schema"
local C = j.RestController("/x", { name = "XController" })
C.weird = j.Post("", { body = s.object("Weird", { { "when", setmetatable({ kind = "time" }, getmetatable(s.string())) } }) },
  function() end)
return j.Microservice { controllers = { C } }
]])
      local out = temp(".ts")
      local status, stdout, stderr = gen_tsi(app, out)
      assert.equal(1, status)
      assert.equal("", stdout)
      assert.equal(("jararaca gen-tsi: cannot generate TypeScript for %s: Weird.when: unsupported schema kind \"time\"\n")
        :format(app), stderr)
      assert.is_nil(read(out))
    end)

    it("when the output cannot be written (status 1)", function()
      local status, _, stderr = gen_tsi(HELLO, "/nonexistent-dir-for-gen-tsi/out.ts")
      assert.equal(1, status)
      assert.equal("jararaca gen-tsi: cannot write /nonexistent-dir-for-gen-tsi/out.ts: No such file or directory\n",
        stderr)
      local dir = temp(".d")
      assert.equal(0, (run({ "mkdir", dir })))
      status, _, stderr = gen_tsi(HELLO, dir)
      assert.equal(1, status)
      assert.equal(1, stderr:find("jararaca gen-tsi: cannot write " .. dir .. ": ", 1, true), stderr)
    end)
  end)

  -- Generate, compile to CommonJS, serve the app, run the JS checks.
  local function client_round_trip(app)
    local ts = temp(".ts")
    local status, _, stderr = gen_tsi(app, ts)
    assert.equal(0, status, stderr)
    local outdir = temp(".out")
    local tstatus, tout = run({ "node", TSC, "--strict", "--target", "ES2020", "--lib", "ES2020,DOM",
      "--module", "commonjs", "--outDir", outdir, ts }, 180)
    assert(tstatus == 0, "tsc failed:\n" .. tostring(tout))
    local js = outdir .. "/" .. ts:match("([^/]+)%.ts$") .. ".js"
    assert(read(js), "tsc wrote no " .. js)
    local srv = server.start(app)
    local ok, nstatus, nout, nerr = pcall(run, { "node", CLIENT_TEST, js, "http://127.0.0.1:" .. srv.port }, 120)
    local log = srv:output()
    assert.equal(0, (srv:stop()))
    assert(ok, nstatus)
    assert(nstatus == 0, ("the generated client failed against %s (status %s):\n%s%s\n--- server log ---\n%s")
      :format(app, tostring(nstatus), nout, nerr, log))
    assert.truthy(nout:find("all %d+ checks passed"), nout)
  end

  it("drives the typed app through the generated client (create, get, list, 404, 422, 204...)", function()
    client_round_trip(TYPED)
  end)

  it("drives examples/hello through the generated client", function()
    client_round_trip(HELLO)
  end)
end)
