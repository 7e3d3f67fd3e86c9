/**
 * The web UI's administration and the rest of its flows in a real browser (Debian's Chromium,
 * playwright-core) against real coordinator and agent processes over TLS: users and roles (a
 * viewer sees and cannot change; a new password ends the user's session; the last admin stays),
 * changing one's own password and logging out, a change seen on Admin › Audit, adding an
 * extension from a folder, a build with input files picked from a folder, and a backup's banner
 * once it has taken over from a dead primary (view only, builds still run).
 * MUSTER_SCREENSHOTS=DIR saves the pages as PNGs.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import {
  cleanup,
  makeTempDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import { launchBrowser, logIn, newPage as openPage, shot } from '../helpers/browser.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { writeProbeExtension } from '../helpers/extensions.js';
import { FAST, selectBackup, startBackup, status } from '../helpers/ha.js';

let agent: StartedAgent;
let primary: StartedCoordinator;
let browser: Browser;
let dir: string;
const newPage = () => openPage(browser);

before(async () => {
  browser = await launchBrowser();
  dir = await makeTempDir('muster-web-admin-');
  agent = await startAgent({ args: ['--lease-ttl', '2s'] });
  primary = await startCoordinator({ tls: true, args: FAST });
  await primary.addAgent('builder-1', agent, ['linux']);
});

after(async () => {
  await browser?.close();
  await killCoordinators();
  await cleanup([dir]);
});

describe('web UI administration', () => {
  it('manages users: a viewer looks, a new role applies, a new password ends the session', async () => {
    const admin = await newPage();
    await logIn(admin, primary.url, ADMIN_PASSWORD);
    await admin.getByRole('link', { name: 'Users' }).click();
    await admin.getByTestId('user-admin').waitFor();
    await admin.getByLabel('User name').fill('vera');
    await admin.getByLabel('Role', { exact: true }).selectOption('viewer');
    await admin.getByLabel('Password (at least 8 characters)').fill('vera-password-1');
    await admin.getByRole('button', { name: 'Add user' }).click();
    await admin.getByRole('status').filter({ hasText: 'vera added as viewer' }).waitFor();
    await admin.getByTestId('user-vera').waitFor();
    await shot(admin, 'users');

    const vera = await newPage();
    await logIn(vera, primary.url, 'vera-password-1', 'vera');
    await vera.getByTestId('role').filter({ hasText: 'Primary' }).waitFor();
    await vera.getByText('(viewer)').waitFor();
    assert.equal(await vera.getByRole('link', { name: 'Users' }).count(), 0);
    await vera.getByRole('link', { name: 'Agents' }).click();
    await vera.getByTestId('agent-builder-1').waitFor();
    assert.equal(await vera.getByRole('button', { name: 'Save labels' }).isDisabled(), true);
    await vera.getByRole('link', { name: 'Builds' }).click();
    assert.equal(await vera.getByRole('button', { name: 'Start build' }).isDisabled(), true);

    // A new role applies on the user's next request.
    await admin.getByLabel('Role of vera').selectOption('admin');
    await admin.getByTestId('user-vera').getByRole('button', { name: 'Change role' }).click();
    await admin.getByRole('status').filter({ hasText: 'vera is now admin' }).waitFor();
    await vera.reload();
    await vera.getByText('(admin)').waitFor();
    await vera.getByRole('button', { name: 'Start build' }).waitFor();
    assert.equal(await vera.getByRole('button', { name: 'Start build' }).isDisabled(), false);

    // A new password ends vera's session: her page goes back to the login page and says why.
    await admin.getByLabel('New password for vera').fill('vera-password-2');
    await admin.getByTestId('user-vera').getByRole('button', { name: 'Set' }).click();
    await admin.getByRole('status').filter({ hasText: 'vera has a new password' }).waitFor();
    await vera.getByRole('link', { name: 'Dashboard' }).click();
    await vera.getByText('Your session has ended').waitFor();
    await vera.waitForURL(/\/login$/);
    await logIn(vera, primary.url, 'vera-password-2', 'vera');
    await vera.getByText('(admin)').waitFor();
    await vera.context().close();

    // The coordinator keeps an admin: with vera gone, admin cannot become a viewer.
    admin.once('dialog', (dialog) => void dialog.accept());
    await admin.getByTestId('user-vera').getByRole('button', { name: 'Delete' }).click();
    await admin.getByRole('status').filter({ hasText: 'vera deleted' }).waitFor();
    await admin.getByTestId('user-vera').waitFor({ state: 'detached' });
    await admin.getByLabel('Role of admin').selectOption('viewer');
    await admin.getByTestId('user-admin').getByRole('button', { name: 'Change role' }).click();
    await admin.getByRole('alert').filter({ hasText: 'admin is the only admin' }).waitFor();
    const users = await primary.api<{ name: string; role: string }[]>('GET', '/users');
    assert.deepEqual(
      users.body.map((u) => [u.name, u.role]),
      [['admin', 'admin']],
    );
    assert.equal(await admin.getByRole('button', { name: 'Delete' }).isDisabled(), true);
    await admin.context().close();
  });

  it("changes one's own password (the current one proves it), then logs out", async () => {
    const created = await primary.api('POST', '/users', {
      name: 'olga',
      role: 'viewer',
      password: 'olga-password-1',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const page = await newPage();
    await logIn(page, primary.url, 'olga-password-1', 'olga');
    await page.getByRole('link', { name: 'olga' }).click();
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    await page.getByLabel('Current password').fill('not-her-password');
    await page.getByLabel('New password (at least 8 characters)').fill('olga-password-2');
    await page.getByLabel('New password again').fill('olga-password-2');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByRole('alert').filter({ hasText: 'the current password is wrong' }).waitFor();
    await page.getByLabel('Current password').fill('olga-password-1');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByRole('status').filter({ hasText: 'Your password is changed' }).waitFor();
    await shot(page, 'account');

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/\/login$/);
    // Logged out means logged out: the UI's pages and the API both refuse the old cookie.
    await page.goto(`${primary.url}/builds`);
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    const api = await page.evaluate(async () => (await fetch('/api/v1/builds')).status);
    assert.equal(api, 401);
    await logIn(page, primary.url, 'olga-password-1', 'olga');
    await page.getByRole('alert').filter({ hasText: 'Wrong user name or password.' }).waitFor();
    await page.getByLabel('Password').fill('olga-password-2');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('(viewer)').waitFor();
    await page.context().close();
  });

  it('shows a change on Admin › Audit with who, from where and what, never the password', async () => {
    const admin = await newPage();
    await logIn(admin, primary.url, ADMIN_PASSWORD);
    await admin.getByRole('link', { name: 'Users' }).click();
    await admin.getByLabel('User name').fill('audra');
    await admin.getByLabel('Role', { exact: true }).selectOption('viewer');
    await admin.getByLabel('Password (at least 8 characters)').fill('audra-password-1');
    await admin.getByRole('button', { name: 'Add user' }).click();
    await admin.getByRole('status').filter({ hasText: 'audra added as viewer' }).waitFor();

    await admin.getByRole('link', { name: 'Audit' }).click();
    await admin.getByRole('heading', { name: 'Audit' }).waitFor();
    const newest = admin.getByTestId('audit').locator('tbody tr').first();
    await newest.filter({ hasText: 'user.create' }).waitFor();
    const cells = await newest.locator('td').allInnerTexts();
    assert.deepEqual(cells.slice(1), ['admin', '127.0.0.1', 'user.create', 'audra', 'role=viewer']);
    assert.doesNotMatch(await admin.locator('main').innerText(), /audra-password/);
    await shot(admin, 'audit');

    // Filtered by action: only the user removals of the first test.
    await admin.getByLabel('Action').fill('user.delete');
    await admin.getByRole('button', { name: 'Filter' }).click();
    const shown = admin.getByTestId('audit').locator('tbody tr');
    await waitFor(
      async () => (await shown.filter({ hasText: 'user.create' }).count()) === 0,
      10_000,
      'the filter to apply',
    );
    const targets = await admin
      .getByTestId('audit')
      .locator('tbody tr td:nth-child(5)')
      .allInnerTexts();
    assert.deepEqual(targets, ['vera']);
    await admin.context().close();

    // A viewer has no Audit page, and the API refuses the log to them.
    const viewer = await newPage();
    await logIn(viewer, primary.url, 'audra-password-1', 'audra');
    await viewer.getByText('(viewer)').waitFor();
    assert.equal(await viewer.getByRole('link', { name: 'Audit' }).count(), 0);
    const refused = await viewer.evaluate(async () => (await fetch('/api/v1/audit')).status);
    assert.equal(refused, 403);
    await viewer.context().close();
  });

  it('adds an extension from a folder, then runs a build with input files from a folder', async () => {
    const extension = await writeProbeExtension(dir, 'v7');
    const project = join(dir, 'project');
    await mkdir(join(project, 'src'), { recursive: true });
    await mkdir(join(project, 'node_modules', 'left-out'), { recursive: true });
    await writeFile(join(project, 'src', 'greeting.txt'), 'hello from an uploaded file\n');
    await writeFile(join(project, 'node_modules', 'left-out', 'big.txt'), 'not uploaded\n');

    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Extensions' }).click();
    await page.getByTestId('extension-core').waitFor();
    await page.getByLabel(/The extension's folder/).setInputFiles(extension);
    await page.getByTestId('extension-files').filter({ hasText: '4 files' }).waitFor();
    await page.getByRole('button', { name: 'Add extension' }).click();
    await page.getByRole('status').filter({ hasText: 'probe v7 added' }).waitFor();
    await page.getByTestId('extension-probe').filter({ hasText: 'v7' }).waitFor();
    await shot(page, 'extensions');

    await page.getByRole('link', { name: 'Builds' }).click();
    await page.getByLabel(/A folder, standing for the plan's folder/).setInputFiles(project);
    // node_modules is left out, as `muster run` leaves it out.
    await page.getByTestId('inputs').filter({ hasText: '1 file' }).waitFor();
    const plan = (input: string) =>
      `name: with-inputs\ntasks:\n  show:\n    run: cat src/greeting.txt\n    inputs: [${input}]\n  probe:\n    uses: probe/whoami\n  report:\n    run: echo both done\n    needs: [show, probe]\n`;
    await page.getByLabel('Plan (YAML)').fill(plan('docs/*.md'));
    await page.getByRole('button', { name: 'Start build' }).click();
    await page
      .getByTestId('problems')
      .filter({ hasText: 'task "show": input "docs/*.md" matches none of the uploaded files' })
      .waitFor();
    await page.getByLabel('Plan (YAML)').fill(plan('src/*.txt'));
    await page.getByRole('button', { name: 'Start build' }).click();
    await page.getByTestId('build-status').filter({ hasText: 'succeeded' }).waitFor();
    await page.getByTestId('log').filter({ hasText: 'hello from an uploaded file' }).waitFor();
    await page.getByTestId('log').filter({ hasText: 'v7' }).waitFor();
    // The task graph in stages: report needs both others, so it stands in the second stage.
    const stages = page.getByRole('list', { name: 'Task graph, in stages' }).getByRole('listitem');
    assert.equal(await stages.count(), 2);
    await stages.nth(0).filter({ hasText: 'show' }).filter({ hasText: 'probe' }).waitFor();
    await stages.nth(1).filter({ hasText: 'report' }).waitFor();
    await stages
      .nth(1)
      .getByRole('button', { name: /report/ })
      .click();
    await page.getByRole('heading', { name: 'Log of report' }).waitFor();
    await page.getByTestId('log').filter({ hasText: 'both done' }).waitFor();
    assert.doesNotMatch(await page.getByTestId('log').innerText(), /hello from an uploaded file/);
    await shot(page, 'build-graph');

    // An ended build can be deleted by an admin, after a confirmation; the list no longer has it.
    const buildPath = new URL(page.url()).pathname;
    const buildId = Number(buildPath.split('/').at(-1));
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete build' }).click();
    await page.waitForURL((url) => url.pathname === '/builds');
    assert.equal((await primary.api('GET', `/builds/${buildId}`)).status, 404);
    await page.context().close();
  });

  it('works from the keyboard alone, and fits a phone-sized screen', async () => {
    const page = await newPage();
    await page.goto(`${primary.url}/`);
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    // (In the page: the focused element's tag and its label or text.)
    const focused = () =>
      page.evaluate<string>(
        "(() => { const el = document.activeElement; return `${el?.tagName ?? ''} ${el?.getAttribute('aria-label') ?? el?.textContent?.trim() ?? ''}`; })()",
      );
    // Log in: Tab to the user field, type, Tab, type the password, Enter.
    await page.keyboard.press('Tab');
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type(ADMIN_PASSWORD);
    await page.keyboard.press('Enter');
    await page.getByTestId('role').waitFor();
    // The first stop is the skip link; the navigation follows it.
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'A Skip to the page');
    let hops = 0;
    while ((await focused()) !== 'A Builds' && hops++ < 10) await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Start a build' }).waitFor();
    assert.match(page.url(), /\/builds$/);
    assert.equal(await page.title(), 'Builds · Muster');

    // On a 390 px wide screen no page is wider than the screen (wide tables scroll inside).
    await page.setViewportSize({ width: 390, height: 800 });
    for (const path of [
      '/',
      '/agents',
      '/builds',
      '/admin/settings',
      '/admin/users',
      '/admin/extensions',
      '/admin/certificates',
      '/account',
    ]) {
      await page.goto(`${primary.url}${path}`);
      await page.locator('main h1, main h2').first().waitFor();
      const width = await page.evaluate<number>('document.documentElement.scrollWidth');
      assert.ok(width <= 390, `${path} is ${width} px wide on a 390 px screen`);
    }
    await page.context().close();
  });

  it('shows an active backup with its banner: view only, and builds still run there', async () => {
    const backup = await startBackup(primary, 'b1', ['--failover-timeout', '3s']);
    await selectBackup(primary, backup, 'b1');
    await primary.kill();
    await waitFor(async () => (await status(backup)).role === 'backup-active', 30_000, 'takeover');

    const page = await newPage();
    // Before logging in, the login page says where one is.
    await page.goto(`${backup.url}/login`);
    await page
      .getByRole('status')
      .filter({ hasText: /Backup coordinator — active: the primary is unreachable since/ })
      .waitFor();
    // The same logins work on the backup: it holds the primary's users.
    await logIn(page, backup.url, ADMIN_PASSWORD);
    await page
      .getByRole('status')
      .filter({ hasText: /Backup coordinator — active: the primary is unreachable since/ })
      .waitFor();
    await page.getByTestId('role').filter({ hasText: 'Backup, active' }).waitFor();
    await page
      .getByTestId('primary')
      .filter({ hasText: `${primary.url}: unreachable` })
      .waitFor();
    await shot(page, 'backup-active');
    await page.getByRole('link', { name: 'Users' }).click();
    await page.getByTestId('user-admin').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Add user' }).isDisabled(), true);
    await page.getByRole('link', { name: 'Extensions' }).click();
    await page.getByTestId('extension-probe').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Remove' }).isDisabled(), true);
    // Builds go on: one started from the backup's UI runs on the agent it took over.
    await page.getByRole('link', { name: 'Builds' }).click();
    await page
      .getByLabel('Plan (YAML)')
      .fill('name: on-backup\ntasks:\n  hi:\n    run: echo ran on the backup\n');
    await page.getByRole('button', { name: 'Start build' }).click();
    await page
      .getByTestId('build-status')
      .filter({ hasText: 'succeeded' })
      .waitFor({ timeout: 60_000 });
    await page.getByTestId('log').filter({ hasText: 'ran on the backup' }).waitFor();
    // The banner is on every page.
    await page
      .getByRole('status')
      .filter({ hasText: /Backup coordinator — active/ })
      .waitFor();
    await page.context().close();
  });
});
