-- spec/support/otlp.lua: the OTLP test receiver (spec/support/otlp_receiver.js,
-- Node; decodes with opentelemetry-proto's generated code) as a child of the
-- spec, on a free port.
--
--   local otlp = require "spec.support.otlp"
--   local r = otlp.start()                   -- r.port, r.endpoint ("http://127.0.0.1:<port>")
--   local spans = r:wait_for("traces", function(items) return #items >= 3 and items end, 10)
--   r:items("logs")                          -- every log record received so far
--   r:fault(503, 2)                          -- the next 2 export requests answered 503
--   r:partial("traces", 2, "why")             -- the next traces export answered 200 with a
--                                            -- partial_success rejecting 2, message "why"
--   r:decode("Span", bytes)                  -- one encoded message as the receiver reads it
--   r:stop()                                 -- SIGTERM by PID
local process = require "jararaca.core.process"
local sched = require "jararaca.sched"
local client = require "spec.support.client"
local run = require "spec.support.run"
local server = require "spec.support.server"
local cjson = require "cjson"

local M = {}

local SCRIPT = server.root .. "/spec/support/otlp_receiver.js"

local Receiver = {}
Receiver.__index = Receiver

--- Start the receiver; waits for its "port <n>" line (or its exit).
function M.start()
  local out = os.tmpname()
  local p = assert(process.spawn { "node", SCRIPT, stdout = out, stderr = out })
  local r = setmetatable({ proc = p, out = out }, Receiver)
  local deadline = sched.clock() + 20
  while true do
    local status = p:wait(0.02)
    local text = run.read(out) or ""
    if status then error(("otlp receiver exited during startup (status %s):\n%s"):format(status, text), 2) end
    local port = text:match("port (%d+)\n")
    if port then
      r.port = tonumber(port)
      r.endpoint = "http://127.0.0.1:" .. port
      return r
    end
    if sched.clock() > deadline then
      run.stop(p)
      error("otlp receiver did not print its port:\n" .. text, 2)
    end
  end
end

local function call(self, method, target, body)
  local res, err = client.request(self.port, method, target, {
    body = body, timeout = 5,
    headers = body and { ["content-type"] = "application/octet-stream" } or nil,
  })
  assert(res, err)
  return res
end

--- What the receiver holds for signal: { requests =, attempts =, items = }.
function Receiver:received(signal)
  local res = call(self, "GET", "/received?signal=" .. signal)
  assert(res.status == 200, res.body)
  return cjson.decode(res.body)
end

function Receiver:items(signal) return self:received(signal).items end

--- Poll until pred(items, received) returns a true value (returned); raises
--- after timeout seconds (default 10) with what was received.
function Receiver:wait_for(signal, pred, timeout)
  local deadline = sched.clock() + (timeout or 10)
  while true do
    local got = self:received(signal)
    local v = pred(got.items, got)
    if v then return v end
    if sched.clock() > deadline then
      error(("timed out waiting for %s; received: %s"):format(signal, cjson.encode(got.items)), 2)
    end
    sched.sleep(0.05)
  end
end

function Receiver:fault(status, count)
  local res = call(self, "POST", ("/fault?status=%d&count=%d"):format(status, count), "")
  assert(res.status == 200, res.body)
end

function Receiver:partial(signal, rejected, message)
  local q = ("/partial?signal=%s&rejected=%d&message=%s"):format(signal, rejected,
    (message:gsub("[^%w]", function(c) return ("%%%02X"):format(c:byte()) end)))
  local res = call(self, "POST", q, "")
  assert(res.status == 200, res.body)
end

function Receiver:reset()
  assert(call(self, "POST", "/reset", "").status == 200)
end

--- One encoded message (type: Span | LogRecord | Resource | Metric) decoded:
--- the table, or nil, the receiver's error text.
function Receiver:decode(type_name, bytes)
  local res = call(self, "POST", "/decode/" .. type_name, bytes)
  if res.status ~= 200 then return nil, res.body end
  return cjson.decode(res.body)
end

function Receiver:stop()
  if self.proc then
    run.stop(self.proc, 5)
    self.proc = nil
  end
  os.remove(self.out)
end

return M
