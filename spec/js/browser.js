// spec/js/browser.js: what the headless Chromium tests (docs_page_test.js,
// tasks_page_test.js) share.
//
//   const browser = require("./browser");
//   browser.run(async () => {                  // watchdog, PASS/FAIL, exit code
//     const b = await browser.launch();         // puppeteer-core on $CHROMIUM
//     const page = await b.newPage();
//     browser.watch(page, url, problems, "tab 1"); // script errors, console errors, other hosts
//     ...
//   });
//
// A missing Chromium fails at require time (exit 1 with a FAIL line): the
// tests never skip.
"use strict";
const fs = require("node:fs");
const puppeteer = require("puppeteer-core");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
if (!fs.existsSync(CHROMIUM)) {
  console.error(`FAIL: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  process.exit(1);
}

// Headless Chromium. Background tabs are not throttled: a test with two
// tabs waits on both.
function launch() {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
      "--disable-background-timer-throttling", "--disable-renderer-backgrounding"],
  });
}

// Collect page's problems into problems (prefixed with name when given):
// script errors, console errors, requests to another host than url's.
function watch(page, url, problems, name) {
  const host = new URL(url).host;
  const tag = name ? name + ": " : "";
  page.on("pageerror", (e) => problems.push(tag + "page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push(tag + "console error: " + m.text()); });
  page.on("request", (req) => {
    const u = req.url();
    if (!u.startsWith("data:") && new URL(u).host !== host) problems.push(tag + "external request: " + u);
  });
}

// Run main: print PASS and exit 0 when it resolves, FAIL and exit 1 when it
// rejects or takes more than seconds.
function run(main, seconds = 90) {
  const watchdog = setTimeout(() => {
    console.error(`FAIL: timed out after ${seconds} s`);
    process.exit(1);
  }, seconds * 1000);
  main().then(() => {
    clearTimeout(watchdog);
    console.log("PASS");
    process.exit(0);
  }, (e) => {
    clearTimeout(watchdog);
    console.error("FAIL: " + (e && e.message ? e.message : String(e)));
    process.exit(1);
  });
}

module.exports = { CHROMIUM, launch, watch, run };
