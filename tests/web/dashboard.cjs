// The dashboard in a real browser (Debian's chromium driven by playwright-core, headless):
// sign in through the form, see nodes and agents, submit a task through the form and watch
// it complete live, browse actors and charts. Screenshots go to the artefact folder.
//   node dashboard.cjs URL API_KEY ARTEFACT_DIR
"use strict";
const path = require("path");
const { chromium } = require(path.join(__dirname, "../../gateway/web/node_modules/playwright-core"));

const [url, apiKey, artefacts] = process.argv.slice(2);
let failures = 0;
let shot = async () => {};
const ok = (what) => console.log(`  ok    ${what}`);
const bad = (what, why) => { console.log(`  FAIL  ${what}${why ? " — " + why : ""}`); failures++; };

async function step(what, fn) {
  if (failures > 0) { console.log(`  skip  ${what} (an earlier step failed)`); return; }
  try { const note = await fn(); ok(note ? `${what}: ${note}` : what); } catch (e) {
    bad(what, String(e.message || e).split("\n")[0]);
    await shot("failed").catch(() => {});
  }
}

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  // bypassCSP: the page's policy forbids eval, which playwright's waitForFunction uses.
  const context = await browser.newContext({ viewport: { width: 1440, height: 960 }, bypassCSP: true });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") console.log(`  page: ${m.text()}`); });
  shot = (name) => page.screenshot({ path: path.join(artefacts, `${name}.png`), fullPage: true });

  await step("the page asks for credentials when the node has them", async () => {
    await page.goto(url + "/");
    await page.waitForSelector("#login:not([hidden])", { timeout: 10000 });
    await shot("01-login");
  });
  await step("signing in with an API key opens the overview", async () => {
    await page.fill("input[name=api_key]", "wrong-key");
    await page.click("#login-form button");
    await page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0, null, { timeout: 10000 });
    const refused = await page.textContent("#login-error");
    await page.fill("input[name=api_key]", apiKey);
    await page.click("#login-form button");
    await page.waitForSelector("#login", { state: "hidden", timeout: 10000 });
    return `a wrong key is refused ("${refused.slice(0, 50)}")`;
  });
  await step("the overview shows the node, up", async () => {
    await page.waitForFunction(() => [...document.querySelectorAll("#nodes tbody tr")].some((r) => r.textContent.includes("up")), null, { timeout: 10000 });
    return `${await page.locator("#nodes tbody tr").count()} node(s)`;
  });
  await step("the live feed connects", async () => {
    await page.waitForSelector("#live.on", { timeout: 10000 });
    await shot("02-overview");
  });
  await step("the agents view lists the default pool", async () => {
    await page.click("a[data-view=agents]");
    await page.waitForFunction(() => document.querySelectorAll("#agents tbody tr").length >= 4, null, { timeout: 10000 });
    await shot("03-agents");
    return `${await page.locator("#agents tbody tr").count()} agents`;
  });
  let taskId = "";
  await step("a task submitted through the form completes, seen live", async () => {
    await page.click("a[data-view=submit]");
    await page.fill("#submit-form input[name=description]", "submitted from the browser");
    await page.fill("#submit-form input[name=type]", "sleep");
    await page.fill("#submit-form textarea[name=payload]", '{"ms": 1500}');
    await page.click("#submit-form button");
    await page.waitForSelector("#submitted-id", { timeout: 10000 });
    taskId = await page.textContent("#submitted-id");
    const seen = new Set();
    const started = Date.now();
    while (Date.now() - started < 20000) {
      const s = await page.getAttribute("#submitted-status", "data-status");
      seen.add(s);
      if (s === "completed") break;
      await page.waitForTimeout(50);
    }
    await shot("04-submitted");
    if (!seen.has("completed")) throw new Error(`statuses seen: ${[...seen].join(", ")}`);
    return `task ${taskId}, statuses seen ${[...seen].join(" -> ")}`;
  });
  await step("a bad payload gets a clear error in the form", async () => {
    await page.fill("#submit-form textarea[name=payload]", "{not json");
    await page.click("#submit-form button");
    await page.waitForFunction(() => document.querySelector("#submit-error").textContent.includes("payload"), null, { timeout: 5000 });
  });
  await step("the tasks view lists it and shows its events and result", async () => {
    await page.click("a[data-view=tasks]");
    await page.waitForSelector(`#tasks tbody tr[data-id="${taskId}"]`, { timeout: 10000 });
    await page.click(`#tasks tbody tr[data-id="${taskId}"]`);
    await page.waitForFunction(() => document.querySelector("#task-detail").textContent.includes("slept_ms"), null, { timeout: 10000 });
    await shot("05-task");
    return `${await page.locator("#task-detail tbody tr").count()} events`;
  });
  await step("the actors view drills into one actor", async () => {
    await page.click("a[data-view=actors]");
    await page.waitForFunction(() => document.querySelectorAll("#actors tbody tr").length >= 5, null, { timeout: 10000 });
    await page.selectOption("#actor-filter select[name=kind]", "agent");
    await page.click("#actor-filter button");
    await page.waitForFunction(() => [...document.querySelectorAll("#actors tbody tr")].every((r) => r.children[1].textContent === "agent"), null, { timeout: 10000 });
    await page.click("#actors tbody tr >> nth=0");
    await page.waitForFunction(() => document.querySelector("#actor-detail").textContent.includes("mailbox"), null, { timeout: 10000 });
    await shot("06-actors");
  });
  await step("the charts draw", async () => {
    await page.click("a[data-view=charts]");
    await page.waitForFunction(() => document.querySelectorAll("#view-charts canvas").length >= 3, null, { timeout: 10000 });
    await shot("07-charts");
  });
  await step("no script errors on the page", async () => { if (errors.length) throw new Error(errors.join("; ")); });
  await browser.close();
  console.log(`\n${failures === 0 ? "dashboard: all passed" : `dashboard: ${failures} failed`} (screenshots in ${artefacts})`);
  process.exit(failures === 0 ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(1); });
