/**
 * The web UI in a real browser (Debian's Chromium, headless, driven by playwright-core) against
 * real coordinator and agent processes over TLS: failing and succeeding to log in, the dashboard
 * with its agents, a build appearing without a reload, the CSRF check on the session cookie,
 * selecting a backup in Settings, the banner and disabled controls on the backup, and the notice
 * of a deselected backup. MUSTER_SCREENSHOTS=DIR saves the pages as PNGs (docs/screenshots).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import {
  cleanup,
  makeSharedDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import {
  assertNoCspViolations,
  launchBrowser,
  logIn,
  newPage as openPage,
  shot,
} from '../helpers/browser.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, startBackup, submit } from '../helpers/ha.js';

let agent: StartedAgent;
let primary: StartedCoordinator;
let browser: Browser;
const newPage = () => openPage(browser);

before(async () => {
  browser = await launchBrowser();
  agent = await startAgent();
  primary = await startCoordinator({ tls: true, args: [...FAST, '--deselect-after', '4s'] });
  await primary.addAgent('builder-1', agent, ['linux']);
});

after(async () => {
  await browser?.close();
  await killCoordinators();
  await cleanup();
});

describe('web UI', () => {
  it('refuses a wrong password with a clear message, then logs in', async () => {
    const page = await newPage();
    await logIn(page, primary.url, 'not the password');
    await page.getByRole('alert').filter({ hasText: 'Wrong user name or password.' }).waitFor();
    assert.match(page.url(), /\/login$/);
    await shot(page, 'login');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByTestId('role').filter({ hasText: 'Primary' }).waitFor();
    await page.getByTestId('agent-builder-1').filter({ hasText: 'connected' }).waitFor();
    // The header links to the API's reference, served by the coordinator itself.
    await page.getByRole('link', { name: 'API', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: /Muster coordinator API/ }).waitFor();
    assert.match(page.url(), /\/api\/docs$/);
    await page.context().close();
  });

  it('shows a new build without a reload', async () => {
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await page.getByTestId('role').waitFor();
    const build = await submit(primary, 'tasks:\n  hello:\n    run: echo hello\n');
    await page.getByTestId(`build-${build.id}`).filter({ hasText: 'succeeded' }).waitFor();
    await shot(page, 'dashboard');
    await page.context().close();
  });

  it('follows a build: live log lines as they are written, then its output to download', async () => {
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    // The task prints its first line, then waits (at most a minute) until the test lets it go on:
    // the build is still running however long the page takes to open.
    const gate = await makeSharedDir();
    const build = await submit(
      primary,
      `name: slow\ntasks:\n  steps:\n    run: echo line 1; for i in $(seq 600); do [ -e ${gate}/go ] && break; sleep 0.1; done; echo line 2; echo line 3; mkdir -p out; echo artifact > out/a.txt\n    outputs: [out/a.txt]\n`,
    );
    await page.getByRole('link', { name: `#${build.id} slow` }).click();
    await page.getByTestId('log').filter({ hasText: 'line 1' }).waitFor();
    // Live: the first line is there while the build still runs.
    assert.equal(await page.getByTestId('build-status').textContent(), 'running');
    assert.doesNotMatch(String(await page.getByTestId('log').textContent()), /line 2/);
    await writeFile(join(gate, 'go'), '');
    await page.getByTestId('log').filter({ hasText: 'line 3' }).waitFor();
    await page.getByTestId('build-status').filter({ hasText: 'succeeded' }).waitFor();
    await shot(page, 'build');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'out/a.txt' }).click(),
    ]);
    const saved = await download.path();
    assert.equal((await readFile(saved, 'utf8')).trim(), 'artifact');
    await page.context().close();
  });

  it('adds an agent after showing its certificate, edits its labels, removes it', async () => {
    const second = await startAgent();
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Agents' }).click();
    await page.getByLabel('Name', { exact: true }).fill('builder-2');
    await page.getByLabel('Address (HOST:PORT)').fill(`127.0.0.1:${second.port}`);
    await page.getByLabel(/^Access key/).fill(second.accessKey);
    await page.getByRole('button', { name: 'Read its certificate' }).click();
    assert.equal(await page.getByTestId('fingerprint').textContent(), second.fingerprint);
    assert.equal(await page.getByRole('button', { name: 'Add agent' }).isDisabled(), true);
    await page.getByLabel(/This is the fingerprint/).check();
    await page.getByRole('button', { name: 'Add agent' }).click();
    await page.getByTestId('agent-builder-2').filter({ hasText: 'connected' }).waitFor();
    await shot(page, 'agents');
    await page.getByLabel('Labels of builder-2').fill('linux, arm64');
    await page.getByTestId('agent-builder-2').getByRole('button', { name: 'Save labels' }).click();
    await page.getByRole('status').filter({ hasText: 'Labels of builder-2 saved' }).waitFor();
    const view = await primary.api<{ labels: string[] }>('GET', '/agents/builder-2');
    assert.deepEqual(view.body.labels, ['linux', 'arm64']);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByTestId('agent-builder-2').getByRole('button', { name: 'Remove' }).click();
    await page.getByRole('status').filter({ hasText: 'builder-2 removed' }).waitFor();
    assert.equal((await primary.api('GET', '/agents/builder-2')).status, 404);
    await page.context().close();
  });

  it('starts a build from a plan, listing every problem of a bad one first', async () => {
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Builds' }).click();
    await page
      .getByLabel('Plan (YAML)')
      .fill('tasks:\n  a:\n    run: echo a\n    needs: [nope]\n  b:\n    retries: -1\n');
    await page.getByRole('button', { name: 'Start build' }).click();
    const problems = page.getByTestId('problems').getByRole('listitem');
    await problems.first().waitFor();
    assert.ok((await problems.count()) >= 2, await page.getByTestId('problems').innerText());
    await shot(page, 'builds-problems');
    await page
      .getByLabel('Plan (YAML)')
      .fill('name: from-ui\ntasks:\n  hi:\n    run: echo from the UI\n');
    await page.getByRole('button', { name: 'Start build' }).click();
    await page.getByTestId('build-status').filter({ hasText: 'succeeded' }).waitFor();
    await page.getByTestId('log').filter({ hasText: 'from the UI' }).waitFor();
    await page.getByRole('link', { name: 'Builds' }).click();
    await page.getByLabel('Status').selectOption('succeeded');
    await page.getByRole('link', { name: /from-ui/ }).waitFor();
    await page.context().close();
  });

  it('finds builds by name, user or number, and pages to older ones', async () => {
    // 55 more builds than the 50 of a page (each a no-op), the first of them named "oldest".
    await submit(primary, 'name: oldest\ntasks:\n  x:\n    run: "true"\n');
    for (let i = 0; i < 54; i++) await submit(primary, 'tasks:\n  x:\n    run: "true"\n');
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Builds' }).click();
    const rows = page.getByRole('table').getByRole('row');
    await page.getByRole('button', { name: 'Show older builds' }).waitFor();
    assert.equal(await rows.count(), 51, 'a page of 50 and the header');
    assert.equal(await page.getByRole('link', { name: /oldest/ }).count(), 0);
    await page.getByRole('button', { name: 'Show older builds' }).click();
    await page.getByRole('link', { name: /oldest/ }).waitFor();
    await page.getByRole('button', { name: 'Show older builds' }).waitFor({ state: 'detached' });
    // The page reloads what it shows when the dashboard's data is reloaded (every 5 s): a reload
    // of exactly the builds there are must not offer older ones again. The dashboard asks for
    // 20 builds, the page for as many as it shows; once the page's reload has been answered and
    // the dashboard's next one asked for (5 s on), the page's has been drawn.
    const listLimit = (url: string): number | undefined => {
      const u = new URL(url);
      if (u.pathname !== '/api/v1/builds' || u.searchParams.has('q')) return undefined;
      return Number(u.searchParams.get('limit'));
    };
    await page.waitForResponse((r) => (listLimit(r.url()) ?? 0) > 50, { timeout: 20_000 });
    await page.waitForRequest((r) => listLimit(r.url()) === 20, { timeout: 20_000 });
    assert.equal(
      await page.getByRole('button', { name: 'Show older builds' }).count(),
      0,
      'no older builds offered after a reload of all of them',
    );

    await page.getByLabel('Search').fill('OLDEST');
    await page.getByRole('link', { name: /oldest/ }).waitFor();
    // Polled from here: a string predicate is eval()ed in the page, which its CSP forbids.
    await waitFor(
      async () => (await page.locator('table tbody tr').count()) === 1,
      20_000,
      'one build to be listed',
    );
    await page.getByLabel('Search').fill('no such build');
    await page.getByText('No builds matching “no such build”.').waitFor();
    await page.context().close();
  });

  it('changes an advanced setting, with its explanation shown', async () => {
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByText(/Agent\.InstanceId.*Identifies this coordinator to agents/).waitFor();
    const before = await primary.api<{ value: string }>('GET', '/settings/Agent.InstanceId');
    await page.getByLabel(/Agent\.InstanceId/).fill('bad id with spaces');
    await page.getByRole('button', { name: 'Save Agent.InstanceId' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: /Agent\.InstanceId/ })
      .waitFor();
    const after = await primary.api<{ value: string }>('GET', '/settings/Agent.InstanceId');
    assert.equal(after.body.value, before.body.value, 'an invalid value is refused');
    // Cleared, agents key this coordinator by its address; then the id is set back.
    await page.getByRole('button', { name: 'Clear Agent.InstanceId' }).click();
    await page.getByRole('status').filter({ hasText: 'Agent.InstanceId cleared.' }).waitFor();
    assert.equal(
      (await primary.api<{ value: string }>('GET', '/settings/Agent.InstanceId')).body.value,
      '',
    );
    assert.equal(await page.getByLabel(/Agent\.InstanceId/).inputValue(), '');
    await page.getByLabel(/Agent\.InstanceId/).fill(before.body.value);
    await page.getByRole('button', { name: 'Save Agent.InstanceId' }).click();
    await page.getByRole('status').filter({ hasText: 'Agent.InstanceId saved.' }).waitFor();
    assert.equal(
      (await primary.api<{ value: string }>('GET', '/settings/Agent.InstanceId')).body.value,
      before.body.value,
    );
    await page.context().close();
  });

  it('refuses a change made with the session cookie but without its CSRF token', async () => {
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await page.getByTestId('role').waitFor();
    const status = await page.evaluate(async () => {
      const response = await fetch('/api/v1/builds', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ plan: 'tasks:\n  x:\n    run: "true"\n', files: [] }),
      });
      return { status: response.status, body: await response.json() };
    });
    assert.equal(status.status, 403, JSON.stringify(status.body));
    assert.match(JSON.stringify(status.body), /CSRF/);
    await page.context().close();
  });

  let backup: StartedCoordinator;
  it('selects a backup in Settings, and shows the backup banner there, view only', async () => {
    backup = await startBackup(primary, 'b1');
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByTestId('backup-b1').filter({ hasText: 'healthy' }).waitFor();
    await page.getByRole('radio', { name: 'Select b1' }).check();
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'b1 is selected' }).waitFor();
    await shot(page, 'settings-backup');
    const listed = await primary.api<{ name: string; selected: boolean }[]>('GET', '/backups');
    assert.deepEqual(
      listed.body.map((b) => [b.name, b.selected]),
      [['b1', true]],
    );
    await page.context().close();

    await backup.loginWhenReady();
    // The login page has the banner too, from a public route that says no more than it shows.
    const anonymous = await fetch(`${backup.url}/api/v1/banner`);
    assert.equal(anonymous.status, 200);
    assert.deepEqual(await anonymous.json(), {
      role: 'backup-standby',
      primary: { url: primary.url, activeSince: null },
    });
    const onBackup = await newPage();
    await onBackup.goto(`${backup.url}/login`);
    await onBackup
      .getByRole('status')
      .filter({ hasText: `Backup coordinator — standing by for the primary at ${primary.url}` })
      .waitFor();
    await shot(onBackup, 'backup-login');
    await logIn(onBackup, backup.url, ADMIN_PASSWORD);
    await onBackup
      .getByRole('status')
      .filter({ hasText: 'Backup coordinator — standing by' })
      .waitFor();
    await onBackup.getByTestId('role').filter({ hasText: 'Backup, standing by' }).waitFor();
    await shot(onBackup, 'backup-standby');
    // Slots as the agent last reported them to the primary, marked as not live.
    await onBackup.getByRole('link', { name: 'Agents' }).click();
    const slots = (await primary.api<{ slots: number }>('GET', '/agents/builder-1')).body.slots;
    await onBackup
      .getByTestId('slots-builder-1')
      .filter({ hasText: new RegExp(`^0 / ${slots}last known$`) })
      .waitFor();
    await onBackup.getByRole('link', { name: 'Settings' }).click();
    await onBackup
      .getByTestId('settings-view-only')
      .filter({ hasText: /View only/ })
      .waitFor();
    await onBackup.getByTestId('setting-Agent.InstanceId').waitFor();
    // View only: no Save (nor any other edit control) at all, not disabled ones.
    assert.equal(await onBackup.getByRole('button', { name: /Save|Clear/ }).count(), 0);
    assert.equal(await onBackup.getByRole('textbox').count(), 0);
    // The banner stays on every page.
    await onBackup
      .getByRole('status')
      .filter({ hasText: 'Backup coordinator — standing by' })
      .waitFor();
    await onBackup.context().close();
  });

  it('says when the primary deselected a backup it could not reach', async () => {
    await backup.kill();
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Settings' }).click();
    // --deselect-after 4s on this primary.
    await page
      .getByRole('alert')
      .filter({ hasText: /Backup b1 was deselected .*not reached for 4 s/ })
      .waitFor({ timeout: 30_000 });
    await page.context().close();
  });

  it('ran every page above under the Content-Security-Policy without a blocked load', () => {
    assertNoCspViolations();
  });
});
