--- jararaca.persistence.query: paginated, sorted, filtered listings.
--
--   local TasksQuery = persistence.Query{
--     table = "tasks", schema = Task, db = "default",
--     sortable = { "name", "created_at" },
--     filterable = { name = "string", done = "boolean", created_at = "datetime", priority = "integer" },
--     default_sort = { "created_at", "desc" },
--   }
--   local page, err = TasksQuery:paginate{
--     page = 0, page_size = 10,
--     sort = { { field = "name", direction = "asc" } },
--     filters = { { field = "name", operator = "contains", value = "doc" } },
--   }
--   -- page = { items = [...], total = #items, unpaginated_total = matching rows, total_pages = ceil(unpaginated_total / page_size) }
--
-- Field names come only from sortable/filterable (whitelists, validated as
-- identifiers); values always travel as parameters. An unknown field or
-- operator, or a value of the wrong type, gives nil, err (answer 422), never
-- a crash. Operators (MUI DataGrid names) by type:
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

local M = {}

local type, pairs, ipairs, next, error, tostring, tonumber, setmetatable, getmetatable =
  type, pairs, ipairs, next, error, tostring, tonumber, setmetatable, getmetatable
local format, concat, sort, ceil = string.format, table.concat, table.sort, math.ceil
local ident, to_param, raise = sql.ident, sql.to_param, sql.raise
local use_session = session.use_session
local json_null = json.null

M.DEFAULT_PAGE_SIZE = 10
M.MAX_PAGE_SIZE = 100

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
  default_sort = true, id = true, where = true, max_page_size = true }

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

local RESULT_MT = json.object_mt({ "items", "total", "unpaginated_total", "total_pages" })
M.RESULT_MT = RESULT_MT
local TOTAL = "__jararaca_total"

--- paginate(filter [, extra]) -> { items, total, unpaginated_total, total_pages } | nil, err
--- filter: page (0-based), page_size (1..max_page_size), sort, filters,
--- logic ("and" default, or "or": how filters combine).
--- extra: { where = "sql condition", params = {...} } added (AND) to the
--- declared `where`, for conditions the code sets (a tenant, an owner).
function Query:paginate(f, extra)
  f = f or {}
  if type(f) ~= "table" then error("Query:paginate(filter): filter must be a table, got " .. type(f), 2) end
  local page, perr = int_arg(f.page, "page", 0)
  if perr then return nil, perr end
  local size, serr = int_arg(f.page_size, "page_size", 1, self.max_page_size)
  if serr then return nil, serr end
  page = page or 0
  size = size or M.DEFAULT_PAGE_SIZE
  if size > self.max_page_size then size = self.max_page_size end
  local sorts, sort_err = parse_sort(self, f.sort)
  if not sorts then return nil, sort_err end
  local fconds, params = {}, {}
  local ok, ferr = add_filters(self, f.filters, fconds, params)
  if not ok then return nil, ferr end
  local logic = f.logic or "and"
  if logic ~= "and" and logic ~= "or" then return nil, "logic must be 'and' or 'or'" end

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

  if #sorts == 0 then sorts = self.default_sort end
  local order = {}
  local seen = {}
  for i, s in ipairs(sorts) do
    order[i] = ident(s.field) .. (s.direction == "desc" and " DESC" or " ASC")
    seen[s.field] = true
  end
  if self.id and not seen[self.id] then order[#order + 1] = ident(self.id) .. " ASC" end
  local order_by = #order > 0 and (" ORDER BY " .. concat(order, ", ")) or ""

  local s = use_session(self.db)
  local text = "SELECT *, COUNT(*) OVER () AS " .. TOTAL .. " FROM " .. self.qtable .. where ..
    order_by .. " LIMIT ? OFFSET ?"
  local qparams = {}
  for i, p in ipairs(all_params) do qparams[i] = p end
  qparams[#qparams + 1] = size
  qparams[#qparams + 1] = page * size
  local rows, err, code = s:query(text, qparams)
  if not rows then raise(self.table .. ".paginate", err, code, text) end
  local unpaginated
  if rows[1] ~= nil then
    unpaginated = tonumber(rows[1][TOTAL])
  elseif page == 0 then
    unpaginated = 0
  else
    local ctext = "SELECT COUNT(*) AS n FROM " .. self.qtable .. where
    local row, cerr, ccode = s:first(ctext, all_params)
    if row == nil then raise(self.table .. ".paginate", cerr or "no count", ccode, ctext) end
    unpaginated = tonumber(row.n)
  end
  local items = sql.array({})
  local read = self.read
  for i, r in ipairs(rows) do
    r[TOTAL] = nil
    items[i] = read(r)
  end
  return setmetatable({
    items = items, total = #items, unpaginated_total = unpaginated,
    total_pages = ceil(unpaginated / size),
  }, RESULT_MT)
end

---------------------------------------------------------------------------
-- Schemas for routes
---------------------------------------------------------------------------

--- Query parameters page / page_size, for a route's `query =` option.
function M.pagination_fields(opts)
  local s = S()
  local max = opts and opts.max_page_size or M.MAX_PAGE_SIZE
  local default = opts and opts.default_page_size or M.DEFAULT_PAGE_SIZE
  return {
    page = s.integer { minimum = 0, description = "page number, from 0" }:default(0),
    page_size = s.integer { minimum = 1, maximum = max, description = "items per page" }:default(default),
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
