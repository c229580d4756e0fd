--- jararaca.tracing.memory: an exporter that keeps finished spans in a
-- list (for tests and debugging).
--   local mem = require("jararaca.tracing.memory").new()
--   Microservice{ tracing = { exporter = mem.export } }  -- then mem.spans
local M = {}

function M.new()
  local self = { spans = {}, batches = 0 }
  function self.export(batch)
    self.batches = self.batches + 1
    local spans = self.spans
    for i = 1, #batch do spans[#spans + 1] = batch[i] end
    return true
  end
  --- The finished span named name (the first one), or nil.
  function self.find(name)
    for _, s in ipairs(self.spans) do if s.name == name then return s end end
    return nil
  end
  function self.clear() self.spans = {}; self.batches = 0 end
  return self
end

return M
