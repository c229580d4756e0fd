--- jararaca.di: the dependency-injection container.
--
-- Keys. A provider is registered under a key, which is one of
--   * a string                       "TasksRepository"
--   * a Token                        di.Token("AppConfig") (interned: same name, same table)
--   * a class table                  any other table (TasksRepository itself)
--
-- Providers. `di.ProviderSpec{ provide = key, <one of>, inject = {...}, scope = ..., after_interceptors = bool }`
-- with exactly one of
--   * use_value   = v       bound as-is; falsy values (false, 0, "") are honoured
--   * use_factory = fn      called as fn(deps)
--   * use_class   = cls     built as a class (below)
-- `inject = { field = key, ... }` lists the dependencies handed to the factory
-- (for use_class it overrides the class's own `inject`).
-- `scope = "singleton"` (default: built once per container, i.e. per process)
-- or `"transaction"` (built once per transaction, cached in
-- `jararaca.context.current().scope`). A bare class table listed in providers
-- means `ProviderSpec{ provide = cls, use_class = cls }`.
--
-- Note: Lua cannot tell `use_value = nil` from an absent field, so
-- `ProviderSpec{ provide = key }` alone is an error ("needs one of use_value,
-- use_factory, use_class"). Bind "nothing" with `use_value = false`.
--
-- Classes. A class table declares `inject = { field = key, ... }`; deps is a
-- fresh table field -> resolved instance. It is built as `cls.new(deps)` when
-- `cls.new` is a function, else deps becomes the instance:
-- `setmetatable(deps, cls)` when `cls.__index == cls`, else
-- `setmetatable(deps, { __index = cls })`, then `obj:init()` when `cls.init`
-- is a function.
--
-- Container.
--     local c = di.Container.new(providers)   -- validates: duplicates, cycles, scopes
--     c:start("before")                         -- build singletons (after_interceptors = false)
--     ... interceptors start, may c:register(key, value) ...
--     c:start("after")                          -- build singletons (after_interceptors = true)
--     c:get(key)  c:has(key)  c:get_controller(cls)  c:instantiate(cls)
--
-- Errors. Programmer misuse of the API raises `error(msg, 2)`. Resolution
-- failures are startup errors raised with `error(msg, 0)` (clean messages):
--     no provider for "TasksRepository" (needed by TasksController.tasks)
--     dependency cycle: A -> B -> C -> A
--     singleton A depends on transaction-scoped B (A -> B)
--     B is transaction-scoped and was requested outside a transaction
--     while building X (needed by Y.x): <original message>
-- Only errors raised by a factory/constructor are wrapped; resolution errors
-- of deeper dependencies propagate unchanged.
--
-- Concurrency note: factories may yield (pcall is resumable in LuaJIT). Two
-- coroutines lazily building the same provider at the same time would both
-- build it (the first finished one is kept); singletons are normally built
-- eagerly by `start`, before any request runs.
-- @module jararaca.di
local M = {}

local context = require("jararaca.context")

local type, pairs, tostring, error, pcall = type, pairs, tostring, error, pcall
local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local concat, sort, format = table.concat, table.sort, string.format
local current = context.current

---------------------------------------------------------------------------
-- Tokens
---------------------------------------------------------------------------

-- A token is an empty proxy: its name lives in `names`, so it stays
-- read-only (__newindex fires for every field of an empty table).
local tokens, names = {}, {}
local Token_mt = { __metatable = "Token" }
function Token_mt.__index(t, k)
  if k == "name" then return names[t] end
  return nil
end
function Token_mt.__tostring(t) return "Token(" .. names[t] .. ")" end
function Token_mt.__newindex() error("Token is read-only", 2) end

--- The interned token named `name` (same name -> the same table).
function M.Token(name)
  if type(name) ~= "string" or name == "" then
    error("Token(name): name must be a non-empty string, got " ..
      (name == "" and "an empty string" or type(name)), 2)
  end
  local t = tokens[name]
  if t == nil then
    t = setmetatable({}, Token_mt)
    names[t] = name
    tokens[name] = t
  end
  return t
end

local function is_token(v)
  return type(v) == "table" and names[v] ~= nil
end
--- True when v is a Token.
M.is_token = is_token

---------------------------------------------------------------------------
-- Keys
---------------------------------------------------------------------------

local Spec_mt = { __metatable = "ProviderSpec" }
Spec_mt.__index = Spec_mt

local function is_spec(v)
  return type(v) == "table" and getmetatable(v) == "ProviderSpec"
end
--- True when v is a ProviderSpec object.
M.is_provider_spec = is_spec

-- Address of a table, bypassing a __tostring metamethod when possible.
local function addr(t)
  local mt = getmetatable(t)
  local s
  if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then
    local f = rawget(mt, "__tostring")
    rawset(mt, "__tostring", nil)
    s = tostring(t)
    rawset(mt, "__tostring", f)
  else
    s = tostring(t)
  end
  return (s:gsub("^table: ", ""))
end

--- Human description of a key: the string, "Token(name)", a class's
--- `__name`, or "<class table: 0x...>".
local function describe(key)
  local t = type(key)
  if t == "string" then return key end
  if t == "table" then
    local tname = names[key]
    if tname ~= nil then return "Token(" .. tname .. ")" end
    local name = rawget(key, "__name")
    if type(name) == "string" then return name end
    return "<class table: " .. addr(key) .. ">"
  end
  return tostring(key)
end
M.describe = describe

-- nil when key is a valid key, else a description of what it is.
local function bad_key(key)
  local t = type(key)
  if t == "string" then
    if key == "" then return "an empty string" end
    return nil
  end
  if t == "table" then
    if is_spec(key) then return "a ProviderSpec" end
    return nil
  end
  return "a " .. t
end

local function check_inject(inject, owner, level)
  if inject == nil then return end
  if type(inject) ~= "table" then
    error(format("%s: inject must be a table { field = key }, got %s", owner, type(inject)), level + 1)
  end
  for field, key in pairs(inject) do
    if type(field) ~= "string" then
      error(format("%s: inject keys must be field names (strings), got %s", owner, type(field)), level + 1)
    end
    local bad = bad_key(key)
    if bad then
      error(format("%s: inject.%s is %s, expected a string, Token or class table",
        owner, field, bad), level + 1)
    end
  end
end

---------------------------------------------------------------------------
-- ProviderSpec
---------------------------------------------------------------------------

local SPEC_FIELDS = {
  provide = true, use_value = true, use_factory = true, use_class = true,
  inject = true, scope = true, after_interceptors = true,
}

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

local function make_spec(t, level)
  level = level + 1
  if type(t) ~= "table" then
    error("ProviderSpec{...} expects a table, got " .. type(t), level)
  end
  local provide = t.provide
  if provide == nil then error("ProviderSpec needs a provide key", level) end
  local bad = bad_key(provide)
  if bad then
    error("ProviderSpec: provide is " .. bad .. ", expected a string, Token or class table", level)
  end
  local name = describe(provide)
  for k in pairs(t) do
    if not SPEC_FIELDS[k] then
      error(format("ProviderSpec for %s: unknown field %q", name, tostring(k)), level)
    end
  end
  local n, kind = 0, nil
  if t.use_value ~= nil then n = n + 1; kind = "value" end
  if t.use_factory ~= nil then n = n + 1; kind = "factory" end
  if t.use_class ~= nil then n = n + 1; kind = "class" end
  if n == 0 then
    error("ProviderSpec for " .. name .. " needs one of use_value, use_factory, use_class", level)
  elseif n > 1 then
    error("ProviderSpec for " .. name .. " has more than one of use_value, use_factory, use_class", level)
  end
  if kind == "factory" and not callable(t.use_factory) then
    error(format("ProviderSpec for %s: use_factory must be a function, got %s", name, type(t.use_factory)), level)
  end
  if kind == "class" and (type(t.use_class) ~= "table" or is_token(t.use_class) or is_spec(t.use_class)) then
    error(format("ProviderSpec for %s: use_class must be a class table, got %s", name,
      is_token(t.use_class) and "a Token" or type(t.use_class)), level)
  end
  local scope = t.scope
  if scope == nil then scope = "singleton" end
  if scope ~= "singleton" and scope ~= "transaction" then
    error(format("ProviderSpec for %s: scope must be \"singleton\" or \"transaction\", got %s",
      name, type(scope) == "string" and format("%q", scope) or type(scope)), level)
  end
  if t.after_interceptors ~= nil and type(t.after_interceptors) ~= "boolean" then
    error(format("ProviderSpec for %s: after_interceptors must be a boolean, got %s",
      name, type(t.after_interceptors)), level)
  end
  if kind == "value" then
    if t.inject ~= nil then
      error("ProviderSpec for " .. name .. ": inject makes no sense with use_value", level)
    end
    if scope ~= "singleton" then
      error("ProviderSpec for " .. name .. ": use_value cannot be transaction-scoped", level)
    end
  end
  check_inject(t.inject, "ProviderSpec for " .. name, level)
  if kind == "class" and t.inject == nil then
    check_inject(t.use_class.inject, describe(t.use_class), level)
  end
  return setmetatable({
    provide = provide,
    kind = kind,
    use_value = t.use_value,
    use_factory = t.use_factory,
    use_class = t.use_class,
    inject = t.inject,   -- explicit deps; nil for use_class = read cls.inject at build
    scope = scope,
    after_interceptors = t.after_interceptors == true,
  }, Spec_mt)
end

--- Declare a provider. See the module comment for the fields.
-- @treturn table a ProviderSpec (`di.is_provider_spec(v)` is true)
function M.ProviderSpec(t)
  local spec = make_spec(t, 2) -- not a tail call: keeps error levels right
  return spec
end

-- Spec of a bare class listed in providers.
local function class_spec(cls, level)
  local spec = make_spec({ provide = cls, use_class = cls }, level + 1)
  return spec
end

---------------------------------------------------------------------------
-- Construction
---------------------------------------------------------------------------

-- Metatables { __index = cls } for classes without their own __index.
local class_mts = setmetatable({}, { __mode = "k" })

local function construct_class(cls, deps)
  local new = cls.new
  if type(new) == "function" then return new(deps) end
  local mt
  if rawget(cls, "__index") == cls then
    mt = cls
  else
    mt = class_mts[cls]
    if mt == nil then mt = { __index = cls }; class_mts[cls] = mt end
  end
  local obj = setmetatable(deps, mt)
  local init = cls.init
  if type(init) == "function" then init(obj) end
  return obj
end

-- The dependencies of a spec: its own inject, else (use_class) the class's,
-- read at each build so a class may be completed after being listed.
local function inject_of(spec)
  local inject = spec.inject
  if inject == nil and spec.kind == "class" then inject = spec.use_class.inject end
  return inject
end

local function construct(spec, deps)
  if spec.kind == "factory" then return spec.use_factory(deps) end
  return construct_class(spec.use_class, deps)
end

-- Sorted field names of an inject table (deterministic resolution order and
-- error messages), cached per table: an inject table is read when first
-- used; replace it rather than mutate it. Plain string sort: no Lua callback
-- from C.
local sorted_fields = setmetatable({}, { __mode = "k" })
local EMPTY = {}

local function fields_of(inject)
  if inject == nil then return EMPTY end
  local list = sorted_fields[inject]
  if list == nil then
    list = {}
    for f in pairs(inject) do list[#list + 1] = f end
    sort(list)
    sorted_fields[inject] = list
  end
  return list
end

---------------------------------------------------------------------------
-- Container
---------------------------------------------------------------------------

local Container = {}
Container.__index = Container
Container.__name = "Container"
M.Container = Container

local function needed_by(consumer, field)
  if consumer == nil then return "" end
  if field == nil then return " (needed by " .. describe(consumer) .. ")" end
  return " (needed by " .. describe(consumer) .. "." .. field .. ")"
end

local function chain_text(path, from, key)
  local parts = {}
  for i = from, path.n do parts[#parts + 1] = describe(path[i]) end
  parts[#parts + 1] = describe(key)
  return concat(parts, " -> ")
end

local resolve -- forward

-- Build `spec` (not cached here). path: the per-call resolution stack
-- { n = depth, [i] = key, kinds = { [i] = "singleton"|"transaction"|"controller"|"transient" } }.
local function build(self, spec, kind, path, consumer, field)
  local key = spec.provide
  if path == nil then
    path = { n = 0, kinds = {} }
  else
    for i = 1, path.n do
      if path[i] == key then
        error("dependency cycle: " .. chain_text(path, i, key), 0)
      end
    end
  end
  local depth = path.n + 1
  path.n = depth
  path[depth] = key
  path.kinds[depth] = kind

  local inject = inject_of(spec)
  local deps = {}
  if inject ~= nil then
    if type(inject) ~= "table" then
      error(format("%s.inject must be a table { field = key }, got %s", describe(key), type(inject)), 0)
    end
    local fields = fields_of(inject)
    for i = 1, #fields do
      local f = fields[i]
      local dkey = inject[f]
      local bad = bad_key(dkey)
      if bad then
        error(format("%s.inject.%s is %s, expected a string, Token or class table",
          describe(key), f, bad), 0)
      end
      deps[f] = resolve(self, dkey, path, key, f)
    end
  end

  local ok, v = pcall(construct, spec, deps)
  path[depth] = nil
  path.kinds[depth] = nil
  path.n = depth - 1
  if not ok then
    error("while building " .. describe(key) .. needed_by(consumer, field) .. ": " .. tostring(v), 0)
  end
  if v == nil then
    error("while building " .. describe(key) .. needed_by(consumer, field) ..
      ": the " .. (spec.kind == "factory" and "factory" or "constructor") .. " returned nil", 0)
  end
  return v
end

-- Raise when a transaction-scoped `key` is being resolved beneath a
-- singleton (or controller) on the current path.
local function check_scope(path, key)
  if path == nil then return end
  local kinds = path.kinds
  for i = 1, path.n do
    local k = kinds[i]
    if k == "singleton" or k == "controller" then
      error(format("%s %s depends on transaction-scoped %s (%s)",
        k, describe(path[i]), describe(key), chain_text(path, i, key)), 0)
    end
  end
end

function resolve(self, key, path, consumer, field)
  local v = self._instances[key]
  if v ~= nil then return v end
  local spec = self._specs[key]
  if spec == nil then
    error(format("no provider for %q%s", describe(key), needed_by(consumer, field)), 0)
  end
  if spec.scope == "transaction" then
    check_scope(path, key)
    local ctx = current()
    if ctx == nil then
      error(describe(key) .. " is transaction-scoped and was requested outside a transaction" ..
        needed_by(consumer, field), 0)
    end
    local scope = ctx.scope
    if scope == nil then scope = {}; ctx.scope = scope end
    v = scope[key]
    if v ~= nil then return v end
    v = build(self, spec, "transaction", path, consumer, field)
    local again = scope[key] -- built meanwhile by another coroutine of the same transaction?
    if again ~= nil then return again end
    scope[key] = v
    return v
  end
  if spec.after_interceptors and self._phase == "before" then
    error(describe(key) .. " is after_interceptors and was requested before the interceptors started" ..
      needed_by(consumer, field), 0)
  end
  v = build(self, spec, "singleton", path, consumer, field)
  local again = self._instances[key]
  if again ~= nil then return again end
  self._instances[key] = v
  return v
end

-- Static validation of the spec graph from `spec`: cycles and singletons
-- depending on transaction-scoped providers. Keys without a spec are left
-- to resolution time (interceptors may register them at startup).
local function validate_from(self, start)
  local path = { n = 0, kinds = {} }
  local done = {}
  local function visit(spec)
    local key = spec.provide
    for i = 1, path.n do
      if path[i] == key then error("dependency cycle: " .. chain_text(path, i, key), 0) end
    end
    if spec.scope == "transaction" then check_scope(path, key) end
    if done[key] then return end
    local depth = path.n + 1
    path.n = depth
    path[depth] = key
    path.kinds[depth] = spec.scope
    local inject = inject_of(spec)
    if type(inject) == "table" then
      local fields = fields_of(inject)
      for i = 1, #fields do
        local dep = self._specs[inject[fields[i]]]
        if dep ~= nil then visit(dep) end
      end
    end
    path[depth] = nil
    path.kinds[depth] = nil
    path.n = depth - 1
    done[key] = true
  end
  visit(start)
end

local function add_spec(self, spec, where)
  local key = spec.provide
  local prev = self._where[key]
  if prev ~= nil or self._instances[key] ~= nil then
    error(format("duplicate provider for %s (%s and %s)", describe(key), prev or "a registered instance", where), 0)
  end
  self._specs[key] = spec
  self._where[key] = where
  self._order[#self._order + 1] = spec
  if spec.kind == "value" then self._instances[key] = spec.use_value end
end

--- New container from a list of ProviderSpecs / bare class tables.
-- Duplicate keys, dependency cycles and singletons depending on
-- transaction-scoped providers are startup errors (`error(msg, 0)`).
-- Builds nothing.
function Container.new(providers)
  if providers == nil then providers = {} end
  if type(providers) ~= "table" then
    error("Container.new(providers): providers must be a list, got " .. type(providers), 2)
  end
  local self = setmetatable({
    _specs = {},      -- key -> spec
    _where = {},      -- key -> "providers[i]" (for duplicate messages)
    _order = {},      -- specs in registration order
    _instances = {},  -- key -> value (registered values, built singletons)
    _classes = {},    -- class -> instance (get_controller cache)
    _phase = nil,     -- nil | "before" | "after"
  }, Container)
  for i = 1, #providers do
    local p = providers[i]
    local spec
    if is_spec(p) then
      spec = p
    elseif type(p) == "table" and not is_token(p) then
      spec = class_spec(p, 2)
    else
      error(format("providers[%d] is %s, expected a ProviderSpec or a class table", i,
        is_token(p) and "a Token" or "a " .. type(p)), 2)
    end
    add_spec(self, spec, "providers[" .. i .. "]")
  end
  for i = 1, #self._order do validate_from(self, self._order[i]) end
  return self
end

--- Shorthand for Container.new.
M.new = Container.new

--- Add a provider after construction (interceptor ProviderSpecs use this).
-- Same checks as in Container.new.
function Container:add(spec)
  if not is_spec(spec) then
    if type(spec) == "table" and not is_token(spec) then
      spec = class_spec(spec, 2)
    else
      error("container:add(spec): expected a ProviderSpec or a class table, got " .. type(spec), 2)
    end
  end
  add_spec(self, spec, "container:add")
  validate_from(self, spec)
  return spec
end

--- Resolve `key`: registered instance -> singleton cache -> build.
-- Transaction-scoped providers are cached in context.current().scope.
function Container:get(key)
  local v = self._instances[key]
  if v ~= nil then return v end
  if self._specs[key] == nil then
    local bad = key == nil and "nil" or bad_key(key)
    if bad then
      error("container:get: key is " .. bad .. ", expected a string, Token or class table", 2)
    end
  end
  v = resolve(self, key, nil, nil, nil)
  return v
end

--- True when `key` has a provider or a registered instance.
function Container:has(key)
  return self._instances[key] ~= nil or self._specs[key] ~= nil
end

--- Bind `instance` to `key` at runtime (e.g. config published by an
-- interceptor's startup). Rebinding an existing key is an error unless
-- `replace` is true.
function Container:register(key, instance, replace)
  local bad = key == nil and "nil" or bad_key(key)
  if bad then
    error("container:register: key is " .. bad .. ", expected a string, Token or class table", 2)
  end
  if instance == nil then
    error("container:register: instance for " .. describe(key) .. " is nil", 2)
  end
  if not replace and (self._instances[key] ~= nil or self._specs[key] ~= nil) then
    error("container:register: " .. describe(key) .. " is already provided (pass replace = true to rebind)", 2)
  end
  self._instances[key] = instance
  if self._where[key] == nil then self._where[key] = "container:register" end
  return instance
end

--- Eagerly build the singleton providers of a phase, in registration order:
--- "before" = after_interceptors false, "after" = after_interceptors true.
function Container:start(phase)
  if phase ~= "before" and phase ~= "after" then
    error("container:start(phase): phase must be \"before\" or \"after\", got " .. tostring(phase), 2)
  end
  self._phase = phase
  local after = phase == "after"
  local order = self._order
  for i = 1, #order do
    local spec = order[i]
    if spec.scope == "singleton" and spec.after_interceptors == after then
      if self._instances[spec.provide] == nil then
        resolve(self, spec.provide, nil, nil, nil)
      end
    end
  end
  return self
end

local function class_check(cls, fname)
  if type(cls) ~= "table" or is_token(cls) or is_spec(cls) then
    error(format("container:%s(cls): expected a class table, got %s", fname,
      is_token(cls) and "a Token" or is_spec(cls) and "a ProviderSpec" or type(cls)), 3)
  end
  local inject = cls.inject
  if inject ~= nil and type(inject) ~= "table" then
    error(format("container:%s: %s.inject must be a table, got %s", fname, describe(cls), type(inject)), 3)
  end
end

local pseudo_specs = setmetatable({}, { __mode = "k" })
local function pseudo_spec(cls)
  local s = pseudo_specs[cls]
  if s == nil then
    s = { provide = cls, kind = "class", use_class = cls, scope = "singleton" }
    pseudo_specs[cls] = s
  end
  return s
end

--- Build a class (normally a controller) once per container and cache it.
-- Delegates to get(cls) when the class is itself a registered provider.
-- Its dependencies may not be transaction-scoped (it is a singleton).
function Container:get_controller(cls)
  local v = self._classes[cls]
  if v ~= nil then return v end
  class_check(cls, "get_controller")
  if self._specs[cls] ~= nil or self._instances[cls] ~= nil then
    v = self:get(cls)
    return v
  end
  v = build(self, pseudo_spec(cls), "controller", nil, nil, nil)
  local again = self._classes[cls]
  if again ~= nil then return again end
  self._classes[cls] = v
  return v
end

--- Build an unregistered class with its `inject` deps, without caching.
-- Inside a transaction it may depend on transaction-scoped providers.
function Container:instantiate(cls)
  class_check(cls, "instantiate")
  local v = build(self, pseudo_spec(cls), "transient", nil, nil, nil)
  return v
end

--- The registered specs in registration order (read-only use).
function Container:providers()
  local out = {}
  for i = 1, #self._order do out[i] = self._order[i] end
  return out
end

return M
