-- jararaca.metrics.ws: WebSocket's built-in metrics, read at scrape time
-- from the counters the C core keeps (core/ws.c, core/rooms.c): nothing is
-- counted in Lua per connection or message.
--
--   jararaca_ws_connections                        gauge (open now)
--   jararaca_ws_connections_total                  counter (accepted)
--   jararaca_ws_rooms                              gauge (rooms with members)
--   jararaca_ws_messages_received_total            counter (data messages from clients)
--   jararaca_ws_messages_sent_total                counter (data messages queued to clients)
--   jararaca_ws_slow_readers_closed_total          counter (closed 1008: send queue full)
--
-- Registered at the first scrape of a process that serves WebSockets (an
-- app without a WebSocket endpoint does not show them).
local M = {}

local FAMILIES = {
  { "connections", "updown_counter", "jararaca_ws_connections", "WebSocket connections open now." },
  { "opened", "counter", "jararaca_ws_connections_total", "WebSocket connections accepted." },
  { "rooms", "updown_counter", "jararaca_ws_rooms", "WebSocket rooms that have members." },
  { "received", "counter", "jararaca_ws_messages_received_total", "WebSocket data messages received from clients." },
  { "sent", "counter", "jararaca_ws_messages_sent_total",
    "WebSocket data messages queued to clients (one per recipient)." },
  { "slow_closed", "counter", "jararaca_ws_slow_readers_closed_total",
    "WebSocket connections closed (1008) because the client read too slowly and its send queue was full." },
}

function M.enable(reg)
  local series
  reg:on_collect(function()
    if not package.loaded["jararaca.ws.socket"] then return end
    if not series then
      series = {}
      for i, f in ipairs(FAMILIES) do series[i] = reg[f[2]](reg, f[3], f[4]):with() end
    end
    local st = require("jararaca.core.ws").stats()
    for i, f in ipairs(FAMILIES) do series[i].value = st[f[1]] or 0 end
  end)
end

return M
