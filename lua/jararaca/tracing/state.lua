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

-- An HTTP request whose root span the C server keeps (jararaca.tracing's
-- start_http) has, as ctx._span, its route's info with `_virtual` set; the
-- first read makes the Lua span (M.materialize, set by jararaca.tracing).
M.materialize = nil

--- The current span: the one start_span made active in this coroutine,
--- else the transaction's root span (ctx._span), else nil.
function M.current(ctx)
  local co = running()
  local sp = active[co or active] -- (the main chunk: key `active`)
  if sp then return sp end
  if ctx then
    sp = rawget(ctx, "_span")
    if sp and rawget(sp, "_virtual") then return M.materialize(ctx, sp) end
    return sp
  end
  return nil
end

--- The ids a log line carries: trace_id, span_id (hex), sampled of the
--- current span, or nothing outside a traced transaction. A request's root
--- span the C server keeps stays there (h:trace_ids: no span made for a
--- log line).
function M.ids(ctx)
  local co = running()
  local sp = active[co or active]
  if not sp and ctx then
    sp = rawget(ctx, "_span")
    if sp and rawget(sp, "_virtual") then
      local req = rawget(ctx, "request")
      local h = req and rawget(req, "_h")
      if h then
        local ok, t, s, sampled = pcall(h.trace_ids, h)
        if ok and t then return t, s, sampled end
      end
      sp = M.materialize(ctx, sp)
    end
  end
  if sp then return sp.trace_id, sp.span_id, sp.sampled == true end
end

return M
