// Drives the dashboard in headless Chromium (the system's, through playwright-core; never a
// downloaded browser): waits until the shown counts change without a reload, opens a
// queue's dead letters, clicks requeue, waits for the count to fall, opens a queue's groups
// and one callback's story, saves a screenshot.
// Usage: node dashboard.js URL QUEUE SCREENSHOT GROUPS-QUEUE
"use strict";
const { chromium } = require("playwright-core");

const [url, queue, screenshot, groups] = process.argv.slice(2);

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
    await page.goto(url);
    const cell = (name) => `tr[data-queue="${queue}"] td.${name}`;
    await page.waitForSelector(cell("done"), { timeout: 30000 });
    const first = await page.textContent(cell("done"));
    // Live: the count moves with no reload (the page is fed by Server-Sent Events).
    await page.waitForFunction(
      ([sel, before]) => document.querySelector(sel)?.textContent !== before,
      [cell("done"), first], { timeout: 30000 });
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.textContent) > 0,
      cell("dead"), { timeout: 30000 });
    const dead = Number(await page.textContent(cell("dead")));
    await page.click(`button.show-dead[data-queue="${queue}"]`);
    await page.waitForSelector("#requeue", { timeout: 30000 });
    const reasons = await page.textContent("#dead");
    if (!reasons.includes("unlucky")) throw new Error(`no reasons shown: ${reasons}`);
    await page.click("#requeue");
    await page.waitForFunction(([sel, before]) => Number(document.querySelector(sel)?.textContent) < before,
      [cell("dead"), dead], { timeout: 30000 });
    // Groups: the callback waits, one of its two members done; its story names both.
    await page.click(`button.show-groups[data-queue="${groups}"]`);
    await page.waitForSelector("tr.group td.group-done", { timeout: 30000 });
    const progress = await page.textContent("tr.group td.group-done");
    if (progress !== "1") throw new Error(`the group's done count is ${progress}`);
    await page.click("tr.group button.show-task");
    await page.waitForSelector("#story", { timeout: 30000 });
    const story = await page.textContent("#story");
    if (!/after \d+ \(done\), \d+ \(waiting\)/.test(story)) throw new Error(`story: ${story}`);
    if ((await page.textContent("#task-status")) !== "waiting") throw new Error("not waiting");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`ok: done moved from ${first}, dead fell from ${dead}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
