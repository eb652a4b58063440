// A file uploaded through the web UI in Debian's Chromium, as a person
// would (the Share view's file input, then Share); prints the seconds
// from the click to the page's "Shared as". Used by bench/web.sh.
//
//   node crates/web/tests/browser/upload.mjs URL FILE
import { chromium } from "playwright-core";

const [url, file] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(600_000);
  await page.goto(url);
  await page.locator("#tab-share").click();
  await page.locator("#share-file").setInputFiles(file);
  const t0 = Date.now();
  await page.locator("#share-go").click();
  await page.locator("#toast", { hasText: "Shared as" }).waitFor();
  console.log(((Date.now() - t0) / 1000).toFixed(2));
} finally {
  await browser.close();
}
