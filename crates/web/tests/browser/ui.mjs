// Drives Debian's Chromium (headless, through playwright-core; no browser
// is downloaded) against a running Shoal web UI, as a person would: the
// Rust test (../browser.rs) starts the tracker and the nodes, runs this,
// and checks what landed on disk. Prints one JSON line of what it saw;
// exits non-zero (with the reason on stderr) when a step fails.
//
// env: SHOAL_URL (the page), SHOAL_UPLOAD (a file to upload),
//      SHOAL_SCREENSHOTS (optional: a folder for desktop.png and phone.png),
//      CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";

const url = process.env.SHOAL_URL;
const upload = process.env.SHOAL_UPLOAD;
const shots = process.env.SHOAL_SCREENSHOTS;
const STEP = 60_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const seen = { consoleErrors: [], expectedErrors: [], steps: [] };
// Set while a step makes the page answer with an error on purpose (the
// browser logs a refused request as a console error).
let expecting = null;
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(STEP);
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (expecting && m.text().includes(expecting)) seen.expectedErrors.push(m.text());
    else seen.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => seen.consoleErrors.push(String(e)));
  const step = (name) => seen.steps.push(name);

  await page.goto(url);
  await page.locator("#net-state", { hasText: "ONLINE" }).waitFor();
  step("online");

  // Peers appear; a peer's files.
  const bob = page.locator("#peers li", { hasText: "bob" });
  await bob.waitFor();
  await bob.getByRole("button", { name: "Browse" }).click();
  const big = page.locator("#listing li", { hasText: "big.bin" });
  await big.waitFor();
  step("browsed");

  // A download by click: progress on the way, pause, resume, done.
  await big.getByRole("button", { name: "Download" }).click();
  const row = page.locator("#transfers li", { hasText: "big.bin" });
  await row.waitFor();
  await page.waitForFunction(() => {
    const bar = document.querySelector("#transfers li .bar");
    const v = bar && Number(bar.getAttribute("aria-valuenow"));
    return v > 0 && v < 100;
  });
  seen.midway = await row.locator(".numbers").textContent();
  step("progress");
  await row.getByRole("button", { name: "Pause" }).click();
  await row.locator(".badge", { hasText: "paused" }).waitFor();
  step("paused");
  await row.getByRole("button", { name: "Resume" }).click();
  await row.locator(".badge", { hasText: /running|done/ }).waitFor();
  await row.locator(".badge", { hasText: "done" }).waitFor();
  seen.done = await row.locator(".numbers").textContent();
  step("done");

  // A download encrypted with a passphrase: it waits for it, a wrong one
  // is refused, the right one opens it.
  await page.locator("#tab-peers").click();
  await page.locator("#get-target").fill("bob:locked.txt.age");
  await page.locator("#get-form button[type=submit]").click();
  const locked = page.locator("#transfers li", { hasText: "locked.txt.age" });
  await locked.locator(".badge", { hasText: "needs-passphrase" }).waitFor();
  await locked.getByLabel("passphrase for locked.txt.age").fill("not it");
  expecting = "status of 422";
  await locked.getByRole("button", { name: "Open" }).click();
  await page.locator("#toast", { hasText: "does not open it" }).waitFor();
  expecting = null;
  await locked.getByLabel("passphrase for locked.txt.age").fill("open sesame");
  await locked.getByRole("button", { name: "Open" }).click();
  await locked.locator(".badge", { hasText: "done" }).waitFor();
  step("opened with a passphrase");

  // A download by typing PEER:PATH, cancelled midway.
  await page.locator("#tab-peers").click();
  await page.locator("#get-target").fill("bob:other.bin");
  await page.locator("#get-form button[type=submit]").click();
  const other = page.locator("#transfers li", { hasText: "other.bin" });
  await other.getByRole("button", { name: "Cancel" }).click();
  await other.locator(".badge", { hasText: "cancelled" }).waitFor();
  step("cancelled");

  // Share by the file input, plain.
  await page.locator("#tab-share").click();
  await page.locator("#share-file").setInputFiles(upload);
  await page.locator("#share-go").click();
  await page.locator("#toast", { hasText: "Shared as" }).waitFor();
  step("shared by input");

  // Share by a drop, encrypted with a passphrase.
  await page.locator("#drop").evaluate((drop) => {
    const dt = new DataTransfer();
    dt.items.add(new File(["dropped and locked"], "dropped.txt", { type: "text/plain" }));
    drop.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
    drop.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await page.locator("#share-chosen", { hasText: "dropped.txt" }).waitFor();
  await page.locator('input[name="lock"][value="passphrase"]').check();
  await page.locator("#share-pass").fill("correct horse battery");
  await page.locator("#share-pass2").fill("correct horse battery");
  await page.locator("#share-go").click();
  await page.locator("#toast", { hasText: "dropped.txt.age" }).waitFor();
  step("shared by drop, encrypted");

  // Local files, with links.
  await page.locator("#tab-files").click();
  await page.locator("#files li", { hasText: "dropped.txt.age" }).waitFor();
  await page.locator("#files li", { hasText: "dropped.txt.age" }).getByRole("button", { name: "Copy link" }).waitFor();
  step("local files");

  // The log shows what happened, live, by level and filter.
  await page.locator("#log li.success", { hasText: "shared" }).first().waitFor();
  await page.locator("#log-filter").fill("dropped");
  const filtered = await page.locator("#log li").allTextContents();
  if (!filtered.length || filtered.some((t) => !t.includes("dropped"))) throw new Error("the filter shows " + JSON.stringify(filtered));
  await page.locator("#log-filter").fill("");
  await page.locator('.lvl[value="success"]').uncheck();
  if (await page.locator("#log li.success").count()) throw new Error("success lines still shown when hidden");
  await page.locator('.lvl[value="success"]').check();
  step("log");

  // Settings land in config.toml.
  await page.locator("#tab-settings").click();
  await page.locator("#s-name").fill("alice-web");
  await page.locator("#settings-form button[type=submit]").click();
  await page.locator("#settings-msg", { hasText: "Saved to config.toml" }).waitFor();
  await page.locator("#name", { hasText: "alice-web" }).waitFor();
  step("settings");

  // By keyboard: arrows move between the tabs.
  await page.locator("#tab-settings").focus();
  await page.keyboard.press("ArrowLeft");
  if ((await page.locator("#tab-files").getAttribute("aria-selected")) !== "true") throw new Error("ArrowLeft did not move to Local files");
  step("keyboard");

  if (shots) {
    await page.evaluate(() => { document.getElementById("toast").hidden = true; });
    await page.locator("#tab-transfers").click();
    await page.screenshot({ path: shots + "/desktop.png" });
  }

  // At a phone's width nothing scrolls sideways, on any view.
  await page.setViewportSize({ width: 390, height: 844 });
  seen.widths = {};
  for (const tab of ["peers", "transfers", "share", "files", "settings"]) {
    await page.locator("#tab-" + tab).click();
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    seen.widths[tab] = w;
    if (w > 390) throw new Error(`the ${tab} view is ${w}px wide at 390`);
  }
  const tabEdges = await page.evaluate(() => [...document.querySelectorAll(".tabs button")].map((b) => b.getBoundingClientRect().right));
  if (tabEdges.some((r) => r > 390)) throw new Error("a tab is off-screen at 390: " + JSON.stringify(tabEdges));
  step("phone width");
  if (shots) {
    await page.locator("#tab-peers").click();
    await page.locator("#peers li", { hasText: "bob" }).getByRole("button", { name: "Browse" }).click();
    await page.locator("#listing li button").first().waitFor();
    await page.evaluate(() => { document.getElementById("toast").hidden = true; });
    await page.screenshot({ path: shots + "/phone.png", fullPage: false });
  }

  if (seen.consoleErrors.length) throw new Error("console errors: " + JSON.stringify(seen.consoleErrors));
  console.log(JSON.stringify(seen));
} catch (e) {
  console.error(String(e && e.stack ? e.stack : e));
  console.error("seen so far: " + JSON.stringify(seen));
  if (page) {
    try { console.error("log on the page: " + (await page.locator("#log").textContent())); } catch { /* gone */ }
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
