-- jararaca.http.middleware: the one shape of a middleware, for the app, a
-- controller and a route.
--
--     local function timing(req, next)
--       local t0 = j.now()
--       local res = next()          -- a Response: status, body, content_type, headers
--       res.headers["X-Time-Ms"] = ("%.1f"):format((j.now() - t0) * 1000)
--       return res                  -- or any handler-style answer: body [, status [, headers]]
--     end
--
-- A middleware is `function(req, next)` or a table with `around(self, req,
-- next)`. It may answer without calling next() (short-circuit). The
-- Response next() returns has its own headers table: change it freely.
--
-- compose(mws, core, catch) builds the function that runs them around
-- core(req) -> status, body, content_type, headers. Two placements share it:
--   * route and controller middlewares (jararaca.http.typed) run inside the
--     transaction: an error raised beneath next() propagates through it, so
--     the interceptors' exit sees it;
--   * app-wide middlewares (jararaca.http.dispatch) run before routing and
--     outside the transaction: with catch = { handler =, answer = }, an error
--     raised beneath next() is turned into its answer there (422, 500,
--     HTTPError, ...), so every middleware gets a Response back and its
--     headers reach every answer.
local response = require "jararaca.http.response"

local M = {}

local type, pairs, xpcall, error = type, pairs, xpcall, error
local Response, is_response, build, check = response.Response, response.is_response, response.build, response.check

--- The function form of middleware m, or error(where .. " must be ...", 0).
function M.check(m, where)
  if type(m) == "function" then return m end
  if type(m) == "table" and type(m.around) == "function" then
    return function(req, nxt) return m:around(req, nxt) end
  end
  error(where .. " must be a function(req, next) or a table with around(self, req, next)", 0)
end

local function as_response(st, b, ct, hd)
  local copy = {}
  if hd then for k, v in pairs(hd) do copy[k] = v end end
  return Response { status = st, body = b, content_type = ct, headers = copy }
end

--- Run the middlewares mws (function forms, outermost first) around core.
--- Returns run(req) -> status, body, content_type, headers. See the module
--- comment for catch.
function M.compose(mws, core, catch)
  local n = #mws
  local step
  -- middleware i, answering a Response. An answer the server would refuse
  -- raises here, so the middlewares around this one get its 500 (with
  -- their headers) instead of a value that fails at the end.
  local function call(i, req)
    local r1, r2, r3 = mws[i](req, function() return step(i + 1, req) end)
    if r2 == nil and is_response(r1) then r2, r3 = nil, nil end
    local st, b, ct, hd = build(req, nil, r1, r2, r3) -- a handler-style answer, or the Response
    local why = check(st, b, ct, hd)
    if why then error("the answer cannot be sent: " .. why, 0) end
    return as_response(st, b, ct, hd)
  end
  if catch then
    local handler, answer = catch.handler, catch.answer
    local function settle(req, ok, res, ...)
      if ok then return res end
      return as_response(answer(req, res, ...))
    end
    step = function(i, req)
      if i > n then return as_response(core(req)) end
      return settle(req, xpcall(call, handler, i, req))
    end
  else
    step = function(i, req)
      if i > n then return as_response(core(req)) end
      return call(i, req)
    end
  end
  return function(req)
    return build(req, nil, step(1, req))
  end
end

return M
