--- jararaca.rpc.options: the options of RPC client routes, clients and
-- builds, checked once when they are declared (docs/rpc.md lists them).
--
--   local opts = require "jararaca.rpc.options"
--   local checked = opts.check(kind, given, where, level)  -- raises error(msg, level)
--
-- kind: "route" (j.rpc.Get's opts), "client" (j.RestClient's defaults) or
-- "build" (j.rpc.build's). The checked table holds the same keys, with
-- lists turned into what the call reads: success and retry.on_status,
-- retry.on_error as sets; headers with lower-case names.
-- @module jararaca.rpc.options
local schema = require "jararaca.schema"

local M = {}

local type, pairs, ipairs, error, tostring, setmetatable, getmetatable, pcall =
  type, pairs, ipairs, error, tostring, setmetatable, getmetatable, pcall
local format, lower, sort, concat = string.format, string.lower, table.sort, table.concat
local is_schema = schema.is_schema

local Invalid = {}
local function fail(fmt, ...)
  error(setmetatable({ msg = format(fmt, ...) }, Invalid), 0)
end

local function show(v)
  if type(v) == "string" then return format("%q", v) end
  if is_schema(v) then return "a " .. tostring(v.kind) .. " schema" end
  return tostring(v)
end

-- Which keys each kind accepts.
local SHARED = { headers = true, timeout = true, retry = true, success = true, middlewares = true,
  response_hooks = true }
local KEYS = {
  route = { params = true, query = true, body = true, content_type = true, response = true, raw = true,
    name = true, description = true },
  client = { name = true },
  build = { base_url = true, transport = true, http = true, tracing = true },
}
for _, t in pairs(KEYS) do for k in pairs(SHARED) do t[k] = true end end

local HEADER_NAME = "^[%w!#$%%&'*+%-%.^_`|~]+$"
M.HEADER_NAME = HEADER_NAME
local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, TRACE = true }
M.IDEMPOTENT = IDEMPOTENT

local function is_status(v)
  return type(v) == "number" and v % 1 == 0 and v >= 100 and v <= 599
end

local function positive(v, key)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge) then
    fail("%s: expected a positive number of seconds, got %s", key, show(v))
  end
  return v
end

local function status_set(v, key)
  if type(v) ~= "table" or is_schema(v) then fail("%s: expected a list of statuses, got %s", key, show(v)) end
  local set, n = {}, 0
  for k, s in pairs(v) do
    if type(k) ~= "number" or not is_status(s) then
      fail("%s: expected a list of statuses (integers 100..599), got %s", key, show(s))
    end
    set[s] = true
    n = n + 1
  end
  if n == 0 then fail("%s: the list is empty", key) end
  return set
end

local function functions(v, key, what)
  if v == nil then return nil end
  if type(v) ~= "table" then fail("%s: expected a list of %s, got %s", key, what, show(v)) end
  for i = 1, #v do
    if type(v[i]) ~= "function" then fail("%s[%d]: expected %s, got %s", key, i, what, show(v[i])) end
  end
  for k in pairs(v) do
    if type(k) ~= "number" then fail("%s: expected a list of %s, got the key %s", key, what, show(k)) end
  end
  return v
end

-- Static headers { name = "text" } (route headers may also be schemas:
-- a header taken from the call's argument of the same name).
local function headers(v, allow_schemas)
  if v == nil then return nil end
  if type(v) ~= "table" or is_schema(v) then fail("headers: expected a table { name = value }, got %s", show(v)) end
  local out, args = {}, nil
  for k, x in pairs(v) do
    if type(k) ~= "string" or not k:find(HEADER_NAME) then fail("headers: %s is not a header name", show(k)) end
    local name = lower(k)
    if out[name] ~= nil or (args and args[name]) then
      fail("headers.%s: given twice (header names are case-insensitive)", name)
    end
    if type(x) == "string" then
      if x:find("[\r\n%z]") then fail("headers.%s: a header value has no CR, LF or NUL", name) end
      out[name] = x
    elseif allow_schemas and is_schema(x) then
      args = args or {}
      args[name] = x
    else
      fail("headers.%s: expected a string%s, got %s", name, allow_schemas and " or a schema" or "", show(x))
    end
  end
  return out, args
end

local RETRY_KEYS = { attempts = true, backoff = true, max_backoff = true, on_status = true, on_error = true,
  unsafe = true }
local RETRY_CODES = { refused = true, closed = true, timeout = true, resolve = true, tls = true, invalid = true,
  too_large = true }
M.RETRY_DEFAULTS = { attempts = 3, backoff = 0.2, max_backoff = 10, on_status = { 502, 503, 504 },
  on_error = { "refused", "closed", "timeout" } }

local function list_text(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  sort(t)
  return concat(t, ", ")
end

-- retry = { ... } | false (a route without the client's retries)
local function retry(v)
  if v == nil or v == false then return v end
  if type(v) ~= "table" then fail("retry: expected a table { attempts =, backoff =, ... } or false, got %s", show(v)) end
  for k in pairs(v) do
    if not RETRY_KEYS[k] then fail("retry: unknown option %s (expected %s)", show(k), list_text(RETRY_KEYS)) end
  end
  local d = M.RETRY_DEFAULTS
  local r = { attempts = v.attempts or d.attempts, backoff = v.backoff or d.backoff,
    max_backoff = v.max_backoff or d.max_backoff, unsafe = v.unsafe == true }
  if type(r.attempts) ~= "number" or r.attempts % 1 ~= 0 or r.attempts < 1 or r.attempts > 100 then
    fail("retry.attempts: expected an integer in 1..100 (every try, the first included), got %s", show(v.attempts))
  end
  if type(r.backoff) ~= "number" or r.backoff ~= r.backoff or r.backoff < 0 or r.backoff > 3600 then
    fail("retry.backoff: expected seconds in 0..3600, got %s", show(v.backoff))
  end
  if type(r.max_backoff) ~= "number" or r.max_backoff ~= r.max_backoff or r.max_backoff < 0 or r.max_backoff > 3600 then
    fail("retry.max_backoff: expected seconds in 0..3600, got %s", show(v.max_backoff))
  end
  if v.unsafe ~= nil and type(v.unsafe) ~= "boolean" then fail("retry.unsafe: expected a boolean, got %s", show(v.unsafe)) end
  r.on_status = v.on_status == false and {} or status_set(v.on_status or d.on_status, "retry.on_status")
  local codes = v.on_error
  if codes == false then codes = {} end
  codes = codes or d.on_error
  if type(codes) ~= "table" then fail("retry.on_error: expected a list of codes, got %s", show(codes)) end
  r.on_error = {}
  for k, c in pairs(codes) do
    if type(k) ~= "number" then fail("retry.on_error: expected a list of codes, got the key %s", show(k)) end
    if not RETRY_CODES[c] then
      fail("retry.on_error: %s is not a transport failure code (expected %s)", show(c), list_text(RETRY_CODES))
    end
    r.on_error[c] = true
  end
  return r
end

-- query = { "name", ..., name = schema, ... }: names (any scalar or a list
-- of them) and typed names.
local function query(v)
  if v == nil then return nil end
  if type(v) ~= "table" or is_schema(v) then
    fail("query: expected a list of names and/or a table { name = schema }, got %s", show(v))
  end
  local q = { names = {}, typed = nil }
  local n = #v
  for k, x in pairs(v) do
    if type(k) == "number" and k % 1 == 0 and k >= 1 and k <= n then
      if type(x) ~= "string" or x == "" then fail("query[%d]: expected a parameter name, got %s", k, show(x)) end
      q.names[#q.names + 1] = x
    elseif type(k) == "string" and k ~= "" then
      if not is_schema(x) then fail("query.%s: expected a schema, got %s", k, show(x)) end
      q.typed = q.typed or {}
      q.typed[k] = x
      q.names[#q.names + 1] = k
    else
      fail("query: unexpected key %s", show(k))
    end
  end
  sort(q.names) -- a stable order on the wire
  local seen = {}
  for _, name in ipairs(q.names) do
    if seen[name] then fail("query.%s: given twice", name) end
    seen[name] = true
  end
  return q
end

local function params(v)
  if v == nil then return nil end
  if type(v) ~= "table" or is_schema(v) then fail("params: expected a table { name = schema }, got %s", show(v)) end
  for k, x in pairs(v) do
    if type(k) ~= "string" then fail("params: unexpected key %s", show(k)) end
    if not is_schema(x) then fail("params.%s: expected a schema, got %s", k, show(x)) end
  end
  return v
end

local function build(kind, given)
  if type(given) ~= "table" then fail("options: expected a table, got %s", show(given)) end
  local keys = KEYS[kind]
  for k in pairs(given) do
    if not keys[k] then fail("unknown option %s (expected %s)", show(k), list_text(keys)) end
  end
  local o = {}
  o.headers, o.header_args = headers(given.headers, kind == "route")
  o.timeout = positive(given.timeout, "timeout")
  o.retry = retry(given.retry) -- false stays: no retries, whatever the levels above say
  if given.success ~= nil then o.success = status_set(given.success, "success") end
  o.middlewares = functions(given.middlewares, "middlewares", "functions(request)")
  o.response_hooks = functions(given.response_hooks, "response_hooks", "functions(response, request)")
  if given.name ~= nil and (type(given.name) ~= "string" or given.name == "") then
    fail("name: expected a non-empty string, got %s", show(given.name))
  end
  o.name = given.name
  if kind == "route" then
    o.params = params(given.params)
    o.query = query(given.query)
    if given.body ~= nil and not is_schema(given.body) then
      fail("body: expected a schema (omit it to send the call's body as given), got %s", show(given.body))
    end
    o.body = given.body
    if given.content_type ~= nil and (type(given.content_type) ~= "string" or given.content_type == "") then
      fail("content_type: expected a non-empty string, got %s", show(given.content_type))
    end
    o.content_type = given.content_type
    if given.response ~= nil and not is_schema(given.response) then
      fail("response: expected a schema, got %s", show(given.response))
    end
    o.response = given.response
    if given.raw ~= nil and type(given.raw) ~= "boolean" then fail("raw: expected a boolean, got %s", show(given.raw)) end
    if given.raw and given.response then fail("raw: a raw route returns the response as is: drop response") end
    o.raw = given.raw == true
    if given.description ~= nil and type(given.description) ~= "string" then
      fail("description: expected a string, got %s", show(given.description))
    end
    o.description = given.description
  elseif kind == "build" then
    local b = given.base_url
    if type(b) ~= "string" or not b:find("^https?://[^/]") then
      fail("base_url: expected an http:// or https:// URL, got %s", show(b))
    end
    if b:find("[%?#]") then fail("base_url: %q has a query or fragment", b) end
    o.base_url = b:gsub("/+$", "")
    local t = given.transport
    if t ~= nil and type(t) ~= "function" and not (type(t) == "table" and type(t.request) == "function") then
      fail("transport: expected a function(request) or an object with request(self, request), got %s", show(t))
    end
    o.transport = t
    if given.http ~= nil and type(given.http) ~= "table" then
      fail("http: expected the options of jararaca.core.http_client.new, got %s", show(given.http))
    end
    if t ~= nil and given.http ~= nil then fail("http: give either transport or http, not both") end
    o.http = given.http
    if given.tracing ~= nil and type(given.tracing) ~= "boolean" then
      fail("tracing: expected a boolean, got %s", show(given.tracing))
    end
    o.tracing = given.tracing ~= false
  end
  return o
end

--- Check `given` as options of `kind`; raise error(where .. ": " .. msg,
--- level) when one is wrong (level as for error(), counted from the caller).
function M.check(kind, given, where, level)
  local ok, r = pcall(build, kind, given or {})
  if ok then return r end
  if getmetatable(r) == Invalid then error(where .. ": " .. r.msg, level + 1) end
  error(r, 0)
end

return M
