/**
 * The browser of the web UI tests: Debian's Chromium, headless, driven by playwright-core.
 * MUSTER_CHROMIUM overrides its path; MUSTER_SCREENSHOTS=DIR saves the pages `shot` is given as
 * PNGs (docs/screenshots holds the README's).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM = process.env.MUSTER_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.MUSTER_SCREENSHOTS;

export async function launchBrowser(): Promise<Browser> {
  assert.ok(
    existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: apt-get install chromium (or set MUSTER_CHROMIUM)`,
  );
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** What Chromium reported as blocked by the coordinator's Content-Security-Policy. */
const cspViolations: string[] = [];

/** A page in a context of its own (its own cookies), every wait bounded. */
export async function newPage(browser: Browser): Promise<Page> {
  // The coordinators use the test certificate, which Node trusts but Chromium does not know.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text()))
      cspViolations.push(`${page.url()}: ${message.text()}`);
  });
  return page;
}

/** Fails when any page so far had something blocked by the CSP (the UI must work under it). */
export function assertNoCspViolations(): void {
  assert.deepEqual(cspViolations, [], 'the web UI works under its Content-Security-Policy');
}

export async function shot(page: Page, name: string): Promise<void> {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Opens the coordinator's UI and fills in the login form (it does not wait for the result). */
export async function logIn(page: Page, url: string, password: string, user = 'admin') {
  await page.goto(`${url}/`);
  await page.getByLabel('User').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}
