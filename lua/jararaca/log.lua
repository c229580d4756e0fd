-- jararaca.log: leveled logging with the request/message id of the current
-- transaction on every line (and, tracing on, its trace and span ids).
--   log.info("created task ", id)      -- arguments are tostring'ed and joined
--   log.set{ level = "debug", format = "json" }
local sys = require "jararaca.core.sys"
local context = require "jararaca.context"
local tracing = require "jararaca.tracing.state"

local M = {}
local sys_log, level_of = sys.log, sys.log_level
local tostring, select, concat, type, error = tostring, select, table.concat, type, error
local sink -- fn(level, msg, request_id, trace_id, span_id, sampled): every line written (jararaca.otlp)

local function emit(level, ...)
  if level < level_of() then return end
  local n = select("#", ...)
  local msg
  if n == 1 then
    msg = tostring((...))
  else
    local parts = { ... }
    for i = 1, n do parts[i] = tostring(parts[i]) end
    msg = concat(parts, "", 1, n)
  end
  local ctx = context.current()
  local rid = ctx and ctx.request_id or nil
  if tracing.on then
    -- inside a traced transaction: the current span's ids on the line
    local tid, sid, sampled = tracing.ids(ctx)
    if tid then
      if sink then sink(level, msg, rid, tid, sid, sampled) end
      return sys_log(level, msg, rid, tid, sid)
    end
  end
  if sink then sink(level, msg, rid) end
  sys_log(level, msg, rid)
end

--- Hand every line written to fn(level (0 debug .. 3 error), msg,
--- request_id, trace_id, span_id, sampled) as well (the ids of the span it
--- was written in, or nil; nil fn: none). jararaca.otlp's hook.
function M.set_sink(fn) sink = fn end

function M.debug(...) emit(0, ...) end
function M.info(...) emit(1, ...) end
function M.warn(...) emit(2, ...) end
function M.error(...) emit(3, ...) end

--- Configure: { level = "debug"|"info"|"warn"|"error"|"off", format = "text"|"json" }.
-- Returns true | nil, message, "invalid" (an unknown level or format:
-- nothing is changed). Raises when opts is not a table.
function M.set(opts)
  if type(opts) ~= "table" then error("log.set(opts): opts must be a table { level =, format = }", 2) end
  local level, fmt = opts.level, opts.format
  if level ~= nil and type(level) ~= "string" then error("log.set: level must be a string", 2) end
  if fmt ~= nil and type(fmt) ~= "string" then error("log.set: format must be a string", 2) end
  return sys.set_log(level, fmt)
end

return M
