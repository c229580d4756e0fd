--- jararaca.tracing.state: the little tracing state every hot path reads
-- (jararaca.log, http.dispatch, the bus), kept apart from the tracer so
-- that reading it loads nothing and costs one table index when tracing is
-- off (`state.on == false`).
local M = { on = false }

local running = coroutine.running

-- coroutine -> the span active in it (start_span's); weak keys, so a
-- finished coroutine and its entry are collected together.
local active = setmetatable({}, { __mode = "k" })
M.active = active

--- The current span: the one start_span made active in this coroutine,
--- else the transaction's root span (ctx._span), else nil.
function M.current(ctx)
  local co = running()
  local sp = active[co or active] -- (the main chunk: key `active`)
  if sp then return sp end
  if ctx then return rawget(ctx, "_span") end
  return nil
end

return M
