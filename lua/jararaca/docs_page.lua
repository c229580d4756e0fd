--- jararaca.docs_page: the interactive API documentation page (/docs).
--
--     local docs_page = require "jararaca.docs_page"
--     local html = docs_page.render { spec_url = "/openapi.json", title = "My API" }
--
-- One self-contained HTML page (inline CSS and JS, nothing fetched but the
-- spec): it loads the OpenAPI document from spec_url and shows every
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

local TEMPLATE = [==[<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
:root {
  --bg: #f6f7f9; --panel: #fff; --text: #1d2330; --muted: #5f6b7a; --line: #dde2e8;
  --code-bg: #f1f3f6; --accent: #2f6fde; --ok: #1f8a4c; --err: #c9302c;
  --get: #2f6fde; --post: #1f8a4c; --put: #c47a00; --patch: #0f8b8d; --delete: #c9302c;
  --head: #6b5bd2; --options: #6b7280; --trace: #6b7280;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background: #1d2330; color: #fff; padding: 18px 0 16px; }
.wrap { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header.top h1 { margin: 0; font-size: 22px; font-weight: 600; display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.badge { font-size: 11px; font-weight: 600; border-radius: 10px; padding: 2px 8px; background: #3a4356; color: #dfe6f1; }
.badge.oas { background: #2f6fde; color: #fff; }
header.top .sub { margin-top: 6px; color: #b9c2d0; font-size: 13px; }
header.top .sub a { color: #9cc0ff; }
#info-description { margin-top: 8px; color: #dfe6f1; white-space: pre-wrap; }
.toolbar { display: flex; gap: 8px; align-items: center; margin: 18px 0 8px; }
#filter { flex: 1; padding: 8px 10px; border: 1px solid var(--line); border-radius: 6px; font: inherit; background: #fff; }
button { font: inherit; cursor: pointer; border-radius: 6px; border: 1px solid var(--line); background: #fff; padding: 6px 12px; color: var(--text); }
button:hover { border-color: #b8c0cc; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; font-weight: 600; }
button.primary:hover { filter: brightness(1.08); }
#error { display: none; margin: 18px 0; padding: 12px 14px; border-radius: 6px; background: #fdecea; color: #8a1f1b; border: 1px solid #f3c2bf; white-space: pre-wrap; }
#loading { margin: 24px 0; color: var(--muted); }
.tag-group > h2 { font-size: 17px; margin: 22px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
details.op { background: var(--panel); border: 1px solid var(--line); border-left: 4px solid var(--m, var(--options)); border-radius: 6px; margin: 8px 0; }
details.op[open] { box-shadow: 0 1px 3px rgba(20, 30, 50, .08); }
details.op > summary { list-style: none; cursor: pointer; display: flex; align-items: center; gap: 12px; padding: 8px 12px; }
details.op > summary::-webkit-details-marker { display: none; }
details.op > summary::after { content: "\25B8"; margin-left: auto; color: var(--muted); }
details.op[open] > summary::after { transform: rotate(90deg); }
.op-method { display: inline-block; min-width: 64px; text-align: center; font: 700 12px/1 var(--mono); color: #fff; background: var(--m, var(--options)); border-radius: 4px; padding: 6px 0; }
.op-path { font: 600 14px var(--mono); word-break: break-all; }
.op-summary { color: var(--muted); }
.op.deprecated .op-path { text-decoration: line-through; }
.m-get { --m: var(--get); } .m-post { --m: var(--post); } .m-put { --m: var(--put); } .m-patch { --m: var(--patch); }
.m-delete { --m: var(--delete); } .m-head { --m: var(--head); } .m-options { --m: var(--options); } .m-trace { --m: var(--trace); }
.op-body { padding: 4px 16px 16px; border-top: 1px solid var(--line); }
.op-body h3 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 16px 0 6px; }
.op-description { white-space: pre-wrap; margin: 10px 0 0; }
.op-meta { color: var(--muted); font-size: 12px; margin-top: 8px; }
.op-meta code { font-family: var(--mono); }
.none { color: var(--muted); font-style: italic; }
table.params { border-collapse: collapse; width: 100%; }
table.params th, table.params td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
table.params th { font-size: 12px; color: var(--muted); font-weight: 600; }
.pname { font: 600 13px var(--mono); }
.req { color: var(--err); font-size: 11px; font-weight: 600; margin-left: 6px; }
.opt { color: var(--muted); font-size: 11px; margin-left: 6px; }
.in { font-size: 12px; color: var(--muted); }
.schema { font-size: 13px; }
.schema-line { font-family: var(--mono); }
.type { font-family: var(--mono); color: #7a3e9d; }
a.type.ref { color: var(--accent); text-decoration: none; font-weight: 600; }
a.type.ref:hover { text-decoration: underline; }
.recursive { color: var(--muted); font-family: var(--mono); }
.note { display: inline-block; font-size: 11px; color: var(--muted); background: var(--code-bg); border-radius: 4px; padding: 0 6px; margin: 0 0 0 6px; font-family: var(--mono); }
.desc { color: var(--muted); margin: 2px 0; white-space: pre-wrap; }
.props { border-left: 2px solid var(--line); margin: 4px 0 4px 4px; padding-left: 12px; }
.prop { padding: 3px 0; }
.variants { margin: 4px 0; padding-left: 18px; }
.response { margin: 6px 0 10px; }
.status-code { display: inline-block; font: 700 13px var(--mono); padding: 1px 8px; border-radius: 4px; background: var(--code-bg); margin-right: 8px; }
.status-code.s2 { color: var(--ok); } .status-code.s4, .status-code.s5 { color: var(--err); }
.ctype { font: 12px var(--mono); color: var(--muted); margin: 4px 0; }
.try { margin-top: 18px; background: #f9fafb; border: 1px solid var(--line); border-radius: 6px; padding: 12px; }
.try h3 { margin-top: 0 !important; }
.try-grid { display: grid; grid-template-columns: minmax(120px, max-content) 1fr; gap: 6px 12px; align-items: center; }
.try-grid label { font: 600 13px var(--mono); }
.try-grid label small { font: 11px system-ui, sans-serif; color: var(--muted); margin-left: 4px; }
.try input, .try select, .try textarea { width: 100%; font: 13px var(--mono); padding: 6px 8px; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
.try textarea { min-height: 110px; resize: vertical; margin-top: 6px; }
.try-actions { margin-top: 10px; display: flex; gap: 8px; align-items: center; }
.try-note { color: var(--muted); font-size: 12px; }
.try-result { margin-top: 12px; display: none; }
.try-result.shown { display: block; }
.try-request { font: 12px var(--mono); color: var(--muted); word-break: break-all; }
.try-status { font: 700 14px var(--mono); margin: 6px 0; }
.try-status.ok { color: var(--ok); } .try-status.err { color: var(--err); }
.try-headers { font: 12px var(--mono); color: var(--muted); }
.try-headers summary { cursor: pointer; }
pre { background: #1d2330; color: #e6ebf2; padding: 10px 12px; border-radius: 6px; overflow: auto; font: 12.5px/1.45 var(--mono); margin: 6px 0 0; max-height: 420px; }
pre .k { color: #8cc4ff; } pre .s { color: #a8e6a1; } pre .n { color: #ffcf8a; } pre .b { color: #ff9ec7; }
#schemas h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
details.component { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; }
details.component > summary { cursor: pointer; padding: 8px 12px; font: 600 13px var(--mono); }
details.component > .schema { padding: 0 14px 12px; }
footer { color: var(--muted); font-size: 12px; margin: 30px 0 40px; }
.hidden { display: none !important; }
</style>
</head>
<body data-spec-url="{{SPEC_URL_ATTR}}">
<header class="top"><div class="wrap">
  <h1><span id="info-title">{{TITLE}}</span><span class="badge" id="info-version"></span><span class="badge oas" id="info-oas"></span></h1>
  <div class="sub"><a id="spec-link" href="{{SPEC_URL_ATTR}}">{{SPEC_URL_TEXT}}</a></div>
  <div id="info-description"></div>
</div></header>
<main class="wrap">
  <div id="error" role="alert"></div>
  <div class="toolbar">
    <input id="filter" type="search" placeholder="Filter operations (method, path, summary, tag)" autocomplete="off">
    <button type="button" id="expand-all">Expand all</button>
    <button type="button" id="collapse-all">Collapse all</button>
  </div>
  <div id="loading">Loading the API description&hellip;</div>
  <div id="operations"></div>
  <section id="schemas"></section>
  <footer>Generated by jararaca from the OpenAPI document.</footer>
</main>
<script id="docs-config" type="application/json">{{CONFIG}}</script>
<script>
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("docs-config").textContent);
  var METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
  var MAX_DEPTH = 12;
  var spec = null;

  // h("div", {class: "x", text: "..."}, child, [children], "text")
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? "" : String(v));
      });
    }
    var add = function (kid) {
      if (kid === undefined || kid === null || kid === false) return;
      if (Array.isArray(kid)) { kid.forEach(add); return; }
      el.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    };
    for (var i = 2; i < arguments.length; i++) add(arguments[i]);
    return el;
  }

  function showError(msg) {
    var e = document.getElementById("error");
    e.textContent = msg;
    e.style.display = "block";
    document.body.setAttribute("data-error", msg);
    document.getElementById("loading").classList.add("hidden");
  }

  // ---- $refs -------------------------------------------------------------
  function unescapePointer(s) { return decodeURIComponent(s).replace(/~1/g, "/").replace(/~0/g, "~"); }
  function refName(ref) { return unescapePointer(ref.split("/").pop()); }
  function resolveRef(ref) {
    if (typeof ref !== "string" || ref.slice(0, 2) !== "#/") return null;
    var node = spec;
    var parts = ref.slice(2).split("/");
    for (var i = 0; i < parts.length; i++) {
      var k = unescapePointer(parts[i]);
      if (node === null || typeof node !== "object" || !(k in node)) return null;
      node = node[k];
    }
    return node;
  }
  function deref(x) { // parameters, responses, request bodies may be $refs too
    var seen = 0;
    while (x && x.$ref && seen++ < 20) { var r = resolveRef(x.$ref); if (!r) break; x = r; }
    return x;
  }

  // ---- schema rendering ----------------------------------------------------
  function j(v) { try { return JSON.stringify(v); } catch (e) { return String(v); } }

  function notesOf(s) {
    var n = [];
    if (!s || typeof s !== "object") return n;
    if (s.enum) n.push("one of: " + s.enum.map(j).join(" | "));
    if (s.minLength !== undefined) n.push("min length " + s.minLength);
    if (s.maxLength !== undefined) n.push("max length " + s.maxLength);
    if (s.pattern !== undefined) n.push("pattern /" + s.pattern + "/");
    else if (s["x-lua-pattern"] !== undefined) n.push("Lua pattern " + s["x-lua-pattern"]);
    if (s.minimum !== undefined) n.push("\u2265 " + s.minimum);
    if (s.exclusiveMinimum !== undefined) n.push("> " + s.exclusiveMinimum);
    if (s.maximum !== undefined) n.push("\u2264 " + s.maximum);
    if (s.exclusiveMaximum !== undefined) n.push("< " + s.exclusiveMaximum);
    if (s.minItems !== undefined) n.push("min items " + s.minItems);
    if (s.maxItems !== undefined) n.push("max items " + s.maxItems);
    if (s.default !== undefined) n.push("default " + j(s.default));
    if (s.examples && s.examples.length) n.push("example " + j(s.examples[0]));
    else if (s.example !== undefined) n.push("example " + j(s.example));
    if (s.deprecated) n.push("deprecated");
    return n;
  }

  function typeSpan(t) { return h("span", { class: "type" }, t); }
  function refLink(name) { return h("a", { class: "type ref", href: "#schema-" + encodeURIComponent(name), title: "schema " + name }, name); }

  // Merge allOf parts into { properties, required, bases, extra }.
  function mergeAll(parts, stack, out) {
    out = out || { properties: {}, order: [], required: [], bases: [] };
    parts.forEach(function (p) {
      var target = p;
      if (p && p.$ref) {
        var name = refName(p.$ref);
        out.bases.push(name);
        if (stack.indexOf(name) >= 0) return;
        target = resolveRef(p.$ref);
        if (!target) return;
      }
      if (!target || typeof target !== "object") return;
      if (target.allOf) mergeAll(target.allOf, stack, out);
      var props = target.properties || {};
      Object.keys(props).forEach(function (k) {
        if (!(k in out.properties)) out.order.push(k);
        out.properties[k] = props[k];
      });
      (target.required || []).forEach(function (r) { if (out.required.indexOf(r) < 0) out.required.push(r); });
    });
    return out;
  }

  function propsBody(order, props, required, stack, depth) {
    if (!order.length) return null;
    return h("div", { class: "props" }, order.map(function (name) {
      var ps = props[name];
      var d = describe(ps, stack, depth + 1);
      var isReq = required.indexOf(name) >= 0;
      return h("div", { class: "prop", "data-prop": name },
        h("div", { class: "schema-line" },
          h("span", { class: "pname" }, name),
          isReq ? h("span", { class: "req" }, "required") : h("span", { class: "opt" }, "optional"),
          " ", d.label, d.notes.map(function (t) { return h("span", { class: "note" }, t); })),
        d.description ? h("div", { class: "desc" }, d.description) : null,
        d.body);
    }));
  }

  // describe(schema) -> { label: [nodes], body: node|null, notes: [text], description }
  function describe(s, stack, depth) {
    if (s === undefined || s === null || s === true) return { label: [typeSpan("any")], body: null, notes: [] };
    if (s === false) return { label: [typeSpan("never")], body: null, notes: [] };
    var notes = notesOf(s);
    var description = s.description;
    if (s.$ref) {
      var name = refName(s.$ref);
      var target = resolveRef(s.$ref);
      if (!target) return { label: [typeSpan(name + " (unresolved)")], body: null, notes: notes, description: description };
      if (stack.indexOf(name) >= 0 || depth > MAX_DEPTH) {
        return { label: [refLink(name), h("span", { class: "recursive", title: "recursive reference" }, " \u21bb")],
          body: null, notes: notes, description: description };
      }
      var d = describe(target, stack.concat([name]), depth + 1);
      return { label: [refLink(name)], body: d.body, notes: notes.concat(d.notes),
        description: description || d.description };
    }
    var types = Array.isArray(s.type) ? s.type : (s.type ? [s.type] : []);
    if (types.length > 1 && types.indexOf("null") >= 0) {
      var rest = types.filter(function (t) { return t !== "null"; });
      var inner = Object.assign({}, s, { type: rest.length === 1 ? rest[0] : rest, description: undefined });
      var di = describe(inner, stack, depth);
      return { label: di.label.concat([typeSpan(" | null")]), body: di.body, notes: di.notes, description: description };
    }
    if (types.length > 1) return { label: [typeSpan(types.join(" | "))], body: null, notes: notes, description: description };
    var alts = s.oneOf || s.anyOf;
    if (alts) {
      var nonNull = alts.filter(function (a) { return !(a && a.type === "null"); });
      var nullable = nonNull.length < alts.length;
      if (nonNull.length === 1) {
        var dn = describe(nonNull[0], stack, depth);
        return { label: dn.label.concat(nullable ? [typeSpan(" | null")] : []), body: dn.body,
          notes: notes.concat(dn.notes), description: description || dn.description };
      }
      var disc = s.discriminator && s.discriminator.propertyName;
      var labels = [];
      var detailed = false;
      var items = nonNull.map(function (a, i) {
        var dv = describe(a, stack, depth + 1);
        if (i > 0) labels.push(typeSpan(" | "));
        labels.push(dv.label.map(function (n) { return n.cloneNode(true); }));
        if (dv.body || dv.notes.length || dv.description) detailed = true;
        return h("li", { class: "variant" },
          h("div", { class: "schema-line" }, dv.label, dv.notes.map(function (t) { return h("span", { class: "note" }, t); })),
          dv.description ? h("div", { class: "desc" }, dv.description) : null, dv.body);
      });
      if (nullable) labels.push(typeSpan(" | null"));
      if (disc) notes.push("discriminator " + disc);
      return { label: [typeSpan(s.oneOf ? "one of " : "any of ")].concat(labels),
        body: detailed ? h("ul", { class: "variants" }, items) : null, notes: notes, description: description };
    }
    if (s.allOf) {
      var m = mergeAll(s.allOf, stack);
      var local = s.properties ? mergeAll([{ properties: s.properties, required: s.required }], stack, m) : m;
      if (m.bases.length) notes.unshift("extends " + m.bases.join(", "));
      return { label: [typeSpan("object")], body: propsBody(local.order, local.properties, local.required, stack, depth),
        notes: notes, description: description };
    }
    if (s.const !== undefined) return { label: [typeSpan(j(s.const))], body: null, notes: notes, description: description };
    var t = types[0];
    if (t === "array" || (!t && s.items)) {
      var da = describe(s.items, stack, depth + 1);
      return { label: [typeSpan("array<")].concat(da.label, [typeSpan(">")]), body: da.body,
        notes: notes.concat(da.notes), description: description };
    }
    if (t === "object" || (!t && (s.properties || s.additionalProperties))) {
      var props = s.properties || {};
      var order = Object.keys(props);
      if (!order.length && s.additionalProperties && typeof s.additionalProperties === "object") {
        var dm = describe(s.additionalProperties, stack, depth + 1);
        return { label: [typeSpan("map<string, ")].concat(dm.label, [typeSpan(">")]), body: dm.body,
          notes: notes.concat(dm.notes), description: description };
      }
      return { label: [typeSpan("object")], body: propsBody(order, props, s.required || [], stack, depth),
        notes: notes, description: description };
    }
    if (t) return { label: [typeSpan(s.format ? t + "(" + s.format + ")" : t)], body: null, notes: notes, description: description };
    return { label: [typeSpan("any")], body: null, notes: notes, description: description };
  }

  function schemaBlock(s, stack) {
    var d = describe(s, stack || [], 0);
    return h("div", { class: "schema" },
      h("div", { class: "schema-line" }, d.label, d.notes.map(function (t) { return h("span", { class: "note" }, t); })),
      d.description ? h("div", { class: "desc" }, d.description) : null,
      d.body);
  }

  // ---- example values (prefill for request bodies) --------------------------
  function example(s, stack, depth) {
    if (!s || typeof s !== "object" || depth > 8) return undefined;
    if (s.examples && s.examples.length) return s.examples[0];
    if (s.example !== undefined) return s.example;
    if (s.default !== undefined) return s.default;
    if (s.const !== undefined) return s.const;
    if (s.enum && s.enum.length) return s.enum[0];
    if (s.$ref) {
      var name = refName(s.$ref);
      if (stack.indexOf(name) >= 0) return undefined;
      return example(resolveRef(s.$ref), stack.concat([name]), depth + 1);
    }
    var alts = s.oneOf || s.anyOf;
    if (alts) {
      for (var i = 0; i < alts.length; i++) {
        if (alts[i] && alts[i].type === "null") continue;
        var v = example(alts[i], stack, depth + 1);
        if (v !== undefined) return v;
      }
      return null;
    }
    if (s.allOf) {
      var m = mergeAll(s.allOf, stack);
      return example({ type: "object", properties: m.properties, required: m.required }, stack, depth);
    }
    var types = Array.isArray(s.type) ? s.type.filter(function (t) { return t !== "null"; }) : [s.type];
    var t = types[0];
    if (t === "object" || (!t && s.properties)) {
      var out = {};
      Object.keys(s.properties || {}).forEach(function (k) {
        var v = example(s.properties[k], stack, depth + 1);
        if (v !== undefined) out[k] = v;
      });
      return out;
    }
    if (t === "array") {
      var item = example(s.items, stack, depth + 1);
      return item === undefined ? [] : [item];
    }
    if (t === "string") {
      if (s.format === "uuid") return "3fa85f64-5717-4562-b3fc-2c963f66afa6";
      if (s.format === "date") return "2026-01-01";
      if (s.format === "date-time") return "2026-01-01T00:00:00Z";
      if (s.format === "email") return "user@example.com";
      var str = "string";
      if (s.maxLength !== undefined && s.maxLength < str.length) str = str.slice(0, Math.max(s.maxLength, 0));
      return str;
    }
    if (t === "integer" || t === "number") {
      if (s.minimum !== undefined) return s.minimum;
      if (s.exclusiveMinimum !== undefined) return t === "integer" ? s.exclusiveMinimum + 1 : s.exclusiveMinimum + 0.5;
      return 0;
    }
    if (t === "boolean") return false;
    return undefined;
  }

  // ---- pretty JSON -----------------------------------------------------------
  function highlight(pre, text) {
    pre.textContent = "";
    var re = /("(?:\\.|[^"\\])*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g;
    var last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) pre.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[1]) {
        pre.appendChild(h("span", { class: m[2] ? "k" : "s" }, m[1]));
        if (m[2]) pre.appendChild(document.createTextNode(m[2]));
      } else if (m[3]) pre.appendChild(h("span", { class: "n" }, m[3]));
      else pre.appendChild(h("span", { class: "b" }, m[4]));
      last = re.lastIndex;
    }
    if (last < text.length) pre.appendChild(document.createTextNode(text.slice(last)));
  }

  // ---- try it ------------------------------------------------------------------
  function baseUrl() {
    var s = spec.servers && spec.servers[0] && spec.servers[0].url;
    if (!s || s === "/") return "";
    return s.replace(/\/+$/, "");
  }

  function tryForm(method, path, op, params) {
    var key = method.toUpperCase() + " " + path;
    var inputs = [];
    var grid = h("div", { class: "try-grid" });
    params.forEach(function (p) {
      var ps = p.schema || {};
      var def = ps.default !== undefined ? ps.default : (p.example !== undefined ? p.example : undefined);
      var choices = choicesOf(ps);
      var input;
      if (choices) {
        input = h("select", { class: "try-param", "data-param-in": p.in, "data-param-name": p.name,
          name: p.in + ":" + p.name, "aria-label": p.in + " parameter " + p.name },
          h("option", { value: "" }, def !== undefined ? "(default: " + String(def) + ")" : "(not set)"),
          choices.map(function (c) { return h("option", { value: c }, c); }));
      } else {
        input = h("input", {
          class: "try-param", type: "text", "data-param-in": p.in, "data-param-name": p.name,
          name: p.in + ":" + p.name, placeholder: def !== undefined ? String(def) : describeText(ps),
          "aria-label": p.in + " parameter " + p.name,
        });
      }
      inputs.push({ p: p, input: input });
      grid.appendChild(h("label", null, p.name, h("small", null, p.in + (p.required ? ", required" : ""))));
      grid.appendChild(input);
    });
    var extra = h("input", { class: "try-extra-query", type: "text", name: "extra-query",
      placeholder: "a=1&b=two", "aria-label": "extra query string" });
    grid.appendChild(h("label", null, "query", h("small", null, "extra, raw")));
    grid.appendChild(extra);

    var rb = deref(op.requestBody);
    var bodyBox = null;
    var content = rb && rb.content;
    var ctype = content ? Object.keys(content)[0] : "application/json";
    if (rb || method === "post" || method === "put" || method === "patch") {
      var ex = content && content[ctype] ? example(content[ctype].schema, [], 0) : undefined;
      bodyBox = h("textarea", { class: "try-body", name: "body", spellcheck: "false",
        placeholder: rb ? "JSON body" : "JSON body (optional: the operation declares none)",
        "aria-label": "request body" });
      if (ex !== undefined) bodyBox.value = JSON.stringify(ex, null, 2);
    }

    var result = h("div", { class: "try-result", "aria-live": "polite" });
    var reqLine = h("div", { class: "try-request" });
    var status = h("div", { class: "try-status" });
    var headers = h("details", { class: "try-headers" }, h("summary", null, "response headers"), h("pre", { class: "try-headers-text" }));
    var pre = h("pre", { class: "try-response" });
    result.appendChild(reqLine); result.appendChild(status); result.appendChild(headers); result.appendChild(pre);

    var send = h("button", { type: "submit", class: "primary try-send" }, "Send");
    var clear = h("button", { type: "button", class: "try-clear", onclick: function () {
      result.classList.remove("shown"); result.removeAttribute("data-status");
    } }, "Clear");

    var form = h("form", { class: "try-form", "data-operation": key, onsubmit: function (ev) {
      ev.preventDefault();
      run();
    } },
      h("h3", null, "Try it"),
      grid,
      bodyBox ? h("div", null, h("label", { class: "try-note" }, "Request body (" + ctype + ")"), bodyBox) : null,
      h("div", { class: "try-actions" }, send, clear, h("span", { class: "try-note" }, "Sends the request to this server.")),
      result);

    function fail(msg) {
      result.classList.add("shown");
      result.setAttribute("data-status", "error");
      reqLine.textContent = "";
      status.className = "try-status err";
      status.textContent = msg;
      pre.textContent = "";
      headers.classList.add("hidden");
    }

    function run() {
      var url = path;
      var query = [];
      var hdrs = {};
      for (var i = 0; i < inputs.length; i++) {
        var p = inputs[i].p, v = inputs[i].input.value;
        if (v === "") {
          if (p.required && p.in === "path") return fail("Missing path parameter: " + p.name);
          continue;
        }
        if (p.in === "path") url = url.split("{" + p.name + "}").join(encodeURIComponent(v));
        else if (p.in === "query") query.push(encodeURIComponent(p.name) + "=" + encodeURIComponent(v));
        else if (p.in === "header") hdrs[p.name] = v;
      }
      var raw = extra.value.trim().replace(/^\?/, "");
      if (raw) query.push(raw);
      if (query.length) url += "?" + query.join("&");
      var init = { method: method.toUpperCase(), headers: hdrs };
      if (bodyBox && bodyBox.value.trim() !== "") {
        if (/json/.test(ctype)) {
          try { JSON.parse(bodyBox.value); } catch (e) { return fail("The body is not valid JSON: " + e.message); }
        }
        init.body = bodyBox.value;
        hdrs["Content-Type"] = ctype;
      }
      var full = baseUrl() + url;
      reqLine.textContent = init.method + " " + full;
      status.className = "try-status";
      status.textContent = "sending\u2026";
      pre.textContent = "";
      result.classList.add("shown");
      result.setAttribute("data-status", "pending");
      send.disabled = true;
      var t0 = performance.now();
      fetch(full, init).then(function (res) {
        return res.text().then(function (text) {
          var ms = Math.round(performance.now() - t0);
          status.className = "try-status " + (res.ok ? "ok" : "err");
          status.textContent = res.status + " " + (res.statusText || "") + " \u00b7 " + ms + " ms";
          var lines = [];
          res.headers.forEach(function (v, k) { lines.push(k + ": " + v); });
          headers.classList.remove("hidden");
          headers.querySelector("pre").textContent = lines.join("\n");
          var shown = text;
          var ct = res.headers.get("content-type") || "";
          if (text !== "" && /json/.test(ct)) {
            try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { shown = text; }
            highlight(pre, shown);
          } else {
            pre.textContent = text === "" ? "(empty body)" : text;
          }
          result.setAttribute("data-status", String(res.status));
        });
      }).catch(function (e) {
        fail("Request failed: " + e.message);
      }).then(function () { send.disabled = false; });
    }
    return form;
  }

  // The values of an enum or boolean parameter (for a <select>), or null.
  function choicesOf(s) {
    var seen = 0;
    while (s && s.$ref && seen++ < 20) s = resolveRef(s.$ref);
    if (!s) return null;
    var alts = s.oneOf || s.anyOf;
    if (alts) {
      var nn = alts.filter(function (a) { return !(a && a.type === "null"); });
      return nn.length === 1 ? choicesOf(nn[0]) : null;
    }
    if (Array.isArray(s.enum)) return s.enum.map(String);
    var t = Array.isArray(s.type) ? s.type.filter(function (x) { return x !== "null"; })[0] : s.type;
    if (t === "boolean") return ["true", "false"];
    return null;
  }

  function describeText(s) {
    var d = describe(s, [], 0);
    return h("span", null, d.label).textContent;
  }

  // ---- operations ------------------------------------------------------------------
  function operationView(method, path, op, item) {
    var key = method.toUpperCase() + " " + path;
    var params = [];
    var seen = {};
    (op.parameters || []).concat(item.parameters || []).forEach(function (p) {
      p = deref(p);
      if (!p || seen[p.in + ":" + p.name]) return;
      seen[p.in + ":" + p.name] = true;
      params.push(p);
    });
    var body = h("div", { class: "op-body" });
    if (op.description) body.appendChild(h("div", { class: "op-description" }, op.description));
    body.appendChild(h("div", { class: "op-meta" }, op.operationId ? ["operationId ", h("code", null, op.operationId)] : null,
      op.deprecated ? " \u00b7 deprecated" : null));

    body.appendChild(h("h3", null, "Parameters"));
    if (params.length) {
      body.appendChild(h("table", { class: "params" },
        h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "In"), h("th", null, "Schema"), h("th", null, "Description"))),
        h("tbody", null, params.map(function (p) {
          return h("tr", { "data-param": p.in + ":" + p.name },
            h("td", null, h("span", { class: "pname" }, p.name),
              p.required ? h("span", { class: "req" }, "required") : h("span", { class: "opt" }, "optional")),
            h("td", { class: "in" }, p.in),
            h("td", null, schemaBlock(p.schema || {})),
            h("td", { class: "desc" }, p.description || (p.schema && p.schema.description) || ""));
        }))));
    } else {
      body.appendChild(h("div", { class: "none" }, "No parameters"));
    }

    var rb = deref(op.requestBody);
    if (rb) {
      body.appendChild(h("h3", null, "Request body" + (rb.required ? " (required)" : "")));
      var rbBox = h("div", { class: "request-body" });
      if (rb.description) rbBox.appendChild(h("div", { class: "desc" }, rb.description));
      Object.keys(rb.content || {}).forEach(function (ct) {
        rbBox.appendChild(h("div", { class: "ctype" }, ct));
        rbBox.appendChild(schemaBlock((rb.content[ct] || {}).schema || {}));
      });
      body.appendChild(rbBox);
    }

    body.appendChild(h("h3", null, "Responses"));
    Object.keys(op.responses || {}).forEach(function (code) {
      var r = deref(op.responses[code]) || {};
      var box = h("div", { class: "response", "data-status": code },
        h("span", { class: "status-code s" + String(code).charAt(0) }, code),
        h("span", { class: "response-description" }, r.description || ""));
      var content = r.content || {};
      var cts = Object.keys(content);
      if (!cts.length) box.appendChild(h("div", { class: "none" }, "No content"));
      cts.forEach(function (ct) {
        box.appendChild(h("div", { class: "ctype" }, ct));
        box.appendChild(schemaBlock((content[ct] || {}).schema || {}));
      });
      body.appendChild(box);
    });

    body.appendChild(h("div", { class: "try" }, tryForm(method, path, op, params)));

    var search = [method, path, op.summary || "", op.operationId || "", (op.tags || []).join(" ")].join(" ").toLowerCase();
    return h("details", {
      class: "op m-" + method + (op.deprecated ? " deprecated" : ""),
      id: op.operationId ? "op-" + op.operationId : null,
      "data-operation": key, "data-method": method, "data-path": path, "data-search": search,
    },
      h("summary", { class: "op-head" },
        h("span", { class: "op-method" }, method.toUpperCase()),
        h("span", { class: "op-path" }, path),
        h("span", { class: "op-summary" }, op.summary || "")),
      body);
  }

  function render() {
    var info = spec.info || {};
    document.getElementById("info-title").textContent = info.title || config.title || "API";
    document.title = (info.title || config.title || "API") + " \u2013 docs";
    document.getElementById("info-version").textContent = info.version ? "v" + info.version : "";
    document.getElementById("info-oas").textContent = "OpenAPI " + (spec.openapi || "?");
    document.getElementById("info-description").textContent = info.description || "";

    var groups = [], byTag = {};
    (spec.tags || []).forEach(function (t) { if (t && t.name && !byTag[t.name]) { byTag[t.name] = []; groups.push(t.name); } });
    var count = 0;
    Object.keys(spec.paths || {}).forEach(function (path) {
      var item = spec.paths[path] || {};
      Object.keys(item).forEach(function (method) {
        if (METHODS.indexOf(method) < 0) return;
        var op = item[method];
        var tag = (op.tags && op.tags[0]) || "default";
        if (!byTag[tag]) { byTag[tag] = []; groups.push(tag); }
        byTag[tag].push(operationView(method, path, op, item));
        count++;
      });
    });
    var ops = document.getElementById("operations");
    groups.forEach(function (tag) {
      if (!byTag[tag].length) return;
      ops.appendChild(h("section", { class: "tag-group", "data-tag": tag }, h("h2", null, tag), byTag[tag]));
    });
    if (!count) ops.appendChild(h("div", { class: "none" }, "This API has no operations."));

    var schemas = (spec.components && spec.components.schemas) || {};
    var names = Object.keys(schemas);
    var box = document.getElementById("schemas");
    if (names.length) {
      box.appendChild(h("h2", null, "Schemas"));
      names.forEach(function (name) {
        box.appendChild(h("details", { class: "component", id: "schema-" + name, "data-schema": name },
          h("summary", null, name), schemaBlock(schemas[name], [name])));
      });
    }
    document.getElementById("loading").classList.add("hidden");
    openFromHash();
    document.body.setAttribute("data-ready", "true");
  }

  function openFromHash() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (!id) return;
    var el = document.getElementById(id);
    if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
  }
  window.addEventListener("hashchange", openFromHash);

  document.getElementById("filter").addEventListener("input", function (ev) {
    var q = ev.target.value.trim().toLowerCase();
    document.querySelectorAll("details.op").forEach(function (el) {
      el.classList.toggle("hidden", q !== "" && el.getAttribute("data-search").indexOf(q) < 0);
    });
    document.querySelectorAll(".tag-group").forEach(function (g) {
      g.classList.toggle("hidden", !g.querySelector("details.op:not(.hidden)"));
    });
  });
  document.getElementById("expand-all").addEventListener("click", function () {
    document.querySelectorAll("details.op").forEach(function (el) { el.open = true; });
  });
  document.getElementById("collapse-all").addEventListener("click", function () {
    document.querySelectorAll("details.op").forEach(function (el) { el.open = false; });
  });

  fetch(config.spec_url, { headers: { Accept: "application/json" } }).then(function (res) {
    if (!res.ok) throw new Error("GET " + config.spec_url + " answered " + res.status);
    return res.json();
  }).then(function (doc) {
    spec = doc;
    try { render(); } catch (e) { showError("Could not render the API description: " + e.message); }
  }).catch(function (e) {
    showError("Could not load the API description from " + config.spec_url + ": " + e.message);
  });
})();
</script>
</body>
</html>
]==]

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
  return (TEMPLATE:gsub("{{([%u_]+)}}", values))
end

return M
