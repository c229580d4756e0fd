-- The live page (GET /) in headless Chromium, on the real server: node
-- spec/js/tasks_page_test.js opens it in two tabs, adds a task in one and
-- deletes it, and checks the other tab follows through /ws; it saves a
-- screenshot to build/artifacts/tasks_page.png ($JARARACA_ARTIFACTS
-- overrides the directory). Needs node, spec/js/node_modules (npm ci in
-- spec/js) and /usr/bin/chromium ($CHROMIUM): `./dev.sh test` installs them;
-- a missing one fails with a message, nothing is skipped.
local testing = require "jararaca.testing"
local server = require "spec.support.server"
local run = require "spec.support.run"

local ROOT = server.root
local APP = ROOT .. "/examples/tasks/app.lua"
local TEST = ROOT .. "/spec/js/tasks_page_test.js"
local SHOT = (os.getenv("JARARACA_ARTIFACTS") or "build/artifacts") .. "/tasks_page.png"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

describe("tasks app: the live page in headless Chromium", function()
  it("follows the room in two tabs: a task deleted in one vanishes from the other", function()
    local node = os.getenv("NODE") or "node"
    local status, version, err = run.run({ node, "--version" }, 30)
    assert(status == 0, "node is not installed (apt-get install nodejs, or ./dev.sh test): " .. tostring(err))
    assert(exists(ROOT .. "/spec/js/node_modules/puppeteer-core/package.json"),
      "spec/js/node_modules is missing: run `npm ci` in spec/js (./dev.sh test does)")
    local chromium = os.getenv("CHROMIUM") or "/usr/bin/chromium"
    assert(exists(chromium), "Chromium is not installed at " .. chromium
      .. " (apt-get install chromium, or ./dev.sh test, or set CHROMIUM)")

    local srv = server.start(APP, {}, { TASKS_DB = testing.temp_database("page.db") })
    os.remove(SHOT)
    local out
    status, out, err = run.run({ node, TEST, ("http://127.0.0.1:%d/"):format(srv.port), SHOT }, 150)
    local log = srv:output()
    local exit = srv:stop()
    testing.cleanup()
    assert(status == 0, ("tasks_page_test.js (node %s) failed (status %s):\n%s%s\n--- server log ---\n%s")
      :format(version:gsub("%s+$", ""), tostring(status), out, err, log))
    assert.truthy(out:find("PASS", 1, true))
    assert.equal("\137PNG", (run.read(SHOT) or ""):sub(1, 4), "a PNG screenshot at " .. SHOT)
    assert.equal(0, exit)
  end)
end)
