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
//     "Task <id> deleted".
// Saves a screenshot of tab 2 to SCREENSHOT. Exits 0 when all pass, else
// prints what failed and exits 1.
"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const puppeteer = require("puppeteer-core");

const [url, shot] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: node tasks_page_test.js URL SCREENSHOT");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
if (!fs.existsSync(CHROMIUM)) {
  console.error(`FAIL: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  process.exit(1);
}

const watchdog = setTimeout(() => {
  console.error("FAIL: timed out after 90 s");
  process.exit(1);
}, 90000);

const WAIT = { timeout: 10000 };

function log(msg) {
  console.log("ok - " + msg);
}

// A tab on the page, its problems (script errors, console errors, requests
// to another origin) collected in problems.
async function openTab(browser, host, problems, name) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 700 });
  page.on("pageerror", (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`${name}: console error: ${m.text()}`); });
  page.on("request", (req) => {
    const u = req.url();
    if (!u.startsWith("data:") && new URL(u).host !== host) problems.push(`${name}: external request: ${u}`);
  });
  const res = await page.goto(url, { waitUntil: "load" });
  assert.equal(res.status(), 200, "GET " + url);
  await page.waitForSelector('body[data-ws="open"][data-loaded]', WAIT);
  return page;
}

// Wait until the tab's event log has a line matching re (a RegExp source).
function waitLog(page, source) {
  return page.waitForFunction(
    (src) => [...document.querySelectorAll("#log li .text")].some((e) => new RegExp(src).test(e.textContent)),
    WAIT, source);
}

const taskRow = (id) => `#tasks li[data-id="${id}"]`;

async function main() {
  const host = new URL(url).host;
  const problems = [];
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const tab1 = await openTab(browser, host, problems, "tab 1");
    const tab2 = await openTab(browser, host, problems, "tab 2");
    log("both tabs loaded, connected to /ws and listed the tasks");

    await waitLog(tab1, "^New Connection \\(2\\) from .+$");
    await waitLog(tab2, "^New Connection \\(2\\) from .+$");
    log("tab 1's log shows tab 2 connecting (count 2)");

    // Add two tasks in tab 1; the second one stays for the screenshot.
    const name = "vanishing task " + Date.now();
    await tab1.type("#new-task input[name=name]", name);
    await tab1.click("#new-task button");
    const li = await tab1.waitForFunction(
      (n) => [...document.querySelectorAll("#tasks li")].find((l) => l.querySelector(".name").textContent === n),
      WAIT, name);
    const id = await li.evaluate((l) => l.dataset.id);
    assert.match(id, /^[0-9a-f-]{36}$/);
    await tab2.waitForSelector(taskRow(id), WAIT);
    assert.equal(await tab2.$eval(`${taskRow(id)} .name`, (e) => e.textContent), name);
    await waitLog(tab2, `^Task ${id} created$`);
    log("a task added in tab 1 is shown in both tabs");

    await tab1.type("#new-task input[name=name]", "a task that stays");
    await tab1.click("#new-task button");
    await tab2.waitForFunction(
      () => [...document.querySelectorAll("#tasks .name")].some((e) => e.textContent === "a task that stays"), WAIT);

    await tab1.click(`${taskRow(id)} button.delete`);
    await tab1.waitForSelector(taskRow(id), { ...WAIT, hidden: true });
    await tab2.waitForSelector(taskRow(id), { ...WAIT, hidden: true });
    await waitLog(tab2, `^Task ${id} deleted$`);
    assert.equal(await tab2.$eval("#error", (e) => e.textContent), "");
    log("deleted in tab 1, it vanished from tab 2, whose log shows the deleted event");

    assert.deepEqual(problems, [], "no page errors or external requests");

    fs.mkdirSync(path.dirname(path.resolve(shot)), { recursive: true });
    await tab2.bringToFront();
    await tab2.screenshot({ path: shot, fullPage: true });
    log("screenshot of tab 2 saved to " + shot);
  } finally {
    await browser.close();
  }
}

main().then(() => {
  clearTimeout(watchdog);
  console.log("PASS");
  process.exit(0);
}, (e) => {
  clearTimeout(watchdog);
  console.error("FAIL: " + (e && e.message ? e.message : String(e)));
  process.exit(1);
});
