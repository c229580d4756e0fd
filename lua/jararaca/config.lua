--- jararaca.config: application configuration from environment variables,
-- validated by a schema (the AppConfigurationInterceptor of the original).
--
--   local config = require "jararaca.config"
--   local Config = s.object("TasksConfig", {
--     { "db_path", s.string():default("tasks.db") },     -- TASKS_DB_PATH
--     { "readers", s.integer { minimum = 0 }:default(4) },    -- TASKS_READERS
--     { "secret", s.string { min_length = 16 } },         -- TASKS_SECRET (required)
--   })
--   interceptors = { config.AppConfigurationInterceptor{ token = "AppConfig", schema = Config, prefix = "TASKS_" }, ... }
--   local cfg, err, code, errors = config.from_env(Config, { prefix = "TASKS_", env = os.getenv })
--
-- A field `name` reads the variable PREFIX .. NAME (upper-cased); a nested
-- object field `db` with field `path` reads PREFIX .. "DB__PATH" (or the
-- whole object as JSON in PREFIX .. "DB"). Array fields take JSON ("[1,2]")
-- or a comma-separated list; map fields take JSON. Text is converted as for
-- query parameters ("42" -> 42, "true" -> true). An empty variable counts as
-- unset. Every error is reported at once, by variable:
--   TASKS_POOL_SIZE: Input should be a valid integer; TASKS_SECRET: missing
-- The interceptor registers the result read-only in the container under
-- `token`; a bad configuration stops the startup (exit 1) with that text.
-- @module jararaca.config
local json = require "jararaca.json"
local di = require "jararaca.di"

local M = {}

local type, ipairs, pairs, error, tostring, setmetatable, getmetatable =
  type, ipairs, pairs, error, tostring, setmetatable, getmetatable
local format, concat, upper = string.format, table.concat, string.upper

local schema_mod
local function S()
  if not schema_mod then schema_mod = require "jararaca.schema" end
  return schema_mod
end

-- Kind of a field schema under nullable/ref wrappers, and the inner schema.
local function base(sc)
  for _ = 1, 16 do
    if sc.kind == "nullable" then sc = sc.of
    elseif sc.kind == "ref" then
      local t = S().lookup(sc.name, sc) -- in the scope the ref was made in
      if not t then return sc.kind, sc end
      sc = t
    else return sc.kind, sc end
  end
  return sc.kind, sc
end

local function check_object(sc, what, level)
  if not S().is_schema(sc) then
    error(format("%s must be an object schema (jararaca.schema), got %s", what, type(sc)), level + 1)
  end
  local kind, inner = base(sc)
  if kind ~= "object" then error(format("%s must be an object schema, got a %s schema", what, kind), level + 1) end
  return inner
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function split_list(raw)
  local out = json.array({})
  for item in (raw .. ","):gmatch("([^,]*),") do
    item = trim(item)
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

-- Read the variables of object `obj` into out; parse errors go to errs.
-- Returns true when at least one variable was set.
local function collect(obj, prefix, env, out, errs)
  local any = false
  for _, f in ipairs(obj.fields) do
    local var = prefix .. upper(f.name)
    local raw = env(var)
    if raw == "" then raw = nil end
    local kind, inner = base(f.schema)
    if raw ~= nil then
      any = true
      if type(raw) ~= "string" then
        out[f.name] = raw
      elseif kind == "array" or kind == "map" or kind == "object" or kind == "any" then
        local first = raw:match("^%s*(.)")
        if first == "[" or first == "{" then
          local v, jerr = json.decode(raw)
          if v == nil then
            errs[#errs + 1] = { var = var, msg = "invalid JSON: " .. tostring(jerr), type = "json_invalid" }
          else
            out[f.name] = v
          end
        elseif kind == "array" then
          out[f.name] = split_list(raw)
        else
          out[f.name] = raw -- the schema reports the type error
        end
      else
        out[f.name] = raw
      end
    elseif kind == "object" then
      local sub = {}
      if collect(inner, var .. "__", env, sub, errs) then
        out[f.name] = sub
        any = true
      end
    end
  end
  return any
end

-- The variable name of an error's loc.
local function var_of(prefix, loc)
  local name = prefix
  local suffix = ""
  local first = true
  for _, k in ipairs(loc or {}) do
    if type(k) == "number" then
      suffix = suffix .. "[" .. k .. "]"
    else
      name = name .. (first and "" or "__") .. upper(tostring(k))
      first = false
    end
  end
  return name .. suffix
end

--- Build the configuration from the environment.
-- opts: prefix (default ""), env (function(name) -> string|nil, default os.getenv).
-- @return the cleaned table | nil, "VAR: msg; VAR2: missing", "invalid", errors ({ var, msg, type })
function M.from_env(schema, opts)
  local obj = check_object(schema, "config.from_env(schema, opts): schema", 2)
  opts = opts or {}
  if type(opts) ~= "table" then error("config.from_env(schema, opts): opts must be a table", 2) end
  local prefix = opts.prefix or ""
  if type(prefix) ~= "string" then error("config.from_env: prefix must be a string", 2) end
  local env = opts.env or os.getenv
  if type(env) ~= "function" then error("config.from_env: env must be a function(name) -> value", 2) end
  local raw, errs = {}, {}
  collect(obj, prefix, env, raw, errs)
  local cfg, _, _, verrs = schema:validate(raw, { from_string = true })
  if verrs then
    for _, e in ipairs(verrs) do
      local var = var_of(prefix, e.loc)
      local skip = false
      for _, pe in ipairs(errs) do if pe.var == var then skip = true end end -- already reported (bad JSON)
      if not skip then
        errs[#errs + 1] = { var = var, msg = e.type == "missing" and "missing" or e.msg, type = e.type }
      end
    end
  end
  if #errs > 0 then
    local parts = {}
    for i, e in ipairs(errs) do parts[i] = e.var .. ": " .. e.msg end
    return nil, concat(parts, "; "), "invalid", errs
  end
  return cfg
end

---------------------------------------------------------------------------
-- Read-only views
---------------------------------------------------------------------------

local data_of = setmetatable({}, { __mode = "k" })

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return setmetatable(t, getmetatable(v))
end

--- A read-only view of a table: fields read through (nested tables are
--- handed out as copies), assignments raise. pairs()/json.encode do not
--- see through it: use config.to_table(view).
function M.readonly(t, label)
  local view = {}
  data_of[view] = t
  label = label or "configuration"
  return setmetatable(view, {
    __index = function(_, k)
      local v = t[k]
      if type(v) == "table" then return deep_copy(v) end
      return v
    end,
    __newindex = function(_, k)
      error(format("%s is read-only (tried to set %s)", label, tostring(k)), 2)
    end,
    __tostring = function() return "<" .. label .. ">" end,
    __metatable = "readonly",
  })
end

--- A plain deep copy of a read-only view (or of any table).
function M.to_table(view)
  local t = data_of[view]
  if t == nil then t = view end
  return deep_copy(t)
end

function M.is_readonly(v)
  return data_of[v] ~= nil
end

---------------------------------------------------------------------------
-- The interceptor
---------------------------------------------------------------------------

local Interceptor = {}
Interceptor.__index = Interceptor
Interceptor.__name = "AppConfigurationInterceptor"

local OPTIONS = { token = true, schema = true, prefix = true, env = true }

--- config.AppConfigurationInterceptor{ token = "AppConfig" | Token, schema =, prefix = "", env = os.getenv }
function M.AppConfigurationInterceptor(opts)
  if type(opts) ~= "table" then
    error("AppConfigurationInterceptor{...}: expects a table of options, got " .. type(opts), 2)
  end
  for k in pairs(opts) do
    if not OPTIONS[k] then error(format("AppConfigurationInterceptor: unknown option %s", tostring(k)), 2) end
  end
  local token = opts.token
  if not ((type(token) == "string" and token ~= "") or di.is_token(token)) then
    error("AppConfigurationInterceptor: token must be a non-empty string or a Token, got " .. type(token), 2)
  end
  check_object(opts.schema, "AppConfigurationInterceptor: schema", 2)
  if opts.prefix ~= nil and type(opts.prefix) ~= "string" then
    error("AppConfigurationInterceptor: prefix must be a string", 2)
  end
  if opts.env ~= nil and type(opts.env) ~= "function" then
    error("AppConfigurationInterceptor: env must be a function(name) -> value", 2)
  end
  return setmetatable({ token = token, schema = opts.schema, prefix = opts.prefix or "", env = opts.env, config = nil },
    Interceptor)
end

function Interceptor:startup(_, container)
  local cfg, err = M.from_env(self.schema, { prefix = self.prefix, env = self.env })
  if not cfg then error("invalid configuration: " .. err, 0) end
  local view = M.readonly(cfg, "configuration " .. di.describe(self.token))
  self.config = view
  container:register(self.token, view)
end

M.AppConfigurationInterceptor_class = Interceptor

return M
