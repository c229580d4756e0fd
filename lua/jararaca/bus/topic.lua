--- jararaca.bus.topic: AMQP topic routing keys and binding patterns.
--
-- A topic is words separated by dots ("task.created.eu"). A binding
-- pattern is the same, where the word `*` stands for exactly one word and
-- `#` for zero or more words (RabbitMQ's topic exchange; `*` and `#` are
-- wildcards only as whole words: "ta*" is a literal word).
--
--   topic.matches(pattern, topic)   -> true | false
--   topic.pattern_error(p)          -> nil | why p is not a binding pattern
--   topic.topic_error(t)            -> nil | why t is not a topic (empty, a wildcard word, ...)
-- @module jararaca.bus.topic
local type, format = type, string.format

local M = {}

-- Longest topic or pattern, as AMQP's routing keys (a short string of 255 bytes).
M.MAX_LENGTH = 255

local function split(s)
  local words, n = {}, 0
  for w in (s .. "."):gmatch("([^.]*)%.") do
    n = n + 1
    words[n] = w
  end
  return words, n
end

-- pattern text -> its words (patterns are few: one per binding; the cache
-- starts over past 1,000 of them)
local compiled, ncompiled = {}, 0

--- Does topic match pattern? Dynamic programming over the words: reach[j]
--- is true when the pattern words seen so far can consume exactly the first
--- j topic words; `#` may consume any number of them.
function M.matches(pattern, topic)
  local p = compiled[pattern]
  if p == nil then
    local words, n = split(pattern)
    p = { words = words, n = n }
    if ncompiled >= 1000 then compiled, ncompiled = {}, 0 end
    compiled[pattern] = p
    ncompiled = ncompiled + 1
  end
  local t, tn = split(topic)
  local reach = { [0] = true }
  for j = 1, tn do reach[j] = false end
  for i = 1, p.n do
    local w = p.words[i]
    if w == "#" then
      local any = false
      for j = 0, tn do -- # consumes words: reach[j] if any reach[k], k <= j
        any = any or reach[j]
        reach[j] = any
      end
    else
      for j = tn, 1, -1 do
        reach[j] = reach[j - 1] and (w == "*" or w == t[j])
      end
      reach[0] = false
    end
  end
  return reach[tn] == true
end

local function text_error(s, what)
  if type(s) ~= "string" then return format("%s must be a string, got %s", what, type(s)) end
  if s == "" then return format("%s must not be empty", what) end
  if #s > M.MAX_LENGTH then return format("%s is %d bytes long, at most %d are allowed", what, #s, M.MAX_LENGTH) end
  return nil
end

--- Why p is not a binding pattern, or nil when it is one.
function M.pattern_error(p)
  return text_error(p, "the pattern")
end

--- Why t is not a topic a message can carry, or nil: it must not be empty
--- nor have a `*` or `#` word (those match, they are not matched).
function M.topic_error(t)
  local err = text_error(t, "the topic")
  if err then return err end
  for w in (t .. "."):gmatch("([^.]*)%.") do
    if w == "*" or w == "#" then
      return format("the topic %q has a wildcard word (%s): wildcards belong in binding patterns", t, w)
    end
  end
  return nil
end

return M
