--- jararaca.persistence: SQLite sessions per transaction, migrations and
-- repository helpers. The user guide is docs/persistence.md.
--
--   local persistence = require "jararaca.persistence"
--   persistence.SessionInterceptor{ url = "sqlite:///app.db", name = "default", readers = 4,
--     busy_timeout = 5, journal_mode = "WAL", synchronous = "NORMAL",      (all options: jararaca.db.options)
--     migrations = "migrations", migrate_on_start = false }
--   persistence.use_session([name])                 -> the transaction's session
--   persistence.providing_new_session([name,] fn)   -> fn(session) in its own transaction
--   persistence.CRUD{ table =, id =, schema =, db = }
--   persistence.Query{ table =, schema =, db =, sortable =, filterable =, default_sort =, count_sql =, max_offset = }
--   persistence.PaginatedFilter                     -> query fields page / page_size / after (route `query =`)
--   persistence.PaginatedSearch                     -> object schema: page, page_size, sort, filters (route `body =`)
--   persistence.Paginated(ItemSchema)               -> object schema of a page (route `response =`)
--   persistence.is_error(e)                         -> e is a database error raised by CRUD/Query
--   persistence.migrate                             -> jararaca.persistence.migrate
-- @module jararaca.persistence
local session = require "jararaca.persistence.session"
local crud = require "jararaca.persistence.crud"
local query = require "jararaca.persistence.query"
local sql = require "jararaca.persistence.sql"

local M = {}

M.SessionInterceptor = session.SessionInterceptor
M.use_session = session.use_session
M.providing_new_session = session.providing_new_session
M.is_database = session.is_database
M.parse_url = session.parse_url

--- The started database (SessionInterceptor) named `name` (default
--- "default") of the running app, or nil: for pool stats or
--- db:independent(fn).
function M.use_database(name)
  local ctx = require("jararaca.context").current()
  return ctx and session.database(ctx.container, name) or nil
end

M.CRUD = crud.CRUD
M.Query = query.Query
M.Paginated = query.Paginated
M.operators = query.operators

M.is_error = sql.is_error
M.Error = sql.Error

local lazy = {
  migrate = function() return require "jararaca.persistence.migrate" end,
  PaginatedFilter = function() return query.pagination_fields() end,
  PaginatedSearch = function() return query.search_schemas().PaginatedSearch end,
  SortModel = function() return query.search_schemas().SortModel end,
  FilterModel = function() return query.search_schemas().FilterModel end,
}

return setmetatable(M, {
  __index = function(t, k)
    local f = lazy[k]
    if f == nil then return nil end
    local v = f()
    rawset(t, k, v)
    return v
  end,
})
