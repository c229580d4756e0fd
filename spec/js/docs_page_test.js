#!/usr/bin/env node
// node spec/js/docs_page_test.js URL SCREENSHOT [hello|typed]
//
// Drives the /docs page at URL in headless Chromium (puppeteer-core,
// /usr/bin/chromium or $CHROMIUM) and checks that:
//   - the page loads with no script error and requests nothing from another origin;
//   - every operation of the OpenAPI document it loads is listed
//     (method, path, summary), with its parameters and responses;
//   - hello (examples/hello/app.lua): "Try it" on GET /hello with name=x shows
//     200 and {"message":"Hello x"}; GET /items/{id} with id=42 shows {"id":42};
//     POST /echo with {"a":1} shows {"a":1}; a missing path parameter is
//     reported without sending;
//   - typed (spec/integration/apps/typed.lua): schemas are rendered with refs
//     resolved (TaskCreate's fields, the recursive TreeNode marked), the
//     prefilled POST /tasks body is accepted (201), a bad uuid shows 422;
//   - both: the prefilled example body of every operation with a JSON body
//     (and no path parameter) is accepted by the server (2xx).
// Saves a full-page PNG screenshot to SCREENSHOT. Exits 0 when all pass,
// else prints what failed and exits 1.
"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const browser = require("./browser");

const [url, shot, mode = "hello"] = process.argv.slice(2);
if (!url || !shot || !["hello", "typed"].includes(mode)) {
  console.error("usage: node docs_page_test.js URL SCREENSHOT [hello|typed]");
  process.exit(2);
}

function log(msg) {
  console.log("ok - " + msg);
}

async function opHandle(page, key) {
  const el = await page.$(`details.op[data-operation="${key}"]`);
  assert.ok(el, `operation ${key} is listed`);
  await el.evaluate((d) => { d.open = true; });
  return el;
}

async function setValue(el, selector, value) {
  const input = await el.$(selector);
  assert.ok(input, `field ${selector}`);
  await input.evaluate((i) => { i.value = ""; });
  await input.type(value);
}

// Submit the "Try it" form of an operation and wait for the answer.
async function tryIt(page, key, fill) {
  const op = await opHandle(page, key);
  if (fill) await fill(op);
  await op.$eval(".try-result", (r) => r.removeAttribute("data-status"));
  const send = await op.$("button.try-send");
  await send.click();
  await page.waitForFunction(
    (k) => {
      const r = document.querySelector(`details.op[data-operation="${k}"] .try-result`);
      const s = r && r.getAttribute("data-status");
      return s && s !== "pending";
    },
    { timeout: 10000 },
    key,
  );
  return op.$eval(".try-result", (r) => ({
    status: r.getAttribute("data-status"),
    statusText: r.querySelector(".try-status").textContent,
    request: r.querySelector(".try-request").textContent,
    body: r.querySelector("pre.try-response").textContent,
  }));
}

async function checkListing(page, spec) {
  const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
  let n = 0;
  for (const [p, item] of Object.entries(spec.paths || {})) {
    for (const m of METHODS) {
      const op = item[m];
      if (!op) continue;
      const key = `${m.toUpperCase()} ${p}`;
      const info = await page.$eval(`details.op[data-operation="${key}"]`, (d) => ({
        method: d.querySelector(".op-method").textContent,
        path: d.querySelector(".op-path").textContent,
        summary: d.querySelector(".op-summary").textContent,
        params: [...d.querySelectorAll("table.params tr[data-param]")].map((tr) => tr.getAttribute("data-param")),
        responses: [...d.querySelectorAll(".response[data-status]")].map((r) => r.getAttribute("data-status")),
        hasTry: !!d.querySelector("form.try-form button.try-send"),
      })).catch(() => null);
      assert.ok(info, `operation ${key} is listed`);
      assert.equal(info.method, m.toUpperCase(), `${key}: method`);
      assert.equal(info.path, p, `${key}: path`);
      assert.equal(info.summary, op.summary || "", `${key}: summary`);
      assert.deepEqual(info.params, (op.parameters || []).map((x) => `${x.in}:${x.name}`), `${key}: parameters`);
      assert.deepEqual(info.responses, Object.keys(op.responses || {}), `${key}: responses`);
      assert.ok(info.hasTry, `${key}: has a Try it form`);
      n++;
    }
  }
  const listed = await page.$$eval("details.op", (l) => l.length);
  assert.equal(listed, n, "no extra operations listed");
  log(`all ${n} operations are listed with method, path, summary, parameters and responses`);
}

async function hello(page) {
  for (const key of ["GET /hello", "GET /items/{id}", "POST /echo"]) {
    assert.ok(await page.$(`details.op[data-operation="${key}"]`), `${key} listed`);
  }
  assert.ok(!(await page.$('details.op[data-operation="GET /openapi.json"]')), "the docs routes are not documented");
  assert.ok(!(await page.$('details.op[data-operation="GET /docs"]')), "the docs routes are not documented");

  let r = await tryIt(page, "POST /echo", (op) => setValue(op, "textarea.try-body", '{"a":1}'));
  assert.equal(r.status, "200", "POST /echo status: " + r.statusText);
  assert.deepEqual(JSON.parse(r.body), { a: 1 });
  log("Try it POST /echo {\"a\":1} -> 200 {\"a\":1}");

  r = await tryIt(page, "GET /items/{id}", (op) => setValue(op, 'input[data-param-name="id"]', "42"));
  assert.equal(r.status, "200", "GET /items/42 status: " + r.statusText);
  assert.match(r.request, /^GET \/items\/42$/);
  assert.deepEqual(JSON.parse(r.body), { id: 42 });
  log("Try it GET /items/{id} id=42 -> 200 {\"id\":42}");

  r = await tryIt(page, "GET /items/{id}", (op) => op.$eval('input[data-param-name="id"]', (i) => { i.value = ""; }));
  assert.equal(r.status, "error");
  assert.match(r.statusText, /Missing path parameter: id/);
  log("a missing path parameter is reported without sending");

  // Last, so the screenshot shows it.
  await page.$$eval("details.op", (l) => l.forEach((d) => { d.open = false; }));
  r = await tryIt(page, "GET /hello", (op) => setValue(op, "input.try-extra-query", "name=x"));
  assert.equal(r.status, "200", "GET /hello status: " + r.statusText);
  assert.match(r.statusText, /^200\b/);
  assert.equal(r.request, "GET /hello?name=x");
  assert.deepEqual(JSON.parse(r.body), { message: "Hello x" });
  assert.equal(r.body, JSON.stringify({ message: "Hello x" }, null, 2), "pretty JSON");
  log("Try it GET /hello name=x -> 200 {\"message\":\"Hello x\"}");
}

async function typed(page) {
  // Schemas: refs resolved, recursion marked, components listed.
  const create = await opHandle(page, "POST /tasks");
  const props = await create.$$eval(".request-body .prop", (l) => l.map((p) => p.getAttribute("data-prop")));
  for (const f of ["name", "priority", "tags", "due", "estimate_hours", "meta"]) {
    assert.ok(props.includes(f), `POST /tasks body shows field ${f} (got ${props.join(",")})`);
  }
  const bodyText = await create.$eval(".request-body", (e) => e.textContent);
  assert.match(bodyText, /TaskCreate/);
  assert.match(bodyText, /"low" \| "normal" \| "high"/);
  assert.match(bodyText, /number \| null/);
  log("POST /tasks shows the TaskCreate fields (enum values, nullable)");

  const resp201 = await create.$eval('.response[data-status="201"]', (e) => e.textContent);
  assert.match(resp201, /Task/);
  assert.match(resp201, /created_at/);
  assert.match(resp201, /extends TaskCreate/);
  log("the 201 response shows Task (allOf merged: extends TaskCreate)");

  const tree = await opHandle(page, "POST /misc/tree");
  const treeText = await tree.$eval(".request-body", (e) => e.textContent);
  assert.match(treeText, /TreeNode/);
  assert.match(treeText, /\u21bb/);
  log("the recursive TreeNode is rendered with a recursion marker");

  const area = await opHandle(page, "POST /misc/area");
  const areaText = await area.$eval(".request-body", (e) => e.textContent);
  assert.match(areaText, /one of/);
  assert.match(areaText, /Circle/);
  assert.match(areaText, /Square/);
  log("one_of shows its variants");

  const comps = await page.$$eval("#schemas .component", (l) => l.map((c) => c.getAttribute("data-schema")));
  for (const n of ["Task", "TaskCreate", "TreeNode", "Priority", "HTTPValidationError"]) {
    assert.ok(comps.includes(n), `schema ${n} listed`);
  }
  log("the Schemas section lists the components");

  let r = await tryIt(page, "GET /tasks/{task_id}", (op) => setValue(op, 'input[data-param-name="task_id"]', "not-a-uuid"));
  assert.equal(r.status, "422", "GET /tasks/not-a-uuid: " + r.statusText);
  assert.equal(JSON.parse(r.body).detail[0].loc[0], "path");
  log("Try it GET /tasks/{task_id} with a bad uuid -> 422");

  r = await tryIt(page, "GET /tasks", async (op) => {
    await setValue(op, 'input[data-param-name="page_size"]', "5");
    await op.$eval('select[data-param-name="priority"]', (sel) => { sel.value = "high"; });
  });
  assert.equal(r.status, "200", "GET /tasks?page_size=5&priority=high: " + r.statusText);
  assert.equal(r.request, "GET /tasks?page_size=5&priority=high");
  log("Try it GET /tasks page_size=5, priority=high (an enum <select>) -> 200");

  // Last, so the screenshot shows it.
  await page.$$eval("details.op", (l) => l.forEach((d) => { d.open = false; }));
  r = await tryIt(page, "POST /tasks");
  assert.equal(r.status, "201", "POST /tasks with the prefilled example: " + r.statusText + " " + r.body);
  const created = JSON.parse(r.body);
  assert.equal(created.kind, "task");
  assert.equal(created.secret, undefined, "the response schema shapes the output");
  log("Try it POST /tasks with the prefilled example body -> 201");
}

// Every operation with a JSON request body and no path parameter accepts
// its own prefilled example (the example generator follows the schema).
async function examplesValidate(page, spec) {
  const keys = [];
  for (const [p, item] of Object.entries(spec.paths || {})) {
    for (const [m, op] of Object.entries(item)) {
      if (!op || !op.requestBody || p.includes("{")) continue;
      const content = op.requestBody.content || {};
      if (!content["application/json"]) continue;
      keys.push(`${m.toUpperCase()} ${p}`);
    }
  }
  for (const key of keys) {
    const r = await tryIt(page, key);
    assert.notEqual(r.status, "422", `${key}: the prefilled example body is rejected: ${r.body}`);
    assert.match(r.status, /^2\d\d$/, `${key}: ${r.statusText} ${r.body}`);
  }
  log(`the prefilled example bodies of ${keys.length} operations are accepted`);
}

async function main() {
  const problems = [];
  const b = await browser.launch();
  try {
    const page = await b.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    browser.watch(page, url, problems);
    const res = await page.goto(url, { waitUntil: "load" });
    assert.equal(res.status(), 200, "GET " + url);
    await page.waitForSelector("body[data-ready], body[data-error]", { timeout: 15000 });
    const err = await page.$eval("body", (b) => b.getAttribute("data-error"));
    assert.equal(err, null, "the page reports: " + err);
    log("the page loaded and rendered the spec");

    const spec = await page.evaluate(async () => (await fetch(document.body.getAttribute("data-spec-url"))).json());
    const title = await page.$eval("#info-title", (e) => e.textContent);
    assert.equal(title, spec.info.title);
    await checkListing(page, spec);
    await examplesValidate(page, spec);
    if (mode === "hello") await hello(page);
    else await typed(page);

    // Problems seen by the page: 4xx answers of "Try it" are expected in
    // typed mode and logged by Chromium as console errors; keep the rest.
    const real = problems.filter((p) => !/Failed to load resource: the server responded with a status of 4\d\d/.test(p));
    assert.deepEqual(real, [], "no page errors or external requests");

    fs.mkdirSync(path.dirname(path.resolve(shot)), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    log("screenshot saved to " + shot);
  } finally {
    await b.close();
  }
}

browser.run(main);
