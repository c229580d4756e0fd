--- jararaca.bus.message: what a message handler gets.
--
--   msg:payload()        the payload: JSON decoded (and validated against the
--                        handler's `payload` schema), or the string as sent
--   msg.headers          the message's headers (a table; x-retry-count: retries so far)
--   msg.id, msg.topic    its id and topic
--   msg.attempt          1 the first time, 2 on the first retry, ...
--   msg:ack()            handled (also what returning normally means)
--   msg:nack()           give it back now, not counted as a retry
--   msg:reject([reason]) dead-letter it now
--   msg:retry()          retry with the handler's backoff (counts as a retry)
--   msg:retry_later(s)   retry after s seconds (counts as a retry)
--
-- A disposition is applied when the handler's transaction is over (after
-- its commit); calling a second one raises. `new` decodes and validates
-- the payload before the handler runs: a payload that cannot be decoded or
-- is invalid makes nil, reason (the worker dead-letters it at once).
-- @module jararaca.bus.message
local json = require "jararaca.json"
local schema = require "jararaca.schema"

local M = {}

local type, error, format, tostring, setmetatable, huge =
  type, error, string.format, tostring, setmetatable, math.huge

local Message = {}
Message.__index = Message
Message.__name = "Message"
M.Message = Message

function Message.__tostring(m)
  return format("Message(%s %s, attempt %d)", tostring(m.topic), tostring(m.id), m.attempt)
end

--- The message of a delivery for handler h (its `payload` schema): msg |
--- nil, reason (an undecodable or invalid payload). The message takes the
--- delivery's headers table (broker:fetch decodes one per delivery, used by
--- nothing else): no copy per message.
function M.new(d, h)
  local headers = d.headers
  headers["x-retry-count"] = d.attempt
  local value = d.body
  if headers["content-type"] == "application/json" then
    local v, err = json.decode(d.body)
    if v == nil and err ~= nil then return nil, "the payload is not valid JSON: " .. tostring(err) end
    value = v
  end
  if h.payload then
    local v, err = schema.validate(h.payload, value)
    if v == nil and err ~= nil then return nil, "the payload is invalid: " .. tostring(err) end
    value = v
  end
  return setmetatable({
    id = d.id, topic = d.topic, headers = headers, attempt = d.attempt + 1, _value = value, _disposition = nil,
  }, Message)
end

function Message:payload()
  return self._value
end

local function dispose(self, kind, arg)
  local done = self._disposition
  if done then
    error(format("msg:%s(): message %s was already given the disposition %s()", kind, tostring(self.id), done.kind), 3)
  end
  self._disposition = { kind = kind, arg = arg }
  return true
end

function Message:ack() return dispose(self, "ack") end
function Message:nack() return dispose(self, "nack") end
function Message:retry() return dispose(self, "retry") end

function Message:reject(reason)
  if reason ~= nil and type(reason) ~= "string" then
    error("msg:reject([reason]): reason must be a string, got " .. type(reason), 2)
  end
  return dispose(self, "reject", reason or "rejected by the handler")
end

function Message:retry_later(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 or seconds == huge then
    error("msg:retry_later(seconds): seconds must be a number >= 0, got " .. tostring(seconds), 2)
  end
  return dispose(self, "retry_later", seconds)
end

--- The disposition the handler gave: { kind, arg } or nil.
function M.disposition(msg)
  return msg._disposition
end

return M
