-- jararaca.metrics.builtin: the framework's own metric families beyond
-- HTTP (message bus, scheduler, SQLite, WebSocket), turned on once per
-- process when the app has metrics (docs/metrics.md lists them all).
--
--   local builtin = require "jararaca.metrics.builtin"
--   builtin.enable()            -- idempotent; returns their registry
--   builtin.registries()        -- what a scrape renders, in order
--
-- Why a switch per family module (metrics.bus.on, ...) read at each hook
-- and not instruments handed to the components: a component may start
-- before the scrape's route is built (the database opens at runtime start),
-- and with metrics off a hook costs one table field read.
local M = {}

local reg

--- Turn every built-in family on (once): their registry.
function M.enable()
  if reg then return reg end
  reg = require("jararaca.metrics.registry").new()
  for _, family in ipairs { "bus", "schedule", "db", "ws" } do
    require("jararaca.metrics." .. family).enable(reg)
  end
  return reg
end

--- The registries a scrape of this process shows: the HTTP built-ins (when
--- this process serves HTTP), these, and the app's own (metrics.default).
function M.registries()
  local list = {}
  local http = package.loaded["jararaca.metrics.http"]
  if http and http.loaded() then list[#list + 1] = http.builtin().registry end
  list[#list + 1] = M.enable()
  list[#list + 1] = require("jararaca.metrics").default
  return list
end

return M
