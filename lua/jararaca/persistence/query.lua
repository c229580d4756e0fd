--- jararaca.persistence.query: paginated, sorted, filtered listings.
--
--   local TasksQuery = persistence.Query{
--     table = "tasks", schema = Task, db = "default",
--     sortable = { "name", "created_at" },
--     filterable = { name = "string", done = "boolean", created_at = "datetime", priority = "integer" },
--     default_sort = { "created_at", "desc" },
--   }
--   local page, err = TasksQuery:paginate{
--     page = 0, page_size = 10,             -- or after = <next_cursor of the previous page>
--     sort = { { field = "name", direction = "asc" } },
--     filters = { { field = "name", operator = "contains", value = "doc" } },
--   }
--   -- page = { items = [...], total = #items, unpaginated_total = matching rows,
--   --          total_pages = ceil(unpaginated_total / page_size), next_cursor = "..." | null }
--
-- Pages come from an index when the table has one on (sort column, id):
-- the order is the sort keys then the id, all in one direction. An offset
-- may skip at most max_offset rows (default 10,000); deeper pages go by
-- cursor (keyset pagination: WHERE (sort column, id) > (last seen)). The
-- count of matching rows is cached per snapshot: it runs again only after
-- the data changed. count_sql ("SELECT n FROM tasks_count": a counter kept
-- by triggers) gives the total when no filter applies, in one read.
--
-- Field names come only from sortable/filterable (whitelists, validated as
-- identifiers); values always travel as parameters. An unknown field or
-- operator, or a value of the wrong type, gives nil, err, "invalid" (answer
-- 422), never a crash. Operators (MUI DataGrid names) by type:
--   string    contains doesNotContain equals doesNotEqual startsWith endsWith isEmpty isNotEmpty isAnyOf
--   datetime  is not after onOrAfter before onOrBefore isEmpty isNotEmpty   (also date)
--   boolean   is
--   integer   = != > < >= <= isEmpty isNotEmpty isAnyOf                     (also number)
-- A filter without a value (nil, "", or an empty list) is skipped, except
-- isEmpty / isNotEmpty, which need none.
-- @module jararaca.persistence.query
local sql = require "jararaca.persistence.sql"
local session = require "jararaca.persistence.session"
local json = require "jararaca.json"
local base64 = require "jararaca.base64"

local M = {}

local type, pairs, ipairs, next, error, tostring, tonumber, setmetatable, getmetatable =
  type, pairs, ipairs, next, error, tostring, tonumber, setmetatable, getmetatable
local format, concat, sort, ceil = string.format, table.concat, table.sort, math.ceil
local ident, to_param, raise = sql.ident, sql.to_param, sql.raise
local use_session = session.use_session
local json_null = json.null

M.DEFAULT_PAGE_SIZE = 10
M.MAX_PAGE_SIZE = 100
-- OFFSET walks the rows it skips: deeper pages go by cursor (after).
M.MAX_OFFSET = 10000

local schema_mod
local function S()
  if not schema_mod then schema_mod = require "jararaca.schema" end
  return schema_mod
end

---------------------------------------------------------------------------
-- Operators
---------------------------------------------------------------------------

local TYPES = { string = "string", text = "string", uuid = "string", enum = "string",
  integer = "integer", number = "number", boolean = "boolean", datetime = "datetime", date = "date" }

-- op -> { sql = function(col) -> text with one "?" per parameter, value = "one"|"list"|"none", like = fn }
local function like_op(prefix, suffix, negate)
  return {
    value = "one",
    sql = negate and function(c) return "(" .. c .. " IS NULL OR " .. c .. " NOT LIKE ? ESCAPE '\\')" end
      or function(c) return c .. " LIKE ? ESCAPE '\\'" end,
    transform = function(v) return prefix .. sql.like_escape(v) .. suffix end,
  }
end

local function cmp_op(op, wrap)
  wrap = wrap or ""
  if wrap == "" then
    return { value = "one", sql = function(c) return c .. " " .. op .. " ?" end }
  end
  return { value = "one", sql = function(c) return wrap .. "(" .. c .. ") " .. op .. " " .. wrap .. "(?)" end }
end

local function ne_op(wrap)
  if wrap then
    return { value = "one", sql = function(c) return "(" .. c .. " IS NULL OR " .. wrap .. "(" .. c .. ") <> " .. wrap .. "(?))" end }
  end
  return { value = "one", sql = function(c) return "(" .. c .. " IS NULL OR " .. c .. " <> ?)" end }
end

local IS_NULL = { value = "none", sql = function(c) return c .. " IS NULL" end }
local NOT_NULL = { value = "none", sql = function(c) return c .. " IS NOT NULL" end }
local EMPTY_TEXT = { value = "none", sql = function(c) return "(" .. c .. " IS NULL OR " .. c .. " = '')" end }
local NOT_EMPTY_TEXT = { value = "none", sql = function(c) return "(" .. c .. " IS NOT NULL AND " .. c .. " <> '')" end }
local ANY_OF = { value = "list", sql = function(c, n)
  local marks = {}
  for i = 1, n do marks[i] = "?" end
  return c .. " IN (" .. concat(marks, ", ") .. ")"
end }

local function date_ops(fn)
  return {
    is = cmp_op("=", fn), ["not"] = ne_op(fn),
    after = cmp_op(">", fn), onOrAfter = cmp_op(">=", fn),
    before = cmp_op("<", fn), onOrBefore = cmp_op("<=", fn),
    isEmpty = EMPTY_TEXT, isNotEmpty = NOT_EMPTY_TEXT,
  }
end

local NUMBER_OPS = {
  ["="] = cmp_op("="), ["!="] = ne_op(), [">"] = cmp_op(">"), ["<"] = cmp_op("<"),
  [">="] = cmp_op(">="), ["<="] = cmp_op("<="),
  isEmpty = IS_NULL, isNotEmpty = NOT_NULL, isAnyOf = ANY_OF,
}

local OPERATORS = {
  string = {
    contains = like_op("%", "%"), doesNotContain = like_op("%", "%", true),
    equals = cmp_op("="), doesNotEqual = ne_op(),
    startsWith = like_op("", "%"), endsWith = like_op("%", ""),
    isEmpty = EMPTY_TEXT, isNotEmpty = NOT_EMPTY_TEXT, isAnyOf = ANY_OF,
  },
  -- instants compare as instants whatever their offset or fraction
  datetime = date_ops("julianday"),
  date = date_ops("date"),
  boolean = { is = cmp_op("=") },
  integer = NUMBER_OPS,
  number = NUMBER_OPS,
}
M.OPERATORS = OPERATORS

local OPERATOR_ORDER = {
  string = { "contains", "doesNotContain", "equals", "doesNotEqual", "startsWith", "endsWith", "isEmpty", "isNotEmpty", "isAnyOf" },
  datetime = { "is", "not", "after", "onOrAfter", "before", "onOrBefore", "isEmpty", "isNotEmpty" },
  date = { "is", "not", "after", "onOrAfter", "before", "onOrBefore", "isEmpty", "isNotEmpty" },
  boolean = { "is" },
  integer = { "=", "!=", ">", "<", ">=", "<=", "isEmpty", "isNotEmpty", "isAnyOf" },
  number = { "=", "!=", ">", "<", ">=", "<=", "isEmpty", "isNotEmpty", "isAnyOf" },
}

--- The operator names of a filter type, in documentation order.
function M.operators(kind)
  local list = OPERATOR_ORDER[TYPES[kind] or kind]
  if not list then return nil end
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  return out
end

-- Convert one filter value for a type: value | nil, reason.
local converters = {}
function converters.string(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" or t == "boolean" then return tostring(v) end
  return nil, "expected a string"
end
local function via_schema(kind, what)
  local sc
  return function(v)
    if sc == nil then sc = S()[kind]() end
    local r = sc:validate(v, { from_string = true })
    if r == nil then return nil, what end
    return r
  end
end
converters.integer = via_schema("integer", "expected an integer")
converters.number = via_schema("number", "expected a number")
local to_bool = via_schema("boolean", "expected true or false")
function converters.boolean(v)
  local b, why = to_bool(v)
  if b == nil then return nil, why end
  return b and 1 or 0
end
local to_datetime = via_schema("datetime", "")
local to_date = via_schema("date", "")
function converters.datetime(v)
  if type(v) == "string" then
    local d = to_datetime(v) or to_date(v)
    if d then return d end
    -- a naive "YYYY-MM-DDTHH:MM:SS[.fff]" is read as UTC
    if v:match("^%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d:%d%d[%.%d]*$") then
      local z = to_datetime(v .. "Z")
      if z then return z end
    end
    return nil, "expected a date (YYYY-MM-DD) or a date-time (RFC 3339)"
  elseif type(v) == "number" then
    return to_datetime(v)
  end
  return nil, "expected a date (YYYY-MM-DD) or a date-time (RFC 3339)"
end
function converters.date(v)
  if type(v) == "string" then
    local d = to_date(v) or to_datetime(v)
    if d then return d:sub(1, 10) end
  end
  return nil, "expected a date (YYYY-MM-DD)"
end

local function is_blank(v)
  if v == nil or v == "" or v == json_null then return true end
  if type(v) == "table" and next(v) == nil then return true end
  return sql.is_null(v)
end

---------------------------------------------------------------------------
-- Query
---------------------------------------------------------------------------

local Query = {}
Query.__index = Query
Query.__name = "Query"
M.Query_class = Query

local OPTIONS = { table = true, schema = true, db = true, sortable = true, filterable = true,
  default_sort = true, id = true, where = true, max_page_size = true, max_offset = true, count_sql = true }

local function parse_sort_pair(p, what, level)
  if type(p) ~= "table" then error(what .. " must be { field, direction }", level + 1) end
  local field = p[1] or p.field
  local dir = (p[2] or p.direction or "asc")
  sql.check_ident(field, what .. " field", level + 1)
  if type(dir) ~= "string" or (dir:lower() ~= "asc" and dir:lower() ~= "desc") then
    error(what .. " direction must be \"asc\" or \"desc\"", level + 1)
  end
  return { field = field, direction = dir:lower() }
end

--- persistence.Query{ table =, schema =, db =, sortable =, filterable =, default_sort =, id =, where =, max_page_size = }
function M.Query(opts)
  if type(opts) ~= "table" then error("Query{...}: expects a table of options, got " .. type(opts), 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then error(format("Query: unknown option %s", tostring(k)), 2) end
  end
  sql.check_ident(opts.table, "Query: table", 2)
  local db = opts.db or "default"
  if type(db) ~= "string" then error("Query: db must be a database name (string), got " .. type(db), 2) end
  if opts.schema ~= nil then sql.check_object_schema(opts.schema, "Query: schema", 2) end
  local sortable = {}
  if opts.sortable ~= nil then
    if type(opts.sortable) ~= "table" then error("Query: sortable must be a list of column names", 2) end
    for i, f in ipairs(opts.sortable) do
      sql.check_ident(f, format("Query: sortable[%d]", i), 2)
      sortable[f] = true
    end
  end
  local filterable = {}
  if opts.filterable ~= nil then
    if type(opts.filterable) ~= "table" then error("Query: filterable must be a table { column = type }", 2) end
    for f, kind in pairs(opts.filterable) do
      sql.check_ident(f, "Query: a filterable column", 2)
      local t = TYPES[kind]
      if not t then
        error(format("Query: filterable.%s: unknown type %s (string, integer, number, boolean, datetime, date)",
          f, tostring(kind)), 2)
      end
      filterable[f] = t
    end
  end
  local default_sort = {}
  local ds = opts.default_sort
  if ds ~= nil then
    if type(ds) ~= "table" then error("Query: default_sort must be { field, direction } or a list of them", 2) end
    if type(ds[1]) == "string" or ds.field ~= nil then
      default_sort[1] = parse_sort_pair(ds, "Query: default_sort", 2)
    else
      for i, p in ipairs(ds) do default_sort[i] = parse_sort_pair(p, format("Query: default_sort[%d]", i), 2) end
    end
  end
  local id = opts.id
  if id == nil and opts.schema ~= nil then
    for _, c in ipairs(sql.columns_of(opts.schema)) do if c == "id" then id = "id" end end
  end
  if id ~= nil and id ~= false then sql.check_ident(id, "Query: id", 2) end
  if opts.where ~= nil and type(opts.where) ~= "string" then error("Query: where must be an SQL condition (string)", 2) end
  local max = opts.max_page_size or M.MAX_PAGE_SIZE
  if type(max) ~= "number" or max < 1 or max % 1 ~= 0 then error("Query: max_page_size must be an integer >= 1", 2) end
  if opts.count_sql ~= nil and type(opts.count_sql) ~= "string" then
    error("Query: count_sql must be an SQL query (string) that returns the number of rows of the table", 2)
  end
  local max_offset = opts.max_offset or M.MAX_OFFSET
  if type(max_offset) ~= "number" or max_offset < 0 or max_offset % 1 ~= 0 then
    error("Query: max_offset must be an integer >= 0", 2)
  end
  local names = {}
  for f in pairs(sortable) do names[#names + 1] = f end
  sort(names)
  local fnames = {}
  for f in pairs(filterable) do fnames[#fnames + 1] = f end
  sort(fnames)
  return setmetatable({
    table = opts.table, qtable = ident(opts.table), db = db, schema = opts.schema,
    sortable = sortable, sortable_names = concat(names, ", "),
    filterable = filterable, filterable_names = concat(fnames, ", "),
    default_sort = default_sort, id = id or nil, where = opts.where, max_page_size = max,
    max_offset = max_offset, count_sql = opts.count_sql, _counts = setmetatable({}, { __mode = "k" }),
    read = sql.row_reader(opts.schema, "Query(" .. opts.table .. ")"),
  }, Query)
end

function M.is_query(v)
  return getmetatable(v) == Query
end

local function int_arg(v, name, lo, hi)
  if v == nil then return nil end
  local n = v
  if type(n) == "string" then n = tonumber(n) end
  if type(n) == "cdata" then n = tonumber(n) end
  if type(n) ~= "number" or n % 1 ~= 0 or n < lo or (hi and n > hi) then
    if hi then return nil, format("%s must be an integer between %d and %d, got %s", name, lo, hi, tostring(v)) end
    return nil, format("%s must be an integer >= %d, got %s", name, lo, tostring(v))
  end
  return n
end

-- sort entries: { field =, direction = } (or { field =, sort = }, MUI),
-- "name", "-name", "name:desc"
local function parse_sort(self, list)
  local out = {}
  if list == nil or list == json_null then return out end
  if type(list) ~= "table" then return nil, "sort must be a list of { field, direction }" end
  for i, item in ipairs(list) do
    local field, dir
    if type(item) == "string" then
      if item:sub(1, 1) == "-" then field, dir = item:sub(2), "desc"
      else
        field, dir = item:match("^([^:]+):(%a+)$")
        if not field then field, dir = item, "asc" end
      end
    elseif type(item) == "table" then
      field = item.field
      dir = item.direction or item.sort or "asc"
    else
      return nil, format("sort[%d] must be { field, direction }", i)
    end
    if type(field) ~= "string" or not self.sortable[field] then
      return nil, format("sort[%d]: field %s is not sortable (sortable: %s)", i,
        type(field) == "string" and format("'%s'", field) or tostring(field),
        self.sortable_names ~= "" and self.sortable_names or "none")
    end
    if type(dir) ~= "string" or (dir:lower() ~= "asc" and dir:lower() ~= "desc") then
      return nil, format("sort[%d]: direction must be 'asc' or 'desc', got %s", i, tostring(dir))
    end
    out[#out + 1] = { field = field, direction = dir:lower() }
  end
  return out
end

-- Append the WHERE conditions of the filters; nil, err on a bad filter.
local function add_filters(self, list, conds, params)
  if list == nil or list == json_null then return true end
  if type(list) ~= "table" then return nil, "filters must be a list of { field, operator, value }" end
  for i, item in ipairs(list) do
    if type(item) ~= "table" then return nil, format("filters[%d] must be { field, operator, value }", i) end
    local field, op, value = item.field, item.operator, item.value
    local kind = type(field) == "string" and self.filterable[field] or nil
    if not kind then
      return nil, format("filters[%d]: field %s is not filterable (filterable: %s)", i,
        type(field) == "string" and format("'%s'", field) or tostring(field),
        self.filterable_names ~= "" and self.filterable_names or "none")
    end
    local spec = type(op) == "string" and OPERATORS[kind][op] or nil
    if not spec then
      return nil, format("filters[%d]: operator %s is not valid for %s field '%s' (valid: %s)", i,
        type(op) == "string" and format("'%s'", op) or tostring(op), kind, field, concat(OPERATOR_ORDER[kind], ", "))
    end
    local col = ident(field)
    local conv = converters[kind]
    if spec.value == "none" then
      conds[#conds + 1] = spec.sql(col)
    elseif not is_blank(value) then
      if spec.value == "list" then
        local values = value
        if type(values) ~= "table" then values = { values } end
        local n = 0
        for j, v in ipairs(values) do
          local x, why = conv(v)
          if x == nil then return nil, format("filters[%d] (%s %s): value %d: %s", i, field, op, j, why) end
          n = n + 1
          params[#params + 1] = to_param(x)
        end
        if n > 0 then conds[#conds + 1] = spec.sql(col, n) end
      else
        if type(value) == "table" then
          return nil, format("filters[%d] (%s %s): expected a single value, got a list", i, field, op)
        end
        local x, why = conv(value)
        if x == nil then return nil, format("filters[%d] (%s %s): %s", i, field, op, why) end
        if spec.transform then x = spec.transform(x) end
        params[#params + 1] = to_param(x)
        conds[#conds + 1] = spec.sql(col)
      end
    end
  end
  return true
end

local RESULT_MT = json.object_mt({ "items", "total", "unpaginated_total", "total_pages", "next_cursor" })
M.RESULT_MT = RESULT_MT

-- The ORDER BY keys: the sorts asked for (or the default), then the id as
-- the tie-breaker, in the direction of the last key. One direction for
-- all keys lets an index on (sort column, id) serve the whole order (a
-- WITHOUT ROWID table's index on the sort column holds the key already;
-- a rowid table's holds the rowid, so an INTEGER PRIMARY KEY id too).
local function order_keys(self, sorts)
  if #sorts == 0 then sorts = self.default_sort end
  local keys, seen = {}, {}
  for i, srt in ipairs(sorts) do
    keys[i] = { srt.field, srt.direction }
    seen[srt.field] = true
  end
  if self.id and not seen[self.id] then
    keys[#keys + 1] = { self.id, #keys > 0 and keys[#keys][2] or "asc" }
  end
  return keys
end

local function signature(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = k[1] .. ":" .. k[2] end
  return concat(parts, ",")
end

-- The columns of the table that cannot hold NULL (PRAGMA table_info:
-- declared NOT NULL, a WITHOUT ROWID primary key, or an INTEGER PRIMARY KEY,
-- which is the rowid), learnt once.
local function not_null(self, s)
  local known = self._not_null
  if known then return known end
  local rows, err, code = s:query("SELECT name, \"notnull\" AS nn, pk, type FROM pragma_table_info(?)", { self.table })
  if not rows then raise(self.table .. ".paginate", err, code, "PRAGMA table_info") end
  known = {}
  local pks = 0
  for _, r in ipairs(rows) do if r.pk > 0 then pks = pks + 1 end end
  for _, r in ipairs(rows) do
    -- an INTEGER PRIMARY KEY (the one key column) is the rowid: never NULL
    if r.nn == 1 or (pks == 1 and r.pk == 1 and type(r.type) == "string" and r.type:upper() == "INTEGER") then
      known[r.name] = true
    end
  end
  if self.id then known[self.id] = true end
  self._not_null = known
  return known
end

-- Rows after the cursor's: "(a, b) > (?, ?)" when the keys go one way and
-- hold no NULL (an index range), else the lexicographic expansion, with
-- NULLs where SQLite sorts them (first ascending, last descending); params
-- get the cursor's values.
local function after_condition(keys, values, nn, params)
  local simple = true
  for i = 1, #keys do
    if keys[i][2] ~= keys[1][2] or not nn[keys[i][1]] or values[i] == json_null then simple = false end
  end
  if simple then
    local cols, marks = {}, {}
    for i, k in ipairs(keys) do
      cols[i], marks[i] = ident(k[1]), "?"
      params[#params + 1] = values[i]
    end
    local op = keys[1][2] == "desc" and " < " or " > "
    if #keys == 1 then return cols[1] .. op .. "?" end
    return "(" .. concat(cols, ", ") .. ")" .. op .. "(" .. concat(marks, ", ") .. ")"
  end
  local ors = {}
  for i = 1, #keys do
    local ands, ps, ok = {}, {}, true
    for k = 1, i - 1 do
      local col = ident(keys[k][1])
      if values[k] == json_null then
        ands[#ands + 1] = col .. " IS NULL"
      else
        ands[#ands + 1] = col .. " = ?"
        ps[#ps + 1] = values[k]
      end
    end
    local col, v, desc = ident(keys[i][1]), values[i], keys[i][2] == "desc"
    if v == json_null then
      if desc then ok = false else ands[#ands + 1] = col .. " IS NOT NULL" end -- after NULLs, ascending: the rest
    else
      ps[#ps + 1] = v
      if desc then
        ands[#ands + 1] = nn[keys[i][1]] and (col .. " < ?") or ("(" .. col .. " < ? OR " .. col .. " IS NULL)")
      else
        ands[#ands + 1] = col .. " > ?"
      end
    end
    if ok then
      ors[#ors + 1] = "(" .. concat(ands, " AND ") .. ")"
      for _, x in ipairs(ps) do params[#params + 1] = x end
    end
  end
  if #ors == 0 then return "0" end
  return "(" .. concat(ors, " OR ") .. ")"
end

local function encode_cursor(keys, row)
  local values = {}
  for i, k in ipairs(keys) do
    local v = row[k[1]]
    if v == nil then v = json_null end
    values[i] = v
  end
  return base64.encode(json.encode({ signature(keys), json.array(values) }))
end

local BAD_CURSOR = "after: not a cursor of this listing (pass the next_cursor of the previous page as it is)"

local function decode_cursor(keys, cursor)
  local text = base64.decode(cursor)
  if not text then return nil, BAD_CURSOR end
  local ok, t = pcall(json.decode, text)
  if not ok or type(t) ~= "table" or t[1] ~= signature(keys) or type(t[2]) ~= "table" or #t[2] ~= #keys then
    return nil, BAD_CURSOR
  end
  for i = 1, #keys do
    local v, tv = t[2][i], type(t[2][i])
    if v ~= json_null and tv ~= "string" and tv ~= "number" and tv ~= "cdata" and tv ~= "boolean" then
      return nil, BAD_CURSOR
    end
    if v ~= json_null then t[2][i] = to_param(v) end
  end
  return t[2]
end

-- The number of rows matching `where`, from a cache kept per connection and
-- content (Session:content_key): a count walks every matching row, and a
-- listing read again and again on unchanged data must not (a table of
-- 100,000 rows takes milliseconds to count).
local COUNT_CACHE_MAX = 64

local function count_rows(self, s, where, params)
  if where == "" and self.count_sql then
    -- a counter kept by the table's triggers: one row to read
    local row, err, code = s:first(self.count_sql)
    if row == nil then raise(self.table .. ".paginate", err or "count_sql returned no row", code or "invalid", self.count_sql) end
    local _, n = next(row)
    n = tonumber(n)
    if n == nil then raise(self.table .. ".paginate", "count_sql did not return a number", "invalid", self.count_sql) end
    return n
  end
  local conn, version, changes = s:content_key()
  local key
  if conn ~= nil then
    local c = self._counts[conn]
    if c == nil or c.version ~= version or c.changes ~= changes or c.n >= COUNT_CACHE_MAX then
      c = { version = version, changes = changes, n = 0, values = {} }
      self._counts[conn] = c
    end
    local parts = { where }
    for i, p in ipairs(params) do parts[i + 1] = type(p) .. ":" .. tostring(p) end
    key = concat(parts, "\0")
    local n = c.values[key]
    if n then return n end
  end
  local text = "SELECT count(*) AS n FROM " .. self.qtable .. where
  -- on the reader's thread: a count is one long SQLite instruction
  local row, err, code = s:first(text, params, { thread = true })
  if row == nil then raise(self.table .. ".paginate", err or "no count", code or "error", text) end
  local n = tonumber(row.n)
  if key then
    local c = self._counts[conn]
    if c and c.version == version and c.changes == changes then
      c.values[key] = n
      c.n = c.n + 1
    end
  end
  return n
end

--- paginate(filter [, extra]) -> { items, total, unpaginated_total, total_pages, next_cursor }
--- | nil, message, "invalid" (a bad page, size, cursor, sort or filter: the
--- client's mistake, answer 422). Database errors raise a PersistenceError.
--- filter: page (0-based), page_size (1..max_page_size), sort, filters,
--- logic ("and" default, or "or": how filters combine), after (a cursor:
--- the next_cursor of the previous page, instead of page, for any depth).
--- extra: { where = "sql condition", params = {...} } added (AND) to the
--- declared `where`, for conditions the code sets (a tenant, an owner).
function Query:paginate(f, extra)
  f = f or {}
  if type(f) ~= "table" then error("Query:paginate(filter): filter must be a table, got " .. type(f), 2) end
  local page, perr = int_arg(f.page, "page", 0)
  if perr then return nil, perr, "invalid" end
  local size, serr = int_arg(f.page_size, "page_size", 1, self.max_page_size)
  if serr then return nil, serr, "invalid" end
  page = page or 0
  size = size or M.DEFAULT_PAGE_SIZE
  local after = f.after
  if after == json_null or after == "" then after = nil end
  if after ~= nil and type(after) ~= "string" then return nil, "after must be a cursor (a string)", "invalid" end
  if after and page > 0 then return nil, "give page or after, not both", "invalid" end
  if page * size > self.max_offset then
    return nil, format("page %d of %d rows starts past row %d, and an offset may skip at most %d rows: "
      .. "go deeper with the cursor (after = the previous page's next_cursor)", page, size, page * size, self.max_offset),
      "invalid"
  end
  local sorts, sort_err = parse_sort(self, f.sort)
  if not sorts then return nil, sort_err, "invalid" end
  local fconds, params = {}, {}
  local ok, ferr = add_filters(self, f.filters, fconds, params)
  if not ok then return nil, ferr, "invalid" end
  local logic = f.logic or "and"
  if logic ~= "and" and logic ~= "or" then return nil, "logic must be 'and' or 'or'", "invalid" end

  local conds = {}
  if self.where then conds[#conds + 1] = "(" .. self.where .. ")" end
  local all_params = {}
  if extra ~= nil then
    if type(extra) ~= "table" then error("Query:paginate(filter, extra): extra must be a table", 2) end
    if extra.where ~= nil then
      if type(extra.where) ~= "string" then error("Query:paginate: extra.where must be an SQL condition (string)", 2) end
      conds[#conds + 1] = "(" .. extra.where .. ")"
      for _, p in ipairs(extra.params or {}) do all_params[#all_params + 1] = to_param(p) end
    end
  end
  if #fconds > 0 then
    conds[#conds + 1] = "(" .. concat(fconds, logic == "or" and " OR " or " AND ") .. ")"
  end
  for _, p in ipairs(params) do all_params[#all_params + 1] = p end
  local where = #conds > 0 and (" WHERE " .. concat(conds, " AND ")) or ""

  local keys = order_keys(self, sorts)
  local order = {}
  for i, k in ipairs(keys) do order[i] = ident(k[1]) .. (k[2] == "desc" and " DESC" or " ASC") end
  local order_by = #order > 0 and (" ORDER BY " .. concat(order, ", ")) or ""

  local qparams = {}
  for i, p in ipairs(all_params) do qparams[i] = p end
  local page_where = where
  local s = use_session(self.db)
  if after then
    if not self.id then return nil, "after: this listing has no id column to page by (option id)", "invalid" end
    local values, cerr = decode_cursor(keys, after)
    if not values then return nil, cerr, "invalid" end
    local cond = after_condition(keys, values, not_null(self, s), qparams)
    page_where = where == "" and (" WHERE " .. cond) or (where .. " AND " .. cond)
  end
  -- one row more than the page: whether there is a next one
  local text = "SELECT * FROM " .. self.qtable .. page_where .. order_by .. " LIMIT ?"
  qparams[#qparams + 1] = size + 1
  if not after then
    text = text .. " OFFSET ?"
    qparams[#qparams + 1] = page * size
  end
  local rows, err, code = s:query(text, qparams)
  if not rows then raise(self.table .. ".paginate", err, code, text) end
  local next_cursor = json_null
  if #rows > size then
    rows[#rows] = nil
    if self.id then next_cursor = encode_cursor(keys, rows[#rows]) end
  end
  local unpaginated = count_rows(self, s, where, all_params)
  local items = sql.array({})
  local read = self.read
  for i, r in ipairs(rows) do items[i] = read(r) end
  return setmetatable({
    items = items, total = #items, unpaginated_total = unpaginated,
    total_pages = ceil(unpaginated / size), next_cursor = next_cursor,
  }, RESULT_MT)
end

---------------------------------------------------------------------------
-- Schemas for routes
---------------------------------------------------------------------------

--- Query parameters page / page_size / after, for a route's `query =` option.
--- opts: max_page_size, default_page_size, max_offset (as the Query's).
function M.pagination_fields(opts)
  local s = S()
  local max = opts and opts.max_page_size or M.MAX_PAGE_SIZE
  local default = opts and opts.default_page_size or M.DEFAULT_PAGE_SIZE
  local max_offset = opts and opts.max_offset or M.MAX_OFFSET
  return {
    page = s.integer { minimum = 0, maximum = max_offset,
      description = "page number, from 0 (an offset may skip at most " .. max_offset .. " rows: deeper, use after)" }:default(0),
    page_size = s.integer { minimum = 1, maximum = max, description = "items per page" }:default(default),
    after = s.string { min_length = 1, max_length = 2048,
      description = "the next_cursor of the previous page: the page after it (instead of page)" }:optional(),
  }
end

local search_cache
--- Named objects SortModel, FilterModel and PaginatedSearch (a JSON body
--- with page, page_size, sort, filters), built and registered on first use.
function M.search_schemas()
  if search_cache then return search_cache end
  local s = S()
  local fields = M.pagination_fields()
  local SortModel = s.object("SortModel", {
    { "field", s.string { min_length = 1 } },
    { "direction", s.enum({ "asc", "desc" }):default("asc") },
  })
  local FilterModel = s.object("FilterModel", {
    { "field", s.string { min_length = 1 } },
    { "operator", s.string { min_length = 1 } },
    { "value", s.one_of(s.string(), s.number(), s.boolean(), s.array(s.one_of(s.string(), s.number()))):nullable():optional() },
  })
  local PaginatedSearch = s.object("PaginatedSearch", {
    { "page", fields.page },
    { "page_size", fields.page_size },
    { "after", fields.after },
    { "sort", s.array(SortModel):default({}) },
    { "filters", s.array(FilterModel):default({}) },
    { "logic", s.enum({ "and", "or" }):default("and") },
  })
  search_cache = { SortModel = SortModel, FilterModel = FilterModel, PaginatedSearch = PaginatedSearch }
  return search_cache
end

local paginated_cache = setmetatable({}, { __mode = "k" })
--- persistence.Paginated(ItemSchema) -> an object schema for a page of
--- items (named "<Item>Page" when the item schema is named), for `response =`.
function M.Paginated(item)
  local s = S()
  if not s.is_schema(item) then error("Paginated(schema): expected an item schema, got " .. type(item), 2) end
  local sc = paginated_cache[item]
  if sc then return sc end
  local fields = {
    { "items", s.array(item) },
    { "total", s.integer { minimum = 0 } },
    { "unpaginated_total", s.integer { minimum = 0 } },
    { "total_pages", s.integer { minimum = 0 } },
    { "next_cursor", s.string { description = "pass as after for the next page; null on the last" }:nullable() },
  }
  local name = item.name and (item.name .. "Page") or nil
  if name and s.lookup(name) == nil then
    sc = s.object(name, fields)
  else
    sc = s.object(fields)
  end
  paginated_cache[item] = sc
  return sc
end

return M
