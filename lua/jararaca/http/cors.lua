-- jararaca.http.cors: j.cors{...}, an app-wide middleware with the
-- semantics of Starlette's CORSMiddleware (what FastAPI users know).
--
--     return j.Microservice {
--       controllers = { ... },
--       middlewares = {
--         j.cors {
--           allow_origins = { "https://app.example.com" },  -- or { "*" }
--           allow_origin_regex = "https://[%w-]+%.example%.com", -- a Lua pattern, whole origin
--           allow_methods = { "GET", "POST" },   -- default { "GET" }; { "*" } = all
--           allow_headers = { "Authorization" }, -- default {}; { "*" } = echo what is asked
--           allow_credentials = true,            -- default false
--           expose_headers = { "X-Total" },      -- default {}
--           max_age = 600,                       -- preflight cache, seconds (default 600)
--         },
--       },
--     }
--
-- A request without Origin passes untouched. A preflight (OPTIONS with
-- Origin and Access-Control-Request-Method) is answered here, before
-- routing: 200 "OK" with the allow headers, or 400 "Disallowed CORS origin,
-- method, headers" naming what failed. Any other request with Origin runs
-- and its answer (whatever it is: 404, 405, 422, 500, an HTTPError...) gets
-- Access-Control-Allow-Origin (`*`, or the origin echoed with
-- `Vary: Origin` when origins are listed, or when credentials are allowed
-- and the request has cookies), Access-Control-Allow-Credentials and
-- Access-Control-Expose-Headers as configured.
local M = {}

local type, ipairs, pairs, tostring, error, concat, sort, format, lower, upper =
  type, ipairs, pairs, tostring, error, table.concat, table.sort, string.format,
  string.lower, string.upper

local ALL_METHODS = { "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT" }
local SAFELISTED_HEADERS = { "Accept", "Accept-Language", "Content-Language", "Content-Type" }
local OPTIONS = {
  allow_origins = true, allow_methods = true, allow_headers = true, allow_credentials = true,
  expose_headers = true, max_age = true, allow_origin_regex = true,
}

local function string_list(opts, name, default)
  local v = opts[name]
  if v == nil then return default end
  if type(v) ~= "table" then
    error(format("cors: %s must be a list of strings, got a %s", name, type(v)), 3)
  end
  local out = {}
  for i, s in ipairs(v) do
    if type(s) ~= "string" or s == "" or s:find("[\r\n%z]") then
      error(format("cors: %s[%d] must be a non-empty string without CR/LF, got %s", name, i,
        type(s) == "string" and format("%q", s) or ("a " .. type(s))), 3)
    end
    out[i] = s
  end
  return out
end

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

-- name -> value of a header in t, case-insensitively (key, value)
local function find_header(t, name)
  local want = lower(name)
  for k, v in pairs(t) do
    if type(k) == "string" and lower(k) == want then return k, v end
  end
  return nil
end

local function set_header(t, name, value)
  local k = find_header(t, name)
  t[k or name] = value
end

-- Add token to the Vary header of t (kept once).
local function add_vary(t, token)
  local k, v = find_header(t, "Vary")
  if type(v) == "table" then v = concat(v, ", ") end -- a list of values: one line
  if type(v) == "string" and v ~= "" then
    for part in v:gmatch("[^,%s]+") do
      if lower(part) == lower(token) or part == "*" then return end
    end
    t[k] = v .. ", " .. token
  else
    t[k or "Vary"] = token
  end
end

-- Why p is not a valid Lua pattern, or nil. Lua parses a pattern while
-- matching, so a trial match cannot tell; check the syntax here instead:
-- escapes, sets, %b and %f, and captures (balanced; a back-reference %1..%9
-- names a capture already closed).
local function pattern_error(p)
  local i, n = 1, #p
  local open, closed, count = {}, {}, 0 -- open: stack of capture numbers; closed[k]: capture k done
  while i <= n do
    local c = p:sub(i, i)
    if c == "%" then
      local d = p:sub(i + 1, i + 1)
      if d == "" then return "ends with '%'" end
      if d == "b" then
        if i + 3 > n then return "'%b' needs two characters" end
        i = i + 4
      elseif d == "f" then
        if p:sub(i + 2, i + 2) ~= "[" then return "'%f' must be followed by a set [...]" end
        i = i + 2
      else
        if d:find("%d") then
          local k = tonumber(d)
          if k == 0 or not closed[k] then
            return ("back-reference '%%%s' names no closed capture"):format(d)
          end
        end
        i = i + 2
      end
    elseif c == "[" then
      local j = i + 1
      if p:sub(j, j) == "^" then j = j + 1 end
      if p:sub(j, j) == "]" then j = j + 1 end -- a leading ] is a literal
      while true do
        if j > n then return "missing ']'" end
        local d = p:sub(j, j)
        if d == "%" then
          if j == n then return "ends with '%'" end
          j = j + 2
        elseif d == "]" then
          break
        else
          j = j + 1
        end
      end
      i = j + 1
    elseif c == "(" then
      if count >= 32 then return "too many captures (Lua allows 32)" end
      count = count + 1
      open[#open + 1] = count
      i = i + 1
    elseif c == ")" then
      if #open == 0 then return "')' closes no capture" end
      closed[open[#open]] = true
      open[#open] = nil
      i = i + 1
    else
      i = i + 1
    end
  end
  if #open > 0 then return "unfinished capture: '(' without ')'" end
  return nil
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

--- The CORS middleware for opts (see the module comment). Bad options raise
--- error(msg, 2) naming the option.
function M.cors(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("cors{...}: expects a table of options, got a " .. type(opts), 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then error(format("cors: unknown option %q", tostring(k)), 2) end
  end
  local allow_origins = string_list(opts, "allow_origins", {})
  local allow_methods = string_list(opts, "allow_methods", { "GET" })
  local allow_headers = string_list(opts, "allow_headers", {})
  local expose_headers = string_list(opts, "expose_headers", {})
  local allow_credentials = opts.allow_credentials
  if allow_credentials ~= nil and type(allow_credentials) ~= "boolean" then
    error("cors: allow_credentials must be a boolean, got a " .. type(allow_credentials), 2)
  end
  allow_credentials = allow_credentials == true
  local max_age = opts.max_age
  if max_age == nil then max_age = 600 end
  if type(max_age) ~= "number" or max_age < 0 or max_age % 1 ~= 0 then
    error("cors: max_age must be a non-negative integer (seconds), got " .. tostring(max_age), 2)
  end
  local regex = opts.allow_origin_regex
  if regex ~= nil then
    if type(regex) ~= "string" or regex == "" then
      error("cors: allow_origin_regex must be a Lua pattern (a string)", 2)
    end
    -- matched against the whole origin, like Python's re.fullmatch
    if regex:sub(1, 1) ~= "^" then regex = "^" .. regex end
    if regex:sub(-1) ~= "$" or regex:sub(-2) == "%$" then regex = regex .. "$" end
    local why = pattern_error(regex)
    if why then error("cors: allow_origin_regex is not a valid Lua pattern: " .. why, 2) end
  end

  for i, m in ipairs(allow_methods) do allow_methods[i] = upper(m) end
  if contains(allow_methods, "*") then allow_methods = ALL_METHODS end
  local allow_all_origins = contains(allow_origins, "*")
  local allow_all_headers = contains(allow_headers, "*")
  local explicit_origin = not allow_all_origins or allow_credentials

  local simple = {}
  if allow_all_origins then simple["Access-Control-Allow-Origin"] = "*" end
  if allow_credentials then simple["Access-Control-Allow-Credentials"] = "true" end
  if #expose_headers > 0 then simple["Access-Control-Expose-Headers"] = concat(expose_headers, ", ") end

  local preflight = {}
  if explicit_origin then preflight["Vary"] = "Origin" else preflight["Access-Control-Allow-Origin"] = "*" end
  preflight["Access-Control-Allow-Methods"] = concat(allow_methods, ", ")
  preflight["Access-Control-Max-Age"] = tostring(max_age)
  -- the safelisted headers are always allowed (Starlette does the same)
  local headers_set, merged = {}, {}
  for _, h in ipairs(SAFELISTED_HEADERS) do headers_set[h] = true end
  for _, h in ipairs(allow_headers) do headers_set[h] = true end
  for h in pairs(headers_set) do merged[#merged + 1] = h end
  sort(merged)
  if not allow_all_headers then preflight["Access-Control-Allow-Headers"] = concat(merged, ", ") end
  if allow_credentials then preflight["Access-Control-Allow-Credentials"] = "true" end
  local allowed_header = {}
  for _, h in ipairs(merged) do allowed_header[lower(h)] = true end
  local method_allowed = {}
  for _, m in ipairs(allow_methods) do method_allowed[m] = true end

  local function origin_allowed(origin)
    if allow_all_origins then return true end
    if regex and origin:find(regex) then return true end
    return contains(allow_origins, origin)
  end

  local function preflight_answer(req, origin)
    local headers = copy(preflight)
    local failures = {}
    if origin_allowed(origin) then
      if explicit_origin then headers["Access-Control-Allow-Origin"] = origin end
    else
      failures[#failures + 1] = "origin"
    end
    if not method_allowed[req:header("access-control-request-method")] then
      failures[#failures + 1] = "method"
    end
    local requested = req:header("access-control-request-headers")
    if allow_all_headers and requested ~= nil then
      headers["Access-Control-Allow-Headers"] = requested
    elseif requested ~= nil then
      for h in requested:gmatch("[^,]+") do
        local name = lower(h:match("^%s*(.-)%s*$"))
        if name ~= "" and not allowed_header[name] then
          failures[#failures + 1] = "headers"
          break
        end
      end
    end
    if #failures > 0 then
      return "Disallowed CORS " .. concat(failures, ", "), 400, headers
    end
    return "OK", 200, headers
  end

  return function(req, next)
    local origin = req:header("origin")
    if origin == nil then return next() end
    if req.method == "OPTIONS" and req:header("access-control-request-method") ~= nil then
      return preflight_answer(req, origin)
    end
    local res = next()
    local h = res.headers
    for k, v in pairs(simple) do set_header(h, k, v) end
    -- cookies need the origin itself, never "*"
    if allow_all_origins and req:header("cookie") ~= nil then
      set_header(h, "Access-Control-Allow-Origin", origin)
      add_vary(h, "Origin")
    elseif not allow_all_origins and origin_allowed(origin) then
      set_header(h, "Access-Control-Allow-Origin", origin)
      add_vary(h, "Origin")
    end
    return res
  end
end

return M
