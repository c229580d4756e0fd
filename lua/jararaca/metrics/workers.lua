-- jararaca.metrics.workers: one scrape shows the series of every worker of
-- a `--workers N` master, merged as one process would report them.
--
--   local workers = require "jararaca.metrics.workers"
--   local text = workers.scrape()     -- the exposition text of all workers
--
-- Why over the in-machine mesh (core/mesh.h, the WebSocket backplane's
-- transport) and not through the master: the master runs no Lua and no
-- loop of ours; any worker can answer for all. The scraped worker sends a
-- query (its index and a request id) to its peers, each answers with a
-- snapshot of its registries, and the scrape waits for N - 1 answers or
-- M.TIMEOUT seconds, whichever comes first. Counters, histograms and
-- up-down counters are summed series by series (same name, same labels);
-- peers that did not answer in time are counted in
-- jararaca_metrics_workers_missing (a worker that is being restarted, or
-- whose loop is stuck). A restarted worker starts from zero: the sum goes
-- down once, which Prometheus' rate() takes for a counter reset.
--
-- The mesh is broadcast only: an answer reaches every peer; its first line
-- names the worker it is for, so the others drop it without decoding it.
local registry = require "jararaca.metrics.registry"
local text = require "jararaca.metrics.text"
local builtin = require "jararaca.metrics.builtin"
local json = require "jararaca.json"
local csched = require "jararaca.core.sched"
local log = require "jararaca.log"

local M = {}

--- Seconds a scrape waits for the other workers' answers.
M.TIMEOUT = 1

local format, tonumber, huge = string.format, tonumber, math.huge
local number_text = registry.number_text

local mesh, self_index, nworkers -- open once per worker process with N > 1
local next_id, pending = 0, {}

-- number_text's inverse (JSON has no +Inf or NaN).
local function number(s)
  if s == "+Inf" then return huge elseif s == "-Inf" then return -huge elseif s == "NaN" then return 0 / 0 end
  return tonumber(s)
end

--- The series of registries (default: this process's) as plain tables,
--- collectors run first: { { name, help, kind, type, les | false,
--- { { text, value } | { text, le_prefix, counts, sum, count } } } }
--- (numbers as exposition text: JSON has no +Inf).
function M.snapshot(regs)
  local out = {}
  for _, reg in ipairs(regs or builtin.registries()) do
    reg:run_collectors()
    for _, m in ipairs(reg.list) do
      local list = {}
      for i, s in ipairs(m.list) do
        if m.kind == "histogram" then
          local counts = {}
          for j, c in ipairs(s.counts) do counts[j] = number_text(c) end
          list[i] = { s.text, s.le_prefix, counts, number_text(s.sum), number_text(s.count) }
        else
          list[i] = { s.text, number_text(s.value) }
        end
      end
      out[#out + 1] = { m.name, m.help, m.kind, m.type, m.le_texts or false, list }
    end
  end
  return out
end

--- Add snapshot snap into merged ({ list = {}, by_name = {} }: then a
--- registry text.render writes): series of one name and label set summed.
function M.merge(merged, snap)
  for _, e in ipairs(snap) do
    local name, kind = e[1], e[3]
    local m = merged.by_name[name]
    if not m then
      m = { name = name, help = e[2], kind = kind, type = e[4], le_texts = e[5] or nil, list = {}, by_text = {} }
      merged.by_name[name] = m
      merged.list[#merged.list + 1] = m
    end
    if m.kind == kind then
      for _, x in ipairs(e[6]) do
        local s = m.by_text[x[1]]
        if kind == "histogram" then
          if not s then
            s = { text = x[1], le_prefix = x[2], counts = {}, sum = 0, count = 0 }
            for j = 1, #x[3] do s.counts[j] = 0 end
            m.by_text[x[1]] = s
            m.list[#m.list + 1] = s
          end
          if #s.counts == #x[3] then
            for j = 1, #x[3] do s.counts[j] = s.counts[j] + number(x[3][j]) end
            s.sum, s.count = s.sum + number(x[4]), s.count + number(x[5])
          end
        else
          if not s then
            s = { text = x[1], value = 0 }
            m.by_text[x[1]] = s
            m.list[#m.list + 1] = s
          end
          s.value = s.value + number(x[2])
        end
      end
    end
  end
end

local function on_message(data)
  local kind = data:sub(1, 1)
  if kind == "q" then -- "q<from> <id>": answer with our snapshot
    local from, id = data:match("^q(%d+) (%d+)$")
    if not from then return end
    local body = assert(json.encode(M.snapshot()))
    mesh:publish(format("a%s %s %d\n%s", from, id, self_index, body))
  elseif kind == "a" then -- "a<to> <id> <from>\n<snapshot>"
    local nl = data:find("\n", 1, true)
    local to, id, from = data:sub(1, nl and nl - 1 or 0):match("^a(%d+) (%d+) (%d+)$")
    if not to or tonumber(to) ~= self_index then return end
    local p = pending[tonumber(id)]
    if not p or p.from[from] then return end
    local snap = json.decode(data:sub(nl + 1))
    if type(snap) ~= "table" then return end
    p.from[from] = true
    p.answers[#p.answers + 1] = snap
    if #p.answers >= nworkers - 1 and p.waiter then csched.wake(p.waiter[1], p.waiter[2]) end
  end
end

--- Join the workers' mesh (in a worker of a master with N > 1; a no-op
--- otherwise): true | nil, message, code.
function M.start()
  if mesh then return true end
  local core = require "jararaca.core.mesh"
  local idx, n = core.worker()
  if n < 2 then return true end
  local m, err, code = core.open("metrics", on_message)
  if not m then return nil, "metrics: cannot join the other workers: " .. tostring(err), code end
  mesh, self_index, nworkers = m, idx, n
  return true
end

--- Leave the mesh (at stop).
function M.stop()
  if mesh then mesh:close() end
  mesh = nil
end

-- The other workers' snapshots (within M.TIMEOUT) and how many did not answer.
local function gather()
  next_id = next_id + 1
  local id = next_id
  local p = { answers = {}, from = {} }
  pending[id] = p
  local ok, err = mesh:publish(format("q%d %d", self_index, id))
  if not ok then
    log.warn("metrics: asking the other workers failed: ", tostring(err))
  else
    local deadline = csched.clock() + M.TIMEOUT
    -- (protected: a scrape cancelled meanwhile leaves no entry behind)
    local wok, werr = pcall(function()
      while #p.answers < nworkers - 1 do
        local left = deadline - csched.clock()
        if left <= 0 then break end
        p.waiter = { csched.current() }
        csched.wait(left)
        p.waiter = nil
      end
    end)
    if not wok then
      pending[id] = nil
      error(werr, 0)
    end
  end
  pending[id] = nil
  return p.answers, nworkers - 1 - #p.answers
end

--- The exposition text a scrape answers: this process's series, merged
--- with the other workers' when there are some.
function M.scrape()
  if not mesh then return text.render(unpack(builtin.registries())) end
  local merged = { list = {}, by_name = {} }
  M.merge(merged, M.snapshot())
  local answers, missing = gather()
  for _, snap in ipairs(answers) do M.merge(merged, snap) end
  local extra = registry.new()
  extra:updown_counter("jararaca_metrics_workers_missing",
    "Workers that did not answer this scrape within the time allowed (their series are not in it).")
    :with().value = missing
  return text.render(merged, extra)
end

return M
