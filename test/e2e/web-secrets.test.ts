/**
 * Admin › Secrets in a real browser (Debian's Chromium, playwright-core) against a real
 * coordinator over TLS: an admin sets a secret (the value field is write-only and empty again
 * once sent), replaces it, sees who set it and which tasks of a build get it, deletes it after
 * confirming; no page and no answer the page received holds the value; a viewer has no Secrets
 * page.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { cleanup } from '../helpers/agent-process.js';
import { launchBrowser, logIn, newPage, shot } from '../helpers/browser.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

let coordinator: StartedCoordinator;
let browser: Browser;

before(async () => {
  browser = await launchBrowser();
  coordinator = await startCoordinator({ tls: true });
});

after(async () => {
  await browser?.close();
  await killCoordinators();
  await cleanup();
});

describe('web UI: Admin › Secrets', () => {
  it('sets, replaces and deletes a secret without ever showing its value', async () => {
    const value = `web-${randomBytes(10).toString('hex')}`;
    const page = await newPage(browser);
    const answers: string[] = [];
    page.on('response', (response) => {
      if (!response.url().includes('/api/v1/') || response.url().includes('/events')) return;
      void response
        .text()
        .then((text) => answers.push(text))
        .catch(() => undefined);
    });
    await logIn(page, coordinator.url, ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Secrets' }).click();
    await page.getByRole('heading', { name: 'Secrets', exact: true }).waitFor();
    await page.getByText('No secrets yet.').waitFor();

    const valueField = page.getByLabel('Value');
    assert.equal(await valueField.getAttribute('type'), 'password');
    await page.getByLabel('Name').fill('DEPLOY_KEY');
    await valueField.fill(value);
    await page.getByRole('button', { name: 'Set secret' }).click();
    await page.getByRole('status').filter({ hasText: 'DEPLOY_KEY set.' }).waitFor();
    const row = page.getByTestId('secret-DEPLOY_KEY');
    await row.waitFor();
    assert.match(await row.innerText(), /DEPLOY_KEY\s+admin/);
    assert.equal(await valueField.inputValue(), '');
    await shot(page, 'secrets');

    // Replacing: the same name gets the new value.
    await page.getByLabel('Name').fill('DEPLOY_KEY');
    await valueField.fill(`${value}-2`);
    await page.getByRole('button', { name: 'Set secret' }).click();
    await page.getByRole('status').filter({ hasText: 'DEPLOY_KEY set.' }).waitFor();
    const listed = await coordinator.api<{ name: string }[]>('GET', '/secrets');
    assert.deepEqual(
      listed.body.map((s) => s.name),
      ['DEPLOY_KEY'],
    );

    // A name that is not an environment variable's is refused by the form itself.
    await page.getByLabel('Name').fill('not-valid');
    await valueField.fill('x');
    await page.getByRole('button', { name: 'Set secret' }).click();
    assert.equal(
      await page
        .getByLabel('Name')
        .evaluate((input) => (input as unknown as { validity: { valid: boolean } }).validity.valid),
      false,
    );
    await page.getByLabel('Name').fill('');
    await valueField.fill('');

    // A build's page says which secrets each task is given (names only).
    const build = await coordinator.api<{ id: number }>('POST', '/builds', {
      plan: 'tasks:\n  deploy:\n    run: ./deploy.sh\n    secrets: [DEPLOY_KEY]\n  other:\n    run: "true"\n',
      files: [],
    });
    assert.equal(build.status, 201, JSON.stringify(build.body));
    await page.goto(`${coordinator.url}/builds/${build.body.id}`);
    await page.getByTestId('task-deploy').getByText('secrets: DEPLOY_KEY').waitFor();
    assert.equal(await page.getByTestId('task-other').getByText('secrets:').count(), 0);
    await page.goto(`${coordinator.url}/admin/secrets`);
    await row.waitFor();

    assert.equal((await page.content()).includes(value), false);

    page.once('dialog', (dialog) => void dialog.accept());
    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('status').filter({ hasText: 'DEPLOY_KEY deleted.' }).waitFor();
    await page.getByText('No secrets yet.').waitFor();
    assert.equal((await coordinator.api<unknown[]>('GET', '/secrets')).body.length, 0);
    const audit = await coordinator.api<{ action: string }[]>('GET', '/audit');
    assert.deepEqual(
      audit.body.slice(0, 3).map((r) => r.action),
      ['secret.delete', 'secret.set', 'secret.set'],
    );
    assert.ok(answers.length > 0);
    assert.equal(
      answers.some((a) => a.includes(value)),
      false,
    );
  });

  it('is not offered to viewers, whom the API refuses', async () => {
    const created = await coordinator.api('POST', '/users', {
      name: 'vic',
      role: 'viewer',
      password: 'vic-password-1',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const page = await newPage(browser);
    await logIn(page, coordinator.url, 'vic-password-1', 'vic');
    await page.getByText('(viewer)').waitFor();
    assert.equal(await page.getByRole('link', { name: 'Secrets' }).count(), 0);
    const refused = await page.evaluate(async () => (await fetch('/api/v1/secrets')).status);
    assert.equal(refused, 403);
  });
});
