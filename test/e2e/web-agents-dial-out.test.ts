/**
 * The web UI for agents that dial out (issue 14) in a real browser (Debian's Chromium,
 * playwright-core) against a real coordinator over TLS and a real `muster agent --connect` on
 * loopback: Admin › Join tokens creates a token and shows it and its command once; the agent
 * started with the token shown waits on the Agents page ("pending approval", "dials out", its
 * machine's facts; a viewer cannot approve it), an admin approves it there and the row turns
 * connected without a reload; the token, used once, is revoked from the page and leaves the list
 * while the agent keeps working.
 * MUSTER_SCREENSHOTS=DIR saves the pages as PNGs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { AgentView, JoinTokenView } from '../../src/api/views/agents.js';
import { cleanup, startDialingAgent, waitFor } from '../helpers/agent-process.js';
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
import { FAST } from '../helpers/ha.js';

const TOKEN = /^mjt_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/;

let primary: StartedCoordinator;
let browser: Browser;
const newPage = () => openPage(browser);

before(async () => {
  browser = await launchBrowser();
  primary = await startCoordinator({ tls: true, args: FAST });
});

after(async () => {
  await browser?.close();
  await killCoordinators();
  await cleanup();
});

async function agents(): Promise<AgentView[]> {
  const response = await primary.api<AgentView[]>('GET', '/agents');
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body;
}

async function tokens(): Promise<JoinTokenView[]> {
  const response = await primary.api<JoinTokenView[]>('GET', '/join-tokens');
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body;
}

/** Follows the navigation's link to a page. */
async function go(page: Page, title: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: title }).click();
}

/** The text of a test id's element, trimmed. */
async function textOf(page: Page, testId: string): Promise<string> {
  return ((await page.getByTestId(testId).textContent()) ?? '').trim();
}

describe('web UI for agents that dial out', () => {
  it('creates a join token, approves the agent that joins with it, revokes the token', async () => {
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await go(page, 'Join tokens');
    await page.getByText('No join tokens.').waitFor();

    await page.getByLabel(/^Labels the agents get/).fill('outside, lab-3');
    await page.getByLabel('Expires').selectOption('7d');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByRole('status').filter({ hasText: 'created: copy it below' }).waitFor();
    const secret = await textOf(page, 'new-token-secret');
    const id = TOKEN.exec(secret)?.[1];
    assert.ok(id, `a join token is shown: ${secret}`);
    assert.equal(
      await textOf(page, 'new-token-command'),
      `muster agent --connect ${primary.url} --join-token ${secret}`,
    );
    const row = page.getByTestId(`token-${id}`);
    await row.waitFor();
    const listed = (await row.innerText()).replace(/\s+/g, ' ');
    for (const words of ['outside, lab-3', 'wait for approval', 'admin'])
      assert.ok(listed.includes(words), `${words} in: ${listed}`);
    assert.equal(await textOf(page, `uses-${id}`), '0');
    await shot(page, 'join-tokens');

    // What the form sent is what the coordinator keeps: labels, approval, seven days.
    const [kept] = await tokens();
    assert.deepEqual(kept?.labels, ['outside', 'lab-3']);
    assert.equal(kept?.autoApprove, false);
    const days = (Date.parse(kept?.expiresAt ?? '') - Date.parse(kept?.createdAt ?? '')) / 864e5;
    assert.ok(Math.abs(days - 7) < 0.01, `expires in ${days} days`);

    // Shown once: back on the page, the token is listed and its secret is nowhere.
    await go(page, 'Agents');
    await page.getByRole('heading', { name: 'Agents' }).waitFor();
    await go(page, 'Join tokens');
    await row.waitFor();
    assert.equal(await page.getByTestId('new-token').count(), 0);
    assert.ok(!(await page.content()).includes(secret.slice(-43)), 'the secret is not shown again');

    // The agent started with the token shown waits for approval on the Agents page.
    // cleanup() in after() stops it.
    await startDialingAgent(primary.url, { joinToken: secret });
    let joined: AgentView | undefined;
    await waitFor(
      async () => {
        joined = (await agents()).find((a) => a.status === 'pending');
        return joined !== undefined;
      },
      30_000,
      'the agent to join',
    );
    const name = joined!.name;
    await go(page, 'Agents');
    const agentRow = page.getByTestId(`agent-${name}`);
    await agentRow.locator('.pill.pending').filter({ hasText: 'pending approval' }).waitFor();
    await agentRow.getByText('dials out', { exact: true }).waitFor();
    const shown = (await agentRow.innerText()).replace(/\s+/g, ' ');
    assert.ok(shown.includes(joined!.address), `its address ${joined!.address} in: ${shown}`);
    assert.match(await textOf(page, `facts-${name}`), /^linux\/\S+ · \d+ cores? · [\d.]+ GiB$/);
    await shot(page, 'agents-pending');

    // A viewer sees it waiting, cannot approve it and has no Join tokens page.
    const created = await primary.api('POST', '/users', {
      name: 'vic',
      role: 'viewer',
      password: 'vic-password-1',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const viewer = await newPage();
    await logIn(viewer, primary.url, 'vic-password-1', 'vic');
    await viewer.getByText('(viewer)').waitFor();
    assert.equal(await viewer.getByRole('link', { name: 'Join tokens', exact: true }).count(), 0);
    await go(viewer, 'Agents');
    const viewerRow = viewer.getByTestId(`agent-${name}`);
    await viewerRow.getByText('pending approval').waitFor();
    assert.equal(await viewerRow.getByRole('button', { name: 'Approve' }).isDisabled(), true);
    await viewer.context().close();

    // Approved in the UI, the row turns connected without a reload.
    await agentRow.getByRole('button', { name: 'Approve' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: `${name} approved` })
      .waitFor();
    await agentRow.locator('.pill.connected').waitFor({ timeout: 45_000 });
    assert.equal(await agentRow.getByRole('button', { name: 'Approve' }).count(), 0);
    const [approved] = await agents();
    assert.equal(approved?.approved, true);
    assert.ok(approved?.labels.includes('outside'), approved?.labels.join());

    // Used once; revoked from the page, it leaves the list; the agent that joined keeps working.
    await go(page, 'Join tokens');
    await page.getByTestId(`uses-${id}`).filter({ hasText: /^1$/ }).waitFor();
    page.once('dialog', (dialog) => void dialog.accept());
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: `Token ${id} revoked.` })
      .waitFor();
    await row.waitFor({ state: 'detached' });
    await page.getByText('No join tokens.').waitFor();
    assert.deepEqual(await tokens(), []);
    assert.equal((await agents()).find((a) => a.name === name)?.status, 'connected');
    await page.context().close();
  });

  it('creates a token that approves at once and never expires', async () => {
    const page = await newPage();
    await logIn(page, primary.url, ADMIN_PASSWORD);
    await go(page, 'Join tokens');
    await page.getByRole('heading', { name: 'Join tokens' }).waitFor();
    await page.getByLabel('Expires').selectOption('never');
    await page.getByLabel(/work at once/).check();
    await page.getByRole('button', { name: 'Create token' }).click();
    const id = TOKEN.exec(await textOf(page, 'new-token-secret'))?.[1];
    assert.ok(id);
    const row = page.getByTestId(`token-${id}`);
    await row.waitFor();
    const listed = (await row.innerText()).replace(/\s+/g, ' ');
    for (const words of ['work at once', 'never'])
      assert.ok(listed.includes(words), `${words} in: ${listed}`);
    // "Done" hides the token for good.
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByTestId('new-token').waitFor({ state: 'detached' });
    const kept = (await tokens()).find((t) => t.id === id);
    assert.equal(kept?.autoApprove, true);
    assert.equal(kept?.expiresAt, null);
    assert.deepEqual(kept?.labels, []);
    assertNoCspViolations();
    await page.context().close();
  });
});
