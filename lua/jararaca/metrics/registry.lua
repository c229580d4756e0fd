-- jararaca.metrics.registry: counters, up-down counters and histograms, and
-- the registry that holds them (one per process: with --workers N every
-- worker has its own, see docs/metrics.md).
--
--   local reg = registry.new()
--   local c = reg:counter("app_jobs_total", "Jobs done.", { "kind" })
--   c:inc { kind = "mail" }            -- or c:add(3, { kind = "mail" })
--   c:with("mail"):inc()               -- positional label values: no table per call
--   local h = reg:histogram("app_job_seconds", "Job time.", { "kind" }, { 0.1, 1, 10 })
--   h:observe(0.25, { kind = "mail" })
--
-- Why the series cache is a tree keyed by label values (in the declared
-- order) and not a string key: a label set seen before is found with one
-- table index per label, without building a string per observation. A new
-- label set is checked (Prometheus' rules, every declared label present,
-- no other) and its exposition text is built once, when it is first seen.
-- Values may be strings or numbers (200 and "200" are the same series).
local M = {}

local type, error, pairs, tostring, tonumber, setmetatable, format =
  type, error, pairs, tostring, tonumber, setmetatable, string.format
local huge = math.huge

local METRIC_NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL_NAME = "^[a-zA-Z_][a-zA-Z0-9_]*$"

--- The default buckets (seconds), those of the Prometheus client libraries.
M.DEFAULT_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

-- Shortest text that reads back as the same number; +Inf, -Inf, NaN as the
-- exposition format spells them.
local function number_text(v)
  if v ~= v then return "NaN" end
  if v == huge then return "+Inf" end
  if v == -huge then return "-Inf" end
  if v == math.floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
  local s = format("%.15g", v)
  if tonumber(s) ~= v then s = format("%.17g", v) end
  return s
end
M.number_text = number_text

-- Label values: backslash, double quote and line feed escaped.
local function escape_value(s)
  return (s:gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end
M.escape_value = escape_value

local function check_name(where, name, level)
  if type(name) ~= "string" or not name:match(METRIC_NAME) then
    error(format("%s: the metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*, got %s", where,
      type(name) == "string" and format("%q", name) or type(name)), level + 1)
  end
end

local function check_labels(where, names, reserved, level)
  if names == nil then return {} end
  if type(names) ~= "table" then
    error(format("%s: labels must be a list of label names, got %s", where, type(names)), level + 1)
  end
  local seen, out = {}, {}
  for i = 1, #names do
    local n = names[i]
    if type(n) ~= "string" or not n:match(LABEL_NAME) or n:sub(1, 2) == "__" then
      error(format("%s: label name %s must match [a-zA-Z_][a-zA-Z0-9_]* and not start with '__'", where,
        type(n) == "string" and format("%q", n) or "#" .. i .. " (" .. type(n) .. ")"), level + 1)
    end
    if n == reserved then error(format("%s: the label name %q is reserved", where, n), level + 1) end
    if seen[n] then error(format("%s: label %q is declared twice", where, n), level + 1) end
    seen[n] = true
    out[i] = n
  end
  for k in pairs(names) do
    if type(k) ~= "number" or k < 1 or k > #names or k % 1 ~= 0 then
      error(format("%s: labels must be a list (found key %s)", where, tostring(k)), level + 1)
    end
  end
  return out
end

local function check_buckets(where, buckets, level)
  if buckets == nil then buckets = M.DEFAULT_BUCKETS end
  if type(buckets) ~= "table" or #buckets == 0 then
    error(format("%s: buckets must be a non-empty list of increasing numbers", where), level + 1)
  end
  local out = {}
  for i = 1, #buckets do
    local b = buckets[i]
    if type(b) ~= "number" or b ~= b or b == huge or b == -huge then
      error(format("%s: bucket #%d must be a finite number, got %s", where, i, tostring(b)), level + 1)
    end
    if i > 1 and b <= out[i - 1] then
      error(format("%s: buckets must be strictly increasing (#%d = %s after %s)", where, i,
        number_text(b), number_text(out[i - 1])), level + 1)
    end
    out[i] = b
  end
  return out
end

-- The exposition text of a label set: '{a="x",b="y"}' ("" without labels),
-- and the prefix of a histogram bucket's: '{a="x",b="y",le="'.
local function label_text(names, values)
  local parts = {}
  for i = 1, #names do parts[i] = names[i] .. '="' .. escape_value(values[i]) .. '"' end
  local inner = table.concat(parts, ",")
  local text = #parts > 0 and "{" .. inner .. "}" or ""
  return text, "{" .. inner .. (#parts > 0 and "," or "") .. 'le="'
end

local Metric = {}
Metric.__index = Metric

local function value_text(metric, v, i, level)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" then return number_text(v) end
  error(format("%s: label %q must be a string or a number, got %s", metric.name, metric.labels[i],
    tv == "nil" and "nothing" or tv), level + 1)
end

-- A new series for values (the labels' values in declared order).
local function new_series(metric, values, level)
  local texts = {}
  for i = 1, #metric.labels do texts[i] = value_text(metric, values[i], i, level + 1) end
  local text, le_prefix = label_text(metric.labels, texts)
  -- 200 and "200": the same series, reached by both keys
  local same = metric.by_text[text]
  if same then return same end
  local s = setmetatable({ metric = metric, text = text, value = 0, values = texts }, metric.series_mt)
  if metric.kind == "histogram" then
    s.le_prefix, s.sum, s.count, s.counts = le_prefix, 0, 0, {}
    for i = 1, #metric.buckets + 1 do s.counts[i] = 0 end
  end
  metric.by_text[text] = s
  local list = metric.list
  list[#list + 1] = s
  return s
end

-- The series of positional values v1..vn (the hot path: one index per label).
local function find(metric, level, ...)
  local n = #metric.labels
  if n == 0 then return metric.single or metric:_single(level + 1) end
  local node = metric.tree
  for i = 1, n - 1 do
    local v = (select(i, ...))
    local nxt = node[v]
    if nxt == nil then
      if v == nil then value_text(metric, v, i, level + 1) end
      nxt = {}
      node[v] = nxt
    end
    node = nxt
  end
  local v = (select(n, ...))
  local s = v ~= nil and node[v]
  if s then return s end
  s = new_series(metric, { ... }, level + 1)
  node[v] = s
  return s
end

-- The series of a labels table { name = value }.
local function find_table(metric, labels, level)
  local names = metric.labels
  local n = #names
  if labels == nil then
    if n == 0 then return metric.single or metric:_single(level + 1) end
    error(format("%s: labels { %s } are required", metric.name, table.concat(names, ", ")), level + 1)
  end
  if type(labels) ~= "table" then
    error(format("%s: labels must be a table, got %s", metric.name, type(labels)), level + 1)
  end
  -- a label that was not declared: counted, not compared (no string work
  -- on a label set seen before); named when there is one
  local count = 0
  for _ in pairs(labels) do count = count + 1 end
  if count ~= n then
    for k in pairs(labels) do
      local known = false
      for j = 1, n do if names[j] == k then known = true end end
      if not known then
        error(format(n == 0 and "%s: has no labels, got %q" or "%s: unknown label %q", metric.name, tostring(k)),
          level + 1)
      end
    end
  end
  local node = metric.tree
  for i = 1, n do
    local v = labels[names[i]]
    if v == nil then
      error(format("%s: label %q is missing", metric.name, names[i]), level + 1)
    end
    local nxt = node[v]
    if nxt == nil then
      if i < n then
        nxt = {}
      else
        local values = {}
        for j = 1, n do values[j] = labels[names[j]] end
        nxt = new_series(metric, values, level + 1)
      end
      node[v] = nxt
    end
    node = nxt
  end
  if n == 0 then return metric.single or metric:_single(level + 1) end
  return node
end

function Metric:_single(level)
  self.single = new_series(self, {}, level + 1)
  return self.single
end

--- The series of these label values, in the declared order (cache it, or
--- call it on the hot path: no table is made for a label set seen before).
function Metric:with(a, b, c, ...)
  -- up to three labels without select() (which keeps LuaJIT from compiling
  -- the caller's loop): a label set seen before costs 1 to 3 table indexes
  local n, s = self.nlabels, nil
  if n == 1 then
    s = self.tree[a]
  elseif n == 2 then
    local t = self.tree[a]
    s = t and t[b]
  elseif n == 3 then
    local t = self.tree[a]
    t = t and t[b]
    s = t and t[c]
  end
  if s then return s end
  s = find(self, 2, a, b, c, ...)
  return s
end

local function check_amount(metric, n, level)
  if type(n) ~= "number" or n ~= n or n == huge or n == -huge then
    error(format("%s: the amount must be a finite number, got %s", metric.name, tostring(n)), level + 1)
  end
  if metric.kind == "counter" and n < 0 then
    error(format("%s: a counter only goes up (add(%s)); use an updown_counter", metric.name, number_text(n)),
      level + 1)
  end
end

-- Series methods (s = metric:with(...)). The workers take the error level
-- relative to their caller; the methods call them without tail calls, so
-- that level is the user's line.
local Series = {}

local function add(s, n, level)
  local m = s.metric
  if m.kind == "histogram" then error(m.name .. ": a histogram is observed, not added to", level + 1) end
  check_amount(m, n, level + 1)
  s.value = s.value + n
end

local function dec(s, level)
  if s.metric.kind ~= "updown" then error(s.metric.name .. ": only an updown_counter goes down", level + 1) end
  s.value = s.value - 1
end

local function observe(s, v, level)
  local m = s.metric
  if m.kind ~= "histogram" then error(m.name .. ": only a histogram is observed", level + 1) end
  if type(v) ~= "number" or v ~= v then
    error(format("%s: observe needs a number, got %s", m.name, tostring(v)), level + 1)
  end
  local b = m.buckets
  local i, nb = 1, #b
  while i <= nb and v > b[i] do i = i + 1 end
  local counts = s.counts
  counts[i] = counts[i] + 1
  s.sum = s.sum + v
  s.count = s.count + 1
end

function Series:add(n) add(self, n, 2) end
function Series:inc() add(self, 1, 2) end
function Series:dec() dec(self, 2) end
function Series:observe(v) observe(self, v, 2) end

--- metric:add(n, labels), :inc(labels), :dec(labels) (updown), :observe(v, labels)
function Metric:add(n, labels) add(find_table(self, labels, 2), n, 2) end
function Metric:inc(labels) add(find_table(self, labels, 2), 1, 2) end
function Metric:dec(labels) dec(find_table(self, labels, 2), 2) end
function Metric:observe(v, labels) observe(find_table(self, labels, 2), v, 2) end

local Registry = {}
Registry.__index = Registry

local KINDS = { counter = "counter", updown = "gauge", histogram = "histogram" }

local function same_list(a, b)
  if (a == nil) ~= (b == nil) then return false end
  if a == nil then return true end
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function same_definition(a, b)
  return a.kind == b.kind and a.help == b.help and same_list(a.labels, b.labels) and same_list(a.buckets, b.buckets)
end

local function register(reg, kind, name, help, labels, buckets, level)
  local where = (kind == "updown" and "updown_counter" or kind) .. "(" .. tostring(name) .. ")"
  check_name(where, name, level + 1)
  if type(help) ~= "string" then
    error(format("%s: help must be a string, got %s", where, type(help)), level + 1)
  end
  local m = setmetatable({
    kind = kind, type = KINDS[kind], name = name, help = help,
    labels = check_labels(where, labels, kind == "histogram" and "le" or nil, level + 1),
    buckets = kind == "histogram" and check_buckets(where, buckets, level + 1) or nil,
    tree = {}, by_text = {}, list = {},
  }, Metric)
  -- The same definition again (an app file loaded twice in one process, as
  -- the test client does) is the metric registered first; another one under
  -- the same name is a mistake.
  local old = reg.by_name[name]
  if old then
    if same_definition(old, m) then return old end
    error(format("%s: a different metric named %q is already registered", where, name), level + 1)
  end
  m.nlabels = #m.labels
  if kind == "histogram" then
    local les = {}
    for i, b in ipairs(m.buckets) do les[i] = number_text(b) end
    les[#les + 1] = "+Inf"
    m.le_texts = les
  end
  m.series_mt = { __index = Series }
  reg.by_name[name] = m
  reg.list[#reg.list + 1] = m
  return m
end

-- (not tail calls: register's errors name the caller's line)
function Registry:counter(name, help, labels)
  local m = register(self, "counter", name, help, labels, nil, 2)
  return m
end
function Registry:updown_counter(name, help, labels)
  local m = register(self, "updown", name, help, labels, nil, 2)
  return m
end
function Registry:histogram(name, help, labels, buckets)
  local m = register(self, "histogram", name, help, labels, buckets, 2)
  return m
end
--- The metric registered under name, or nil.
function Registry:get(name) return self.by_name[name] end

--- Every series, for exporters (OTLP): fn(metric, series) in registration
--- order. metric: kind ("counter" | "updown" | "histogram"), name, help,
--- labels, buckets; series: values (its label values as text, in the
--- declared order), value, or sum, count and counts (per bucket, the last
--- +Inf; not cumulative).
function Registry:collect(fn)
  for _, m in ipairs(self.list) do
    for _, s in ipairs(m.list) do fn(m, s) end
  end
end

function M.new()
  return setmetatable({ by_name = {}, list = {} }, Registry)
end

M.Metric, M.Series, M.observe = Metric, Series, observe
return M
