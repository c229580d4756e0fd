--- jararaca.persistence.sql: identifiers, values and rows shared by the
-- repository helpers (CRUD, Query) and migrations.
--
--   sql.ident("tasks")          -> "\"tasks\""   (raises for anything but [A-Za-z_][A-Za-z0-9_]*)
--   sql.check_ident(name, what, level) -> name   (raises error(msg, level))
--   sql.columns_of(schema)      -> { "id", "name", ... } | nil
--   sql.row_reader(schema)      -> function(row) -> converted row (raises when a row does not fit)
--   sql.to_param(v)             -> a value the SQLite binding accepts
--   sql.like_escape(s)          -> s with \ % _ escaped (use ESCAPE '\')
--   sql.key(v)                  -> a string key for an id (numbers, int64 cdata, strings)
--
-- Identifiers are validated, never escaped: only names written in the
-- program (a table, a column list, a schema's field names) reach SQL text.
-- Values always travel as parameters.
-- @module jararaca.persistence.sql
local json = require "jararaca.json"

local M = {}

local type, pairs, ipairs, error, tostring, setmetatable, getmetatable, format =
  type, pairs, ipairs, error, tostring, setmetatable, getmetatable, string.format
local find, gsub = string.find, string.gsub
local json_null, json_encode, json_decode, array_mt = json.null, json.encode, json.decode, json.array_mt

local dbmod -- jararaca.db, loaded on first use (the binding may be absent)
local function db()
  if dbmod == nil then dbmod = require "jararaca.db" end
  return dbmod
end
M.db = db

--- The NULL sentinel of the binding (json.null when the binding is absent).
function M.null()
  local ok, m = pcall(db)
  if ok and m.null ~= nil then return m.null end
  return json_null
end

local function is_null(v)
  if v == json_null then return true end
  if dbmod ~= nil and v == dbmod.null then return true end
  return false
end
M.is_null = is_null

-- SQLite keywords are fine inside double quotes; the pattern is what keeps
-- names out of SQL text.
local IDENT = "^[%a_][%w_]*$"

function M.is_ident(name)
  return type(name) == "string" and find(name, IDENT) ~= nil
end

--- Raise error(msg, level) unless name is a plain identifier.
function M.check_ident(name, what, level)
  if type(name) ~= "string" or not find(name, IDENT) then
    error(format("%s must be an identifier (letters, digits, _; not starting with a digit), got %s",
      what, type(name) == "string" and format("%q", name) or type(name)), (level or 1) + 1)
  end
  return name
end

--- The quoted identifier. Raises for a non-identifier.
function M.ident(name)
  if type(name) ~= "string" or not find(name, IDENT) then
    error("not an SQL identifier: " .. tostring(name), 2)
  end
  return '"' .. name .. '"'
end

--- Escape LIKE wildcards with a backslash (pair with ESCAPE '\').
function M.like_escape(s)
  return (gsub(s, "[\\%%_]", "\\%0"))
end

---------------------------------------------------------------------------
-- Schemas
---------------------------------------------------------------------------

local schema_mod
local function S()
  if not schema_mod then schema_mod = require "jararaca.schema" end
  return schema_mod
end

-- The base kind of a field schema: unwraps nullable and refs.
-- Returns kind, nullable, inner schema.
local function base_kind(sc)
  local nullable = false
  for _ = 1, 16 do
    local k = sc.kind
    if k == "nullable" then
      nullable = true
      sc = sc.of
    elseif k == "ref" then
      local target = S().lookup(sc.name, sc) -- in the scope the ref was made in
      if not target then return "any", nullable, sc end
      sc = target
    else
      return k, nullable, sc
    end
  end
  return "any", nullable, sc
end
M.base_kind = base_kind

--- Check that `sc` is an object schema (raises error(msg, level)).
function M.check_object_schema(sc, what, level)
  if not S().is_schema(sc) then
    error(format("%s must be an object schema (jararaca.schema), got %s", what, type(sc)), level + 1)
  end
  local k, _, inner = base_kind(sc)
  if k ~= "object" then
    error(format("%s must be an object schema, got a %s schema", what, k), level + 1)
  end
  return inner
end

--- Field names of an object schema, in order.
function M.columns_of(sc)
  local _, _, inner = base_kind(sc)
  local out = {}
  for i, f in ipairs(inner.fields) do out[i] = f.name end
  return out
end

local STRUCTURED = { array = true, object = true, map = true }

-- Per schema: { [field] = { kind =, nullable =, optional = } }.
local plans = setmetatable({}, { __mode = "k" })
local function plan_of(sc)
  local p = plans[sc]
  if p then return p end
  local _, _, inner = base_kind(sc)
  p = {}
  for _, f in ipairs(inner.fields) do
    local k, nullable = base_kind(f.schema)
    p[f.name] = { kind = k, nullable = nullable, optional = not f.required }
  end
  plans[sc] = p
  return p
end

--- fn(row) -> the row converted through the schema: SQL NULL becomes
--- json.null (nullable fields) or absent (others), 0/1 become booleans for
--- boolean fields, JSON text becomes a table for array/object/map fields;
--- then the schema validates the row. A row that does not fit raises (the
--- table and its schema disagree: a bug, not an input error).
function M.row_reader(sc, label)
  if sc == nil then
    -- no schema: NULL stays the binding's null (json.null when it is the same value)
    return function(row) return row end
  end
  return function(row)
    local p = plan_of(sc)
    local t = {}
    for k, v in pairs(row) do
      local f = p[k]
      if f == nil then -- luacheck: ignore 542
        -- not in the schema: dropped by validation anyway
      elseif is_null(v) then
        if f.nullable then t[k] = json_null end
      else
        local kind = f.kind
        if kind == "boolean" then
          if v == 0 then v = false elseif v == 1 then v = true end
        elseif STRUCTURED[kind] and type(v) == "string" then
          local d = json_decode(v)
          if d ~= nil then v = d end
        end
        t[k] = v
      end
    end
    local r, msg, _, errs = sc:validate(t)
    if r == nil and errs then
      error(format("%s: a row does not fit its schema: %s", label or "persistence", msg), 0)
    end
    return r
  end
end

---------------------------------------------------------------------------
-- Values
---------------------------------------------------------------------------

--- A Lua value as an SQLite parameter: booleans -> 1/0, json.null -> NULL,
--- tables -> JSON text; numbers, strings and int64 cdata unchanged.
function M.to_param(v)
  local t = type(v)
  if t == "boolean" then return v and 1 or 0 end
  if v == json_null then return M.null() end
  if t == "table" then
    local s, err = json_encode(v)
    if not s then error("cannot store a table as JSON: " .. tostring(err), 2) end
    return s
  end
  return v
end

--- A string key for an id value, equal for equal ids whatever their Lua
--- type (42, 42LL and "42" do not collide with each other's strings:
--- numbers and int64 share "n:", strings get "s:").
function M.key(v)
  local t = type(v)
  if t == "number" then
    if v % 1 == 0 and v > -2 ^ 63 and v < 2 ^ 63 then return format("n:%.0f", v) end
    return "n:" .. tostring(v)
  elseif t == "cdata" then
    return "n:" .. (gsub(tostring(v), "U?LL$", ""))
  end
  return "s:" .. tostring(v)
end

---------------------------------------------------------------------------
-- Errors
---------------------------------------------------------------------------

--- Database errors raised by the repository helpers: a table with
--- message, code (the binding's code), where ("tasks.create") and sql.
local DBError = {}
DBError.__index = DBError
DBError.__name = "PersistenceError"
function DBError.__tostring(e)
  return "persistence: " .. e.where .. ": " .. tostring(e.message)
end
M.Error = DBError

function M.is_error(v)
  return getmetatable(v) == DBError
end

--- Raise a PersistenceError (level 0: the value carries its own context).
function M.raise(where, message, code, sql_text)
  error(setmetatable({ where = where, message = message, code = code, sql = sql_text }, DBError), 0)
end

--- A list marked as a JSON array (encodes [] when empty).
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

function M.is_array(t)
  return getmetatable(t) == array_mt
end

return M
