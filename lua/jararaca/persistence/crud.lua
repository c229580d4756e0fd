--- jararaca.persistence.crud: a repository over one table.
--
--   local Tasks = persistence.CRUD{ table = "tasks", id = "id", schema = Task, db = "default" }
--   Tasks:create(values)        -> row                 (INSERT ... RETURNING *)
--   Tasks:get(id)               -> row | nil
--   Tasks:get_many(ids)         -> rows (in the order of ids; missing ones skipped)
--   Tasks:update(id, values)    -> row | nil           (UPDATE ... RETURNING *)
--   Tasks:delete(row_or_id)     -> bool
--   Tasks:delete_by_id(id)      -> bool
--   Tasks:exists(id)            -> bool
--
-- Every call runs on use_session(db), so inside a transaction it joins the
-- request's unit of work, and inside providing_new_session it uses that
-- session. Columns come from the declaration only: `columns = {...}`, else
-- the schema's fields, else the table's own columns (PRAGMA table_info,
-- read once); a value whose key is not a column raises. Values always go
-- as parameters. Rows come back converted through the schema (0/1 ->
-- booleans, JSON text -> tables, NULL -> json.null or absent) and validated.
-- Database errors raise a PersistenceError (persistence.is_error(e); e.code
-- is the binding's code, e.message its text); "not found" is nil/false.
-- @module jararaca.persistence.crud
local sql = require "jararaca.persistence.sql"
local session = require "jararaca.persistence.session"

local M = {}

local type, pairs, ipairs, error, tostring, setmetatable, getmetatable, format, concat, min =
  type, pairs, ipairs, error, tostring, setmetatable, getmetatable, string.format, table.concat, math.min
local ident, to_param, raise = sql.ident, sql.to_param, sql.raise
local use_session = session.use_session

local CRUD = {}
CRUD.__index = CRUD
CRUD.__name = "CRUD"
M.CRUD_class = CRUD

local OPTIONS = { table = true, id = true, schema = true, db = true, columns = true }

--- persistence.CRUD{ table =, id = "id", schema = nil, db = "default", columns = nil }
function M.CRUD(opts)
  if type(opts) ~= "table" then error("CRUD{...}: expects a table of options, got " .. type(opts), 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then error(format("CRUD: unknown option %s", tostring(k)), 2) end
  end
  sql.check_ident(opts.table, "CRUD: table", 2)
  local id = opts.id or "id"
  sql.check_ident(id, "CRUD: id", 2)
  local db = opts.db or "default"
  if type(db) ~= "string" then error("CRUD: db must be a database name (string), got " .. type(db), 2) end
  local self = setmetatable({
    table = opts.table, id = id, db = db, schema = opts.schema,
    qtable = ident(opts.table), qid = ident(id), label = opts.table,
  }, CRUD)
  if opts.schema ~= nil then sql.check_object_schema(opts.schema, "CRUD: schema", 2) end
  local cols = opts.columns
  if cols ~= nil then
    if type(cols) ~= "table" or #cols == 0 then error("CRUD: columns must be a non-empty list of column names", 2) end
  elseif opts.schema ~= nil then
    cols = sql.columns_of(opts.schema)
  end
  if cols ~= nil then
    for i, c in ipairs(cols) do sql.check_ident(c, format("CRUD: columns[%d]", i), 2) end
    self.columns = cols
  end
  self.read = sql.row_reader(opts.schema, "CRUD(" .. opts.table .. ")")
  return self
end

function M.is_crud(v)
  return getmetatable(v) == CRUD
end

-- The declared (or introspected) columns, in order, and as a set.
local function columns(self, s)
  local cols = self.columns
  if cols == nil then
    local rows, err, code = s:query("SELECT name FROM pragma_table_info(?)", { self.table })
    if not rows then raise(self.label .. ".columns", err, code) end
    if #rows == 0 then raise(self.label .. ".columns", format("table %q does not exist", self.table), "not_found") end
    cols = {}
    for i, r in ipairs(rows) do cols[i] = r.name end
    self.columns = cols
  end
  local set = self.column_set
  if set == nil then
    set = {}
    for _, c in ipairs(cols) do set[c] = true end
    self.column_set = set
  end
  return cols, set
end

-- Column names of `values` in declaration order; raises for unknown keys.
local function value_columns(self, s, values, what)
  if type(values) ~= "table" then
    error(format("%s.%s(values): values must be a table, got %s", self.label, what, type(values)), 3)
  end
  local cols, set = columns(self, s)
  for k in pairs(values) do
    if not set[k] then
      error(format("%s.%s: unknown column %s (columns: %s)", self.label, what,
        type(k) == "string" and format("%q", k) or tostring(k), concat(cols, ", ")), 3)
    end
  end
  local out = {}
  for _, c in ipairs(cols) do
    if values[c] ~= nil then out[#out + 1] = c end
  end
  return out
end

local function check_id(self, id, what)
  if id == nil then error(format("%s.%s: id is nil", self.label, what), 3) end
end

--- Insert a row and return it as stored (defaults included).
function CRUD:create(values)
  local s = use_session(self.db)
  local cols = value_columns(self, s, values, "create")
  local text
  local params = {}
  if #cols == 0 then
    text = "INSERT INTO " .. self.qtable .. " DEFAULT VALUES RETURNING *"
  else
    local names, marks = {}, {}
    for i, c in ipairs(cols) do
      names[i] = ident(c)
      marks[i] = "?"
      params[i] = to_param(values[c])
    end
    text = "INSERT INTO " .. self.qtable .. " (" .. concat(names, ", ") .. ") VALUES (" ..
      concat(marks, ", ") .. ") RETURNING *"
  end
  local rows, err, code = s:query(text, params)
  if not rows then raise(self.label .. ".create", err, code, text) end
  return self.read(rows[1])
end

--- The row with this id, or nil.
function CRUD:get(id)
  check_id(self, id, "get")
  local s = use_session(self.db)
  local text = "SELECT * FROM " .. self.qtable .. " WHERE " .. self.qid .. " = ? LIMIT 1"
  local row, err, code = s:first(text, { to_param(id) })
  if row == nil then
    if err ~= nil then raise(self.label .. ".get", err, code, text) end
    return nil
  end
  return self.read(row)
end

local CHUNK = 500

--- The rows with these ids, in the order of ids (duplicates and missing
--- ids skipped).
function CRUD:get_many(ids)
  if type(ids) ~= "table" then error(format("%s.get_many(ids): ids must be a list, got %s", self.label, type(ids)), 2) end
  local s = use_session(self.db)
  local found = {}
  local n = #ids
  local i = 1
  while i <= n do
    local j = min(n, i + CHUNK - 1)
    local marks, params = {}, {}
    for k = i, j do
      marks[#marks + 1] = "?"
      params[#params + 1] = to_param(ids[k])
    end
    local text = "SELECT * FROM " .. self.qtable .. " WHERE " .. self.qid .. " IN (" .. concat(marks, ", ") .. ")"
    local rows, err, code = s:query(text, params)
    if not rows then raise(self.label .. ".get_many", err, code, text) end
    for _, r in ipairs(rows) do found[sql.key(r[self.id])] = r end
    i = j + 1
  end
  local out, seen = sql.array({}), {}
  local read = self.read
  for k = 1, n do
    local key = sql.key(ids[k])
    local r = found[key]
    if r ~= nil and not seen[key] then
      seen[key] = true
      out[#out + 1] = read(r)
    end
  end
  return out
end

--- Update the given columns of the row; return the row after the update,
--- or nil when there is no such row. Empty values just read the row.
function CRUD:update(id, values)
  check_id(self, id, "update")
  local s = use_session(self.db)
  local cols = value_columns(self, s, values, "update")
  if #cols == 0 then return self:get(id) end
  local sets, params = {}, {}
  for i, c in ipairs(cols) do
    sets[i] = ident(c) .. " = ?"
    params[i] = to_param(values[c])
  end
  params[#params + 1] = to_param(id)
  local text = "UPDATE " .. self.qtable .. " SET " .. concat(sets, ", ") .. " WHERE " .. self.qid .. " = ? RETURNING *"
  local rows, err, code = s:query(text, params)
  if not rows then raise(self.label .. ".update", err, code, text) end
  if rows[1] == nil then return nil end
  return self.read(rows[1])
end

--- Delete by id; true when a row was deleted.
function CRUD:delete_by_id(id)
  check_id(self, id, "delete_by_id")
  local s = use_session(self.db)
  local text = "DELETE FROM " .. self.qtable .. " WHERE " .. self.qid .. " = ?"
  local r, err, code = s:execute(text, { to_param(id) })
  if not r then raise(self.label .. ".delete_by_id", err, code, text) end
  return (r.changes or 0) > 0
end

--- Delete a row (a table holding the id column) or an id; true when a row
--- was deleted.
function CRUD:delete(row_or_id)
  local id = row_or_id
  if type(row_or_id) == "table" then
    id = row_or_id[self.id]
    if id == nil then error(format("%s.delete(row): the row has no %q field", self.label, self.id), 2) end
  end
  check_id(self, id, "delete")
  return self:delete_by_id(id)
end

--- True when a row with this id exists.
function CRUD:exists(id)
  check_id(self, id, "exists")
  local s = use_session(self.db)
  local text = "SELECT 1 AS x FROM " .. self.qtable .. " WHERE " .. self.qid .. " = ? LIMIT 1"
  local row, err, code = s:first(text, { to_param(id) })
  if row == nil and err ~= nil then raise(self.label .. ".exists", err, code, text) end
  return row ~= nil
end

return M
