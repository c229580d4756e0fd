-- luacheck: std +busted
-- Not a spec of the suite (no _spec suffix): spec/integration/bus_embedded_spec.lua
-- and bench/bus/embedded.lua run it as `jararaca test <this file>`, one
-- consumer process of an embedded broker's queue:
--
--   BUS_DB     the SQLite file          BUS_QUEUE  the queue
--   BUS_NAME   this consumer's name     BUS_BATCH  fetch size (default 50)
--   BUS_LEASE  lease seconds (default 30)
--   BUS_RECORD "1": record each handled message in the table handled(id,
--              consumer, deliveries) in a transaction of its own, then ack
--              (default); "0": just ack
--   BUS_STALL_AFTER n: after n messages, a handler records its message and
--              then hangs before the ack (first adding the row control(key =
--              'stalled <name>')): the spec SIGKILLs the process there
--
-- It says it is ready (a row in consumers), then handles messages, each in
-- a task of its own (acks from concurrent tasks commit in groups), until
-- the row control(key = 'published') exists and the queue is empty.
local embedded = require "jararaca.bus.embedded"
local sched = require "jararaca.sched"

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

describe("bus consumer", function()
  it("drains its queue", function()
    local path = assert(env("BUS_DB"))
    local queue = env("BUS_QUEUE", "q")
    local name = env("BUS_NAME", "consumer")
    local batch = tonumber(env("BUS_BATCH", "50"))
    local lease = tonumber(env("BUS_LEASE", "30"))
    local record = env("BUS_RECORD", "1") == "1"
    local stall_after = tonumber(env("BUS_STALL_AFTER", ""))
    local handled = 0
    local b = assert(embedded.open(path, { owner = name, db = { busy_timeout = 30 } }))
    local d = b.db

    -- A write transaction that may meet another process's lock for longer
    -- than busy_timeout under load: try again (the broker's calls answer
    -- "busy"; nothing was written).
    local function write(sql, params)
      while true do
        local tx = d:begin("write")
        local r, err, code = tx:execute(sql, params)
        if r then r, err, code = tx:commit() else tx:rollback() end
        if r then return end
        assert(code == "busy", tostring(err))
      end
    end
    local function count(sql, params)
      local tx = d:begin("read")
      local row = assert(tx:first(sql, params))
      tx:commit()
      return row.n
    end

    write("INSERT INTO consumers (name, pid) VALUES (?, ?)", { name, require("jararaca.core.sys").pid() })

    local function handle(delivery)
      if record then
        write("INSERT INTO handled (id, consumer, deliveries) VALUES (?, ?, ?)", { delivery.id, name, delivery.deliveries })
      end
      handled = handled + 1
      if stall_after and handled > stall_after then
        write("INSERT OR IGNORE INTO control (key) VALUES (?)", { "stalled " .. name })
        sched.sleep(3600) -- mid-handler: handled, not acked
      end
      local ok, err, code = b:ack(delivery)
      assert(ok or code == "lost", tostring(err))
    end

    while true do
      local ds, err, code = b:fetch(queue, batch, lease)
      assert(ds or code == "busy", tostring(err))
      if ds and #ds > 0 then
        local tasks = {}
        for i, delivery in ipairs(ds) do tasks[i] = sched.spawn(handle, delivery) end
        for _, t in ipairs(tasks) do assert(t:wait()) end
      elseif ds then
        if count("SELECT count(*) AS n FROM control WHERE key = 'published'") > 0
          and count("SELECT count(*) AS n FROM jr_bus_messages WHERE queue = ?", { queue }) == 0 then
          break
        end
        local ok, werr, wcode = b:wait(queue, 1)
        assert(ok or wcode == "timeout", tostring(werr))
      end
    end
    b:close()
  end)
end)
