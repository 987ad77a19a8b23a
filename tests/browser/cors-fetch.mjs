// Opens a page (served by the test on its own origin) that calls the API with a bearer
// token, and prints the page's verdict: {"title": "ok:<status>:<username>"} when the
// browser let the page read the answer, {"title": "blocked:<error>"} when CORS stopped it.
//
// Usage: node cors-fetch.mjs PAGE_URL
import { launch } from './chromium.mjs';

const [url] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.context.newPage();
  await page.goto(url);
  await page.waitForFunction(
    () => document.title.startsWith('ok:') || document.title.startsWith('blocked:'),
    null,
    { timeout: 10000 },
  );
  console.log(JSON.stringify({ title: await page.title() }));
} catch (error) {
  console.error(String(error && error.stack || error));
  process.exitCode = 1;
} finally {
  await browser.close();
}
