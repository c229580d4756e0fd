-- Specs for jararaca.config: configuration from environment variables.
local config = require "jararaca.config"
local s = require "jararaca.schema"
local di = require "jararaca.di"
local json = require "jararaca.json"
local runtime = require "jararaca.runtime"
local microservice = require "jararaca.microservice"
local interceptors = require "jararaca.interceptors"
local context = require "jararaca.context"

local function env_of(t)
  return function(name) return t[name] end
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

local Config = s.object({
  { "db_path", s.string { min_length = 1 }:default("tasks.db") },
  { "pool_size", s.integer { minimum = 1, maximum = 64 }:default(4) },
  { "debug", s.boolean():default(false) },
  { "ratio", s.number():optional() },
  { "secret", s.string { min_length = 4 } },
})

describe("jararaca.config.from_env", function()
  it("reads PREFIX + upper-cased field names and converts text", function()
    local cfg, err = config.from_env(Config, {
      prefix = "TASKS_",
      env = env_of { TASKS_DB_PATH = "/tmp/x.db", TASKS_POOL_SIZE = "8", TASKS_DEBUG = "true",
        TASKS_RATIO = "0.5", TASKS_SECRET = "s3cret", OTHER = "ignored" },
    })
    assert.is_nil(err)
    assert.are.same({ db_path = "/tmp/x.db", pool_size = 8, debug = true, ratio = 0.5, secret = "s3cret" },
      config.to_table(cfg))
  end)

  it("applies defaults and leaves optional fields absent", function()
    local cfg = assert(config.from_env(Config, { prefix = "T_", env = env_of { T_SECRET = "abcd" } }))
    assert.are.equal("tasks.db", cfg.db_path)
    assert.are.equal(4, cfg.pool_size)
    assert.is_false(cfg.debug)
    assert.is_nil(cfg.ratio)
  end)

  it("reports every error at once, naming the variables", function()
    local cfg, err, code, errs = config.from_env(Config, {
      prefix = "TASKS_", env = env_of { TASKS_POOL_SIZE = "many", TASKS_DEBUG = "maybe" },
    })
    assert.is_nil(cfg)
    assert.are.equal("invalid", code)
    assert.truthy(err:find("TASKS_POOL_SIZE: Input should be a valid integer", 1, true), err)
    assert.truthy(err:find("TASKS_DEBUG: Input should be a valid boolean", 1, true), err)
    assert.truthy(err:find("TASKS_SECRET: missing", 1, true), err)
    assert.are.equal(3, #errs)
    assert.are.same({ "TASKS_POOL_SIZE", "TASKS_DEBUG", "TASKS_SECRET" }, { errs[1].var, errs[2].var, errs[3].var })
  end)

  it("reports constraint errors with the schema's message", function()
    local _, err = config.from_env(Config, { env = env_of { POOL_SIZE = "0", SECRET = "ab" } })
    assert.are.equal("POOL_SIZE: Input should be greater than or equal to 1; SECRET: String should have at least 4 characters", err)
  end)

  it("treats an empty variable as unset", function()
    local cfg = assert(config.from_env(Config, { env = env_of { POOL_SIZE = "", SECRET = "abcd" } }))
    assert.are.equal(4, cfg.pool_size)
    local _, err = config.from_env(Config, { env = env_of { SECRET = "" } })
    assert.are.equal("SECRET: missing", err)
  end)

  it("uses os.getenv by default", function()
    local Home = s.object({ { "home", s.string() } })
    local cfg = assert(config.from_env(Home, {}))
    assert.are.equal(os.getenv("HOME"), cfg.home)
    local Path = s.object({ { "path", s.string() } })
    assert.are.equal(os.getenv("PATH"), config.from_env(Path).path)
  end)

  it("reads arrays from JSON or a comma-separated list, maps from JSON", function()
    local S = s.object({
      { "hosts", s.array(s.string()):default({}) },
      { "ports", s.array(s.integer()):optional() },
      { "labels", s.map(s.string()):optional() },
    })
    local cfg = assert(config.from_env(S, { prefix = "A_", env = env_of {
      A_HOSTS = " a.example , b.example,", A_PORTS = "[80, 443]", A_LABELS = '{"team":"core"}' } }))
    assert.are.same({ "a.example", "b.example" }, cfg.hosts)
    assert.are.same({ 80, 443 }, cfg.ports)
    assert.are.same({ team = "core" }, cfg.labels)
    -- comma lists are converted item by item
    cfg = assert(config.from_env(S, { prefix = "A_", env = env_of { A_PORTS = "1,2" } }))
    assert.are.same({ 1, 2 }, cfg.ports)
    local _, err = config.from_env(S, { prefix = "A_", env = env_of { A_PORTS = "1,x", A_LABELS = "{bad" } })
    assert.truthy(err:find("A_PORTS[2]: Input should be a valid integer", 1, true), err)
    assert.truthy(err:find("A_LABELS: invalid JSON", 1, true), err)
  end)

  it("reads nested objects from PREFIX_FIELD__SUBFIELD or JSON", function()
    local S = s.object({
      { "db", s.object({ { "path", s.string() }, { "pool_size", s.integer():default(2) } }) },
      { "name", s.string():default("x") },
    })
    local cfg = assert(config.from_env(S, { prefix = "APP_", env = env_of { APP_DB__PATH = "a.db", APP_DB__POOL_SIZE = "3" } }))
    assert.are.same({ path = "a.db", pool_size = 3 }, cfg.db)
    cfg = assert(config.from_env(S, { prefix = "APP_", env = env_of { APP_DB = '{"path":"b.db"}' } }))
    assert.are.same({ path = "b.db", pool_size = 2 }, cfg.db)
    local _, err = config.from_env(S, { prefix = "APP_", env = env_of { APP_DB__POOL_SIZE = "x" } })
    assert.truthy(err:find("APP_DB__PATH: missing", 1, true), err)
    assert.truthy(err:find("APP_DB__POOL_SIZE: Input should be a valid integer", 1, true), err)
    local _, err2 = config.from_env(S, { prefix = "APP_", env = env_of {} })
    assert.are.equal("APP_DB: missing", err2)
  end)

  it("keeps nullable fields and big integers exact", function()
    local S = s.object({ { "limit", s.integer():nullable():optional() }, { "big", s.integer():optional() } })
    local cfg = assert(config.from_env(S, { env = env_of { BIG = "9007199254740993" } }))
    assert.are.equal("9007199254740993", json.encode(cfg.big))
  end)

  it("raises for misuse", function()
    assert.truthy(err_of(config.from_env, s.string(), {}):find("must be an object schema", 1, true))
    assert.truthy(err_of(config.from_env, nil, {}):find("must be an object schema", 1, true))
    assert.truthy(err_of(config.from_env, Config, { prefix = 1 }):find("prefix must be a string", 1, true))
    assert.truthy(err_of(config.from_env, Config, { env = "x" }):find("env must be a function", 1, true))
  end)
end)

describe("jararaca.config.readonly", function()
  it("reads through, refuses assignments, hands out copies of nested tables", function()
    local view = config.readonly({ a = 1, list = json.array({ 1, 2 }) }, "configuration X")
    assert.are.equal(1, view.a)
    assert.are.same({ 1, 2 }, view.list)
    view.list[1] = 99
    assert.are.equal(1, view.list[1])
    local e = err_of(function() view.a = 2 end)
    assert.truthy(e:find("configuration X is read-only (tried to set a)", 1, true), e)
    assert.truthy(err_of(function() view.b = 1 end):find("read-only", 1, true))
    assert.is_true(json.is_array(view.list))
    assert.are.same({ a = 1, list = { 1, 2 } }, config.to_table(view))
    assert.is_true(config.is_readonly(view))
    assert.are.equal("<configuration X>", tostring(view))
  end)
end)

describe("jararaca.config.AppConfigurationInterceptor", function()
  -- runtime.start/stop bind a startup/shutdown context to the running
  -- coroutine: put the previous one back
  local function start(app)
    local saved = context.current()
    local ok, rt = pcall(runtime.start, app, "test")
    context.bind(saved)
    if ok then
      local stop = rt.stop
      rt.stop = function(self)
        local r = { stop(self) }
        context.bind(saved)
        return unpack(r)
      end
    end
    return ok, rt
  end

  it("registers the read-only configuration under a string token at startup", function()
    local seen
    local Svc = { inject = { cfg = "AppConfig" } }
    Svc.__index = Svc
    function Svc:init() seen = self.cfg end
    local icpt = config.AppConfigurationInterceptor {
      token = "AppConfig", schema = Config, prefix = "TASKS_",
      env = env_of { TASKS_SECRET = "abcd", TASKS_POOL_SIZE = "2" },
    }
    local app = microservice.Microservice {
      providers = { di.ProviderSpec { provide = Svc, use_class = Svc, after_interceptors = true } },
      interceptors = { icpt },
    }
    local ok, rt = start(app)
    assert.is_true(ok, tostring(rt))
    local cfg = rt.container:get("AppConfig")
    assert.are.equal(2, cfg.pool_size)
    assert.are.equal("abcd", cfg.secret)
    assert.are.equal(cfg, seen)
    assert.are.equal(cfg, icpt.config)
    assert.is_true(config.is_readonly(cfg))
    assert.has_error(function() cfg.secret = "x" end)
    rt:stop()
  end)

  it("registers under a Token, readable by later interceptors' factories", function()
    local T = di.Token("TasksConfigSpec")
    local got
    local app = microservice.Microservice {
      interceptors = {
        config.AppConfigurationInterceptor { token = T, schema = Config, env = env_of { SECRET = "abcd" } },
        function(container)
          got = container:get(T).db_path
          return { startup = function() end }
        end,
      },
    }
    local ok, rt = start(app)
    assert.is_true(ok, tostring(rt))
    assert.are.equal("tasks.db", got)
    rt:stop()
  end)

  it("fails the startup with every error, naming the variables", function()
    local app = microservice.Microservice {
      interceptors = {
        config.AppConfigurationInterceptor { token = "AppConfig", schema = Config, prefix = "TASKS_",
          env = env_of { TASKS_POOL_SIZE = "lots" } },
      },
    }
    local ok, err = start(app)
    assert.is_false(ok)
    err = tostring(err)
    assert.truthy(err:find("invalid configuration: TASKS_POOL_SIZE: Input should be a valid integer", 1, true), err)
    assert.truthy(err:find("TASKS_SECRET: missing", 1, true), err)
    assert.truthy(err:find("AppConfigurationInterceptor", 1, true), err)
  end)

  it("has no per-transaction cost (no enter/exit)", function()
    local icpt = config.AppConfigurationInterceptor { token = "X", schema = Config }
    assert.is_nil(icpt.enter)
    assert.is_nil(icpt.exit)
    local ok = interceptors.run({ icpt }, {}, function() return 1 end)
    assert.is_true(ok)
  end)

  it("validates its options", function()
    assert.truthy(err_of(config.AppConfigurationInterceptor, { schema = Config }):find("token must be", 1, true))
    assert.truthy(err_of(config.AppConfigurationInterceptor, { token = "", schema = Config }):find("token must be", 1, true))
    assert.truthy(err_of(config.AppConfigurationInterceptor, { token = "X" }):find("schema must be an object schema", 1, true))
    assert.truthy(err_of(config.AppConfigurationInterceptor, { token = "X", schema = Config, prefx = "A" })
      :find("unknown option prefx", 1, true))
    assert.truthy(err_of(config.AppConfigurationInterceptor, { token = "X", schema = Config, env = {} })
      :find("env must be a function", 1, true))
    assert.truthy(err_of(config.AppConfigurationInterceptor, "x"):find("expects a table", 1, true))
  end)
end)
