--- jararaca.bus.message_type: message types, named schemas that carry
-- their topic.
--
--   local TaskCreated = j.Message("TaskCreated", {
--     topic = "task.created",
--     fields = { id = s.integer(), title = s.string() },
--     -- description = "...", additional = "forbid"   (s.object's options)
--   })
--   Worker.on_created = j.MessageHandler(TaskCreated, { max_retries = 5 }, function(self, msg)
--     local task = msg:payload()                  -- validated against TaskCreated
--   end)
--   j.use_publisher():publish(TaskCreated { id = 7, title = "x" })   -- to "task.created"
--
-- A message type IS the named object schema (`s.object("TaskCreated",
-- fields)`, registered like one: usable as a route's body, in OpenAPI and
-- the TypeScript types); j.Message only adds its topic. Calling it,
-- `TaskCreated { ... }`, makes a typed message: the publisher validates it
-- against the type when it is published (nil, msg, "invalid" when it does
-- not fit) and sends it to the type's topic.
-- @module jararaca.bus.message_type
local schema = require "jararaca.schema"
local topic_mod = require "jararaca.bus.topic"

local M = {}

local type, pairs, error, format, setmetatable, getmetatable, tostring =
  type, pairs, error, string.format, setmetatable, getmetatable, tostring

local topics = setmetatable({}, { __mode = "k" })

-- A typed message: { type = TaskCreated, value = { ... } }.
local Typed = { __name = "TypedMessage" }
Typed.__index = Typed
function Typed.__tostring(m) return format("%s message", tostring(m.type.name)) end

local function construct(mt, value)
  if type(value) ~= "table" then
    error(format("%s { ... }: expected a table of the message's fields, got %s", mt.name, type(value)), 3)
  end
  return setmetatable({ type = mt, value = value }, Typed)
end

local KNOWN = { topic = true, fields = true, description = true, title = true, additional = true,
  deprecated = true, example = true, examples = true }

--- j.Message(name, { topic =, fields =, [s.object's options] }): a message type.
function M.Message(name, def)
  if type(name) ~= "string" then error("j.Message(name, def): name must be a string, got " .. type(name), 2) end
  if type(def) ~= "table" then
    error(format("j.Message('%s', def): def must be a table { topic = ..., fields = { ... } }, got %s", name,
      type(def)), 2)
  end
  local opts = {}
  for k, v in pairs(def) do
    if not KNOWN[k] then
      error(format("j.Message('%s'): unknown field %q (known: topic, fields, and s.object's options)", name,
        tostring(k)), 2)
    end
    if k ~= "topic" and k ~= "fields" then opts[k] = v end
  end
  local terr = type(def.topic) ~= "string" and ("expected a string, got " .. type(def.topic))
    or topic_mod.topic_error(def.topic)
  if terr then error(format("j.Message('%s'): topic: %s", name, terr), 2) end
  if def.fields == nil then error(format("j.Message('%s'): fields is missing", name), 2) end
  local sc = schema.object_at(2, name, def.fields, opts)
  topics[sc] = def.topic
  schema.set_constructor(sc, construct)
  return sc
end

--- The topic of a message type, or nil when v is not one.
function M.topic(v)
  return topics[v]
end

--- True when v is a typed message (`TaskCreated { ... }`).
function M.is_typed(v)
  return type(v) == "table" and getmetatable(v) == Typed
end

return M
