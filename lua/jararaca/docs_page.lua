--- jararaca.docs_page: the interactive API documentation page (/docs).
--
--     local docs_page = require "jararaca.docs_page"
--     local html = docs_page.render { spec_url = "/openapi.json", title = "My API" }
--
-- One self-contained HTML page (inline CSS and JS, nothing fetched but the
-- spec; the files are in assets/docs_page.{html,css,js}): it loads the OpenAPI document from spec_url and shows every
-- operation (method, path, summary, description, parameters, request body
-- and response schemas with $refs resolved, recursion marked) with a
-- "Try it" form that sends the request with fetch() to the same origin and
-- shows the status, the headers and the (pretty) response body.
--
-- Stable hooks for tests and scripts:
--   body[data-spec-url], body[data-ready="true"] once rendered,
--   body[data-error] and #error when the spec could not be loaded
--   .op[data-operation="GET /hello"]  (a <details>; id "op-<operationId>")
--   .op-method, .op-path, .op-summary, .op-description
--   table.params tr[data-param="query:name"], .request-body, .response[data-status="200"]
--   form.try-form: input.try-param[data-param-in][data-param-name],
--     input.try-extra-query, textarea.try-body, button.try-send
--   .try-result[data-status]: .try-request, .try-status, .try-headers, pre.try-response
--   #schemas .component[data-schema="Name"] (id "schema-Name"), #filter
-- @module jararaca.docs_page
local json = require "jararaca.json"

local M = {}

local type, error, tostring, setmetatable = type, error, tostring, setmetatable

local HTML_ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- Escape text for HTML content and attribute values.
function M.escape_html(s)
  return (tostring(s):gsub("[&<>\"']", HTML_ESC))
end

-- JSON that is safe inside <script>: no "<", ">" or "&" outside escapes.
local function script_json(v)
  local s = assert(json.encode(v))
  return (s:gsub("[<>&]", { ["<"] = "\\u003c", [">"] = "\\u003e", ["&"] = "\\u0026" }))
end

-- The page lives in assets/ next to this file (installed with the Lua
-- files): docs_page.html with {{STYLE}} and {{SCRIPT}} where docs_page.css
-- and docs_page.js go inline, and the {{TITLE}}, {{SPEC_URL_ATTR}},
-- {{SPEC_URL_TEXT}} and {{CONFIG}} slots render() fills.
local ASSETS = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/assets/"

local function read_asset(name)
  local f, err = io.open(ASSETS .. name, "rb")
  if not f then
    error(("docs page: cannot read its file %s (%s); the framework's Lua files are incomplete"):format(name, tostring(err)), 0)
  end
  local text = f:read("*a")
  f:close()
  return text
end

local template -- read once, on the first render

local function page_template()
  if not template then
    local parts = { STYLE = read_asset("docs_page.css"), SCRIPT = read_asset("docs_page.js") }
    template = read_asset("docs_page.html"):gsub("{{(%u+)}}", parts)
  end
  return template
end

--- The directory the page's files are read from (ends with "/").
function M.assets_dir()
  return ASSETS
end

--- The HTML of the docs page. opts: spec_url (required: where the page
--- fetches the OpenAPI JSON), title (the page title until the spec loads;
--- default "API documentation").
function M.render(opts)
  if type(opts) ~= "table" then
    error("docs_page.render(opts): expected a table { spec_url = ..., title = ... }, got " .. type(opts), 2)
  end
  local spec_url, title = opts.spec_url, opts.title
  if type(spec_url) ~= "string" or spec_url == "" then
    error("docs_page.render: spec_url must be a non-empty string, got " .. type(spec_url), 2)
  end
  if title == nil then title = "API documentation" end
  if type(title) ~= "string" then
    error("docs_page.render: title must be a string, got " .. type(title), 2)
  end
  local values = {
    TITLE = M.escape_html(title),
    SPEC_URL_ATTR = M.escape_html(spec_url),
    SPEC_URL_TEXT = M.escape_html(spec_url),
    CONFIG = script_json(setmetatable({ spec_url = spec_url, title = title },
      json.object_mt({ "spec_url", "title" }))),
  }
  return (page_template():gsub("{{([%u_]+)}}", values))
end

return M
