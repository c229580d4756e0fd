-- The command line with the real binary: --help on every command, and what
-- `jararaca test` itself prints and accepts.
local cli = require "spec.support.cli"
local wait = require "spec.support.wait"

local find = string.find

local function has(text, s) return find(text, s, 1, true) ~= nil end

describe("jararaca --help", function()
  it("lists every command and exits 0", function()
    for _, flag in ipairs { "--help", "-h", "help" } do
      local status, out, err = cli.run({ flag })
      assert.equal(0, status, err)
      assert.equal("", err)
      assert.truthy(has(out, "\nusage:\n"), out)
      for _, cmd in ipairs { "server", "gen-tsi", "migrate", "test", "version", "help", "worker", "scheduler" } do
        assert.truthy(out:find("\n  jararaca " .. cmd:gsub("%-", "%%-") .. " "), cmd .. " is not listed:\n" .. out)
      end
    end
  end)

  it("`help --help` and `--help COMMAND` work too", function()
    local status, out = cli.run({ "help", "--help" })
    assert.equal(0, status)
    assert.truthy(has(out, "\n  jararaca server APP.lua [options]"), out)
    status, out = cli.run({ "--help", "server" })
    assert.equal(0, status)
    assert.equal(1, find(out, "usage: jararaca server APP.lua [options]", 1, true), out)
  end)

  it("without a command prints the same list on stdout and exits 2", function()
    local status, out = cli.run({})
    assert.equal(2, status)
    assert.truthy(has(out, "\n  jararaca server APP.lua [options]"), out)
  end)
end)

describe("jararaca COMMAND --help", function()
  -- command, a line the usage starts with, options its text must name
  local CASES = {
    { "server", "usage: jararaca server APP.lua [options]", { "--port N", "--workers N|auto", "--log-level LEVEL",
      "--access-log", "--grace-period SECONDS", "--max-connections N", "-h, --help" } },
    { "test", "usage: jararaca test [PATH...] [options]", { "--log-level LEVEL", "--filter=PATTERN", "--output=FORMAT" } },
    { "gen-tsi", "usage: jararaca gen-tsi APP.lua OUT.ts", { "--stdout" } },
    { "migrate", "usage: jararaca migrate APP.lua", { "--name NAME", "--status", "--to VERSION" } },
    { "version", "usage: jararaca version", {} },
    { "worker", "usage: jararaca worker APP.lua [options]", { "--handlers HANDLERS", "--groups GROUPS",
      "--prefetch N", "--grace-period SECONDS", "--workers N|auto", "--broker-url URL", "JARARACA_BUS_URL", "-h, --help" } },
    { "scheduler", "usage: jararaca scheduler APP.lua [options]", { "--actions ACTIONS", "--groups GROUPS",
      "--grace-period SECONDS", "JARARACA_SCHEDULER_STORE", "-h, --help" } },
  }
  for _, case in ipairs(CASES) do
    local cmd, head, names = case[1], case[2], case[3]
    it(cmd .. ": --help, -h and `help " .. cmd .. "` print its usage and options, exit 0", function()
      local texts = {}
      for _, args in ipairs { { cmd, "--help" }, { cmd, "-h" }, { "help", cmd } } do
        local status, out, err = cli.run(args)
        assert.equal(0, status, table.concat(args, " ") .. ": " .. err)
        assert.equal("", err)
        assert.equal(1, find(out, head, 1, true), table.concat(args, " ") .. " printed:\n" .. out)
        for _, n in ipairs(names) do assert.truthy(has(out, n), n .. " missing from:\n" .. out) end
        texts[#texts + 1] = out
      end
      assert.equal(texts[1], texts[2])
      assert.equal(texts[1], texts[3])
    end)
  end

  it("--help wins over the other arguments (nothing is started)", function()
    local status, out = cli.run({ "server", "no-such-app.lua", "--port", "1", "--help" })
    assert.equal(0, status)
    assert.truthy(has(out, "usage: jararaca server"), out)
    status, out = cli.run({ "migrate", "no-such-app.lua", "-h" })
    assert.equal(0, status)
    assert.truthy(has(out, "usage: jararaca migrate"), out)
  end)

  it("every server option is in `server --help`", function()
    local _, out = cli.run({ "server", "--help" })
    for _, opt in ipairs { "host", "port", "workers", "log-level", "log-format", "access-log", "grace-period",
      "max-body-size", "max-header-size", "max-headers", "header-timeout", "body-timeout", "idle-timeout",
      "write-timeout", "max-connections" } do
      assert.truthy(out:find("\n  %-%-" .. opt:gsub("%-", "%%-") .. "[ \n]"), opt .. " missing:\n" .. out)
    end
  end)

  it("`help` with an unknown command fails with a clear message, exit 2", function()
    local status, out, err = cli.run({ "help", "nope" })
    assert.equal(2, status)
    assert.equal("", out)
    assert.truthy(has(err, "jararaca help: unknown command 'nope' (see jararaca --help)"), err)
  end)
end)

describe("jararaca test", function()
  local FIXTURE = "spec/integration/apps/migrating_client.lua"
  -- no log level from the environment running these specs
  local ENV = { JARARACA_LOG_LEVEL = "" }

  it("kills the processes a failed spec left running when the run ends", function()
    local pid_file = os.tmpname()
    local status, out, err = cli.run({ "test", "spec/integration/apps/leaves_process.lua" },
      { env = { JARARACA_LOG_LEVEL = "", PID_FILE = pid_file } })
    assert.equal(1, status, out .. err)
    assert.truthy(has(err, "jararaca test: killed 1 process(es) the specs left running"), err)
    local f = assert(io.open(pid_file))
    local pid = assert(tonumber(f:read("*a")))
    f:close()
    os.remove(pid_file)
    -- dead: gone, or a zombie until its new parent reaps it. The SIGKILL was
    -- sent as the run ended; the kernel may take a moment to act on it.
    local function state()
      local stat = io.open("/proc/" .. pid .. "/stat")
      if not stat then return "gone" end
      local st = stat:read("*a"):match("^%d+ %b() (%a)")
      stat:close()
      return st or "gone"
    end
    local final = wait.until_true(function()
      local st = state()
      return (st == "gone" or st == "Z") and st
    end, "the left-over process to die", 5)
    assert.truthy(final == "gone" or final == "Z")
  end)

  it("keeps migration lines out of the output by default", function()
    local status, out, err = cli.run({ "test", FIXTURE }, { env = ENV })
    assert.equal(0, status, out .. err)
    assert.truthy(has(out, "1 success / 0 failures"), out)
    assert.falsy(has(out .. err, "applied migration"), out .. err)
  end)

  it("shows them at debug with --log-level debug (or JARARACA_LOG_LEVEL=debug)", function()
    for _, run in ipairs {
      { { "test", "--log-level", "debug", FIXTURE }, ENV },
      { { "test", "--log-level=debug", FIXTURE }, ENV },
      { { "test", FIXTURE }, { JARARACA_LOG_LEVEL = "debug" } },
    } do
      local status, out, err = cli.run(run[1], { env = run[2] })
      assert.equal(0, status, out .. err)
      for _, file in ipairs { "0001_create_tasks.sql", "0002_add_index.sql", "0005_seed.lua" } do
        assert.truthy((out .. err):find("DEBUG [^\n]*database default: applied migration " .. file:gsub("%.", "%%.")),
          file .. " not logged at debug:\n" .. out .. err)
      end
    end
  end)

  it("refuses a bad --log-level (exit 2)", function()
    local status, _, err = cli.run({ "test", "--log-level", "loud", FIXTURE }, { env = ENV })
    assert.equal(2, status)
    assert.truthy(has(err, "jararaca test: --log-level: unknown log level 'loud'"), err)
    status, _, err = cli.run({ "test", "--log-level" }, { env = ENV })
    assert.equal(2, status)
    assert.truthy(has(err, "option --log-level needs a value"), err)
  end)

  it("passes busted options in the order given (-o TAP before --filter and the path)", function()
    local status, out, err = cli.run({ "test", "-o", "TAP", "--filter=answers", FIXTURE }, { env = ENV })
    assert.equal(0, status, out .. err)
    assert.truthy(has(out, "ok 1 - an app that migrates on start starts through the test client and answers"), out)
    assert.truthy(has(out, "1..1"), out)
    status, out = cli.run({ "test", "-o", "TAP", "--filter=nothing matches this", FIXTURE }, { env = ENV })
    assert.equal(0, status)
    assert.truthy(has(out, "1..0"), out)
  end)
end)
