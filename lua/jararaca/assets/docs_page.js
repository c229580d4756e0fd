// The /docs page's script, inlined by lua/jararaca/docs_page.lua (its comment lists
// the hooks the tests use). Plain browser JavaScript in one closure; nothing is fetched but the spec.
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
