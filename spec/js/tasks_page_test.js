#!/usr/bin/env node
// node spec/js/tasks_page_test.js URL SCREENSHOT
//
// Drives the tasks app's live page (examples/tasks/live.html, GET / of
// examples/tasks/app.lua at URL) in TWO tabs of headless Chromium
// (puppeteer-core, /usr/bin/chromium or $CHROMIUM) and checks that:
//   - both tabs load with no script error and request nothing from another
//     origin, connect to /ws (body[data-ws="open"]) and show the list;
//   - tab 1's event log shows tab 2 connecting ("New Connection (2) from ...");
//   - a task added with tab 1's form is shown in both tabs (tab 2 through the
//     "Task <id> created" event);
//   - deleting it in tab 1 makes it vanish from tab 2, whose log shows
//     "Task <id> deleted";
//   - when tab 2's connection drops it says so, reconnects and reloads the
//     list (tab 1 sees it leave and come back).
// Saves a screenshot of tab 2 to SCREENSHOT. Exits 0 when all pass, else
// prints what failed and exits 1.
"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const browser = require("./browser");

const [url, shot] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: node tasks_page_test.js URL SCREENSHOT");
  process.exit(2);
}

// Two tabs, one in the background: poll on a timer (requestAnimationFrame,
// puppeteer's default, does not run in a background tab).
const WAIT = { timeout: 10000, polling: 50 };

function log(msg) {
  console.log("ok - " + msg);
}

// A tab on the page, its problems (script errors, console errors, requests
// to another host) collected in problems.
async function openTab(b, problems, name) {
  const page = await b.newPage();
  await page.setViewport({ width: 1100, height: 700 });
  browser.watch(page, url, problems, name);
  const res = await page.goto(url, { waitUntil: "load" });
  assert.equal(res.status(), 200, "GET " + url);
  await page.waitForFunction(() => document.querySelector('body[data-ws="open"][data-loaded]'), WAIT);
  return page;
}

// Wait until the tab's event log has count lines (default 1) matching the
// RegExp source.
function waitLog(page, source, count = 1) {
  return page.waitForFunction(
    (src, n) => [...document.querySelectorAll("#log li .text")].filter((e) => new RegExp(src).test(e.textContent))
      .length >= n,
    WAIT, source, count);
}

const taskRow = (id) => `#tasks li[data-id="${id}"]`;

async function main() {
  const problems = [];
  const b = await browser.launch();
  try {
    const tab1 = await openTab(b, problems, "tab 1");
    const tab2 = await openTab(b, problems, "tab 2");
    log("both tabs loaded, connected to /ws and listed the tasks");

    await waitLog(tab1, "^New Connection \\(2\\) from .+$");
    await waitLog(tab2, "^New Connection \\(2\\) from .+$");
    log("tab 1's log shows tab 2 connecting (count 2)");

    // Add two tasks in tab 1; the second one stays for the screenshot.
    await tab1.bringToFront();
    const name = "vanishing task " + Date.now();
    await tab1.type("#new-task input[name=name]", name);
    await tab1.click("#new-task button");
    const li = await tab1.waitForFunction(
      (n) => [...document.querySelectorAll("#tasks li")].find((l) => l.querySelector(".name").textContent === n),
      WAIT, name);
    const id = await li.evaluate((l) => l.dataset.id);
    assert.match(id, /^[0-9a-f-]{36}$/);
    await tab2.waitForFunction((sel) => document.querySelector(sel), WAIT, taskRow(id));
    assert.equal(await tab2.$eval(`${taskRow(id)} .name`, (e) => e.textContent), name);
    await waitLog(tab2, `^Task ${id} created$`);
    log("a task added in tab 1 is shown in both tabs");

    await tab1.type("#new-task input[name=name]", "a task that stays");
    await tab1.click("#new-task button");
    await tab2.waitForFunction(
      () => [...document.querySelectorAll("#tasks .name")].some((e) => e.textContent === "a task that stays"), WAIT);

    await tab1.click(`${taskRow(id)} button.delete`);
    await tab1.waitForFunction((sel) => !document.querySelector(sel), WAIT, taskRow(id));
    await tab2.waitForFunction((sel) => !document.querySelector(sel), WAIT, taskRow(id));
    await waitLog(tab2, `^Task ${id} deleted$`);
    assert.equal(await tab2.$eval("#error", (e) => e.textContent), "");
    log("deleted in tab 1, it vanished from tab 2, whose log shows the deleted event");

    // Drop tab 2's connection: it shows the state, reconnects after 0.5 s
    // and reloads the list.
    await tab2.evaluate(() => { delete document.body.dataset.loaded; window.liveSocket.close(); });
    await tab2.waitForFunction(() => document.body.dataset.ws === "closed"
      && document.querySelector("#state").textContent === "reconnecting in 0.5 s", WAIT);
    await waitLog(tab1, "^Connection Closed \\(1\\) from .+$");
    await tab2.waitForFunction(() => document.querySelector('body[data-ws="open"][data-loaded]'), WAIT);
    await waitLog(tab1, "^New Connection \\(2\\) from .+$", 2); // tab 2 is back
    assert.equal(await tab2.$eval("#tasks", (e) => e.textContent.includes("a task that stays")), true);
    assert.equal(await tab2.$$eval("#log li.local", (l) => l.length), 1);
    log("tab 2's dropped connection is shown, reconnected and the list reloaded");

    assert.deepEqual(problems, [], "no page errors or external requests");

    fs.mkdirSync(path.dirname(path.resolve(shot)), { recursive: true });
    await tab2.bringToFront();
    await tab2.screenshot({ path: shot, fullPage: true });
    log("screenshot of tab 2 saved to " + shot);
  } finally {
    await b.close();
  }
}

browser.run(main);
