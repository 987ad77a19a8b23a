// Swagger UI end to end: open /docs, Authorize with the OAuth2 password flow (username and
// password, as a person would type them), then "Try it out" on GET /v1/auth/me and read
// the live response. Prints one JSON line with what the page showed; exits 1 on failure.
//
// Usage: node swagger-authorize.mjs BASE_URL USERNAME PASSWORD
import { launch } from './chromium.mjs';

const [base, username, password] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.context.newPage();
  await page.goto(`${base}/docs/`);
  await page.locator('button.authorize').first().click();
  await page.locator('#oauth_username').fill(username);
  await page.locator('#oauth_password').fill(password);
  await page.getByRole('button', { name: 'Apply given OAuth2 credentials' }).click();
  // After a successful token request the OAuth2 section offers "Logout".
  await page.locator('.modal-ux button', { hasText: 'Logout' }).waitFor({ timeout: 10000 });
  await page.locator('.modal-ux button.btn-done').first().click();

  const me = page.locator('#operations-auth-me');
  await me.locator('.opblock-summary').click();
  await me.getByRole('button', { name: 'Try it out' }).click();
  await me.getByRole('button', { name: 'Execute' }).click();
  const status = me.locator('.live-responses-table td.response-col_status:not(.col_header)');
  await status.waitFor({ timeout: 10000 });
  const body = await me.locator('.live-responses-table .response-col_description pre').first().innerText();
  console.log(JSON.stringify({ status: (await status.innerText()).trim(), body }));
} catch (error) {
  console.error(String(error && error.stack || error));
  process.exitCode = 1;
} finally {
  await browser.close();
}
