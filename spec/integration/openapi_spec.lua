-- The built-in documentation routes on the real server: GET /openapi.json
-- (validated by node spec/js/validate_openapi.js against the OpenAPI 3.1
-- schema) and GET /docs (driven in headless Chromium by
-- node spec/js/docs_page_test.js, which saves a screenshot under
-- build/artifacts/). Needs node, spec/js/node_modules (npm ci in spec/js)
-- and /usr/bin/chromium: a missing one fails with a message, nothing is skipped.
local client = require "spec.support.client"
local server = require "spec.support.server"
local process = require "jararaca.core.process"
local json = require "jararaca.json"

local ROOT = server.root
local JS = ROOT .. "/spec/js"
local ARTIFACTS = os.getenv("JARARACA_ARTIFACTS") or "build/artifacts"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function which(name)
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    if exists(dir .. "/" .. name) then return dir .. "/" .. name end
  end
  return nil
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- The tools, or a failure that says what is missing and how to get it.
local function need_tools(browser)
  local node = os.getenv("NODE") or which("node")
  assert(node and exists(node), "node is not installed (apt-get install nodejs): the OpenAPI and /docs checks need it")
  assert(exists(JS .. "/node_modules/@seriousme/openapi-schema-validator/package.json")
    and exists(JS .. "/node_modules/puppeteer-core/package.json"),
    "spec/js/node_modules is missing: run `npm ci` in spec/js")
  if browser then
    local chromium = os.getenv("CHROMIUM") or "/usr/bin/chromium"
    assert(exists(chromium), "Chromium is not installed at " .. chromium ..
      " (apt-get install chromium, or set CHROMIUM): the /docs browser test needs it")
  end
  return node
end

-- Run argv to completion; returns exit status and combined output.
local function run(argv, timeout)
  local log = os.tmpname()
  argv.stdout, argv.stderr = log, log
  local p = assert(process.spawn(argv))
  local status = p:wait(timeout or 120)
  if status == nil then
    p:kill("SIGKILL")
    p:wait(5)
    local out = read(log)
    os.remove(log)
    return nil, "timed out:\n" .. out
  end
  local out = read(log)
  os.remove(log)
  return status, out
end

local function get(srv, target)
  return assert(client.request(srv.port, "GET", target))
end

local function write_temp(text, suffix)
  local path = os.tmpname() .. (suffix or "")
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- Serve app, fetch and validate its document, and drive its /docs page.
local function check_app(app, mode, shot)
  local node = need_tools(true)
  local srv = server.start(app)
  local ok, err = pcall(function()
    local res = get(srv, "/openapi.json")
    assert.equal(200, res.status)
    assert.equal("application/json", res.headers["content-type"])
    local doc = assert(json.decode(res.body))
    assert.equal("3.1.0", doc.openapi)
    assert.truthy(doc.paths["/hello"] or doc.paths["/tasks"])
    assert.is_nil(doc.paths["/openapi.json"], "the docs routes are not documented")
    assert.is_nil(doc.paths["/docs"], "the docs routes are not documented")

    local file = write_temp(res.body, ".json")
    local status, out = run({ node, JS .. "/validate_openapi.js", file })
    os.remove(file)
    assert(status == 0, "validate_openapi.js failed (status " .. tostring(status) .. "):\n" .. out)

    res = get(srv, "/docs")
    assert.equal(200, res.status)
    assert.equal("text/html; charset=utf-8", res.headers["content-type"])
    assert.truthy(res.body:find('data-spec-url="/openapi.json"', 1, true))

    os.remove(shot)
    status, out = run({ node, JS .. "/docs_page_test.js",
      ("http://127.0.0.1:%d/docs"):format(srv.port), shot, mode })
    assert(status == 0, "docs_page_test.js failed (status " .. tostring(status) .. "):\n" .. out
      .. "\n--- server log ---\n" .. srv:output())
    assert.truthy(out:find("PASS", 1, true))
    assert.equal("\137PNG", read(shot):sub(1, 4), "a PNG screenshot at " .. shot)
  end)
  local status = srv:stop()
  if not ok then error(err, 0) end
  assert.equal(0, status)
end

describe("OpenAPI and /docs (real server, node, headless Chromium)", function()
  it("examples/hello: a valid OpenAPI 3.1 document and a working /docs page", function()
    check_app("examples/hello/app.lua", "hello", ARTIFACTS .. "/docs-hello.png")
  end)

  it("the typed app: a valid document with every schema kind and a working /docs page", function()
    check_app("spec/integration/apps/typed.lua", "typed", ARTIFACTS .. "/docs-typed.png")
  end)

  describe("configuration", function()
    local files = {}
    local function app_file(openapi_field)
      local path = write_temp(([[
local j = require "jararaca"
local C = j.RestController("", { name = "PingController" })
C.ping = j.Get("/ping", function() return { ok = true } end)
return j.Microservice { name = "cfg", controllers = { C }, openapi = %s }
]]):format(openapi_field), ".lua")
      files[#files + 1] = path
      return path
    end
    teardown(function()
      for _, f in ipairs(files) do os.remove(f) end
    end)

    it("serves the document and the page at configured paths; docs_path = false drops the page", function()
      local srv = server.start(app_file('{ title = "Cfg API", version = "3.0.0", path = "/api/spec.json", docs_path = false }'))
      local ok, err = pcall(function()
        local res = get(srv, "/api/spec.json")
        assert.equal(200, res.status)
        local doc = assert(json.decode(res.body))
        assert.equal("Cfg API", doc.info.title)
        assert.equal("3.0.0", doc.info.version)
        assert.truthy(doc.paths["/ping"])
        assert.is_nil(doc.paths["/api/spec.json"])
        assert.equal(404, get(srv, "/openapi.json").status)
        assert.equal(404, get(srv, "/docs").status)
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)

    it("serves the page at docs_path, pointing at the configured document", function()
      local srv = server.start(app_file('{ path = "/spec.json", docs_path = "/reference" }'))
      local ok, err = pcall(function()
        local res = get(srv, "/reference")
        assert.equal(200, res.status)
        assert.truthy(res.body:find('data-spec-url="/spec.json"', 1, true))
        assert.equal(200, get(srv, "/spec.json").status)
        assert.equal(404, get(srv, "/docs").status)
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)

    it("openapi = false serves neither", function()
      local srv = server.start(app_file("false"))
      local ok, err = pcall(function()
        assert.equal(200, get(srv, "/ping").status)
        assert.equal(404, get(srv, "/openapi.json").status)
        assert.equal(404, get(srv, "/docs").status)
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)
  end)
end)
