/**
 * High availability attacked from the network, against real processes over TLS: anyone may
 * register as a "backup" (no join token), so a registration must grant nothing and cause
 * nothing. A fake backup (a plain HTTP server this test runs, recording every request it gets)
 * registers, heartbeats, and waits to be asked for its state so it could answer "active, with
 * history to hand back"; the primary must never call it, tell it no ids or state, cap and
 * rate-limit registrations, keep its engine and term, and go on running builds. Instance and
 * cluster ids are shown to admins only, and the instance key to no one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { StatusView } from '../../src/api/views/status.js';
import { cleanup, startAgent, type StartedAgent } from '../helpers/agent-process.js';
import {
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, status, submit } from '../helpers/ha.js';

let primary: StartedCoordinator;
let agent: StartedAgent;
let fake: Server;
let fakeUrl = '';
const received: string[] = [];
const secret = randomBytes(32).toString('base64url');

before(async () => {
  fake = createServer((request, response) => {
    received.push(`${request.method} ${request.url}`);
    // What a hostile backup would say to get a failback: active, with history to hand back.
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ state: 'active', term: 2 ** 31 - 1, history: true }));
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  const address = fake.address();
  fakeUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  primary = await startCoordinator({ tls: true, args: FAST });
  agent = await startAgent();
  await primary.addAgent('a1', agent);
});

after(async () => {
  await new Promise((resolve) => fake.close(resolve));
  await killCoordinators();
  await cleanup();
});

async function ha<T>(
  method: string,
  path: string,
  options: { body?: unknown; name?: string } = {},
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${primary.url}/api/v1/ha/${path}`, {
    method,
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.name === undefined
        ? {}
        : { authorization: `Bearer ${secret}`, 'x-muster-backup': options.name }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}

function registration(name: string): object {
  return { name, url: fakeUrl, fingerprint: null, certificate: null, secret };
}

describe('an unselected registration gets nothing and causes nothing', () => {
  it('answers a registration with nothing but "not selected"', async () => {
    const registered = await ha<Record<string, unknown>>('POST', 'register', {
      body: registration('evil'),
    });
    assert.equal(registered.status, 200, JSON.stringify(registered.body));
    assert.deepEqual(registered.body, { selected: false });
  });

  it("tells an unselected backup's heartbeat no ids, no term and no stream", async () => {
    const beat = await ha<Record<string, unknown>>('GET', 'heartbeat', { name: 'evil' });
    assert.equal(beat.status, 200);
    assert.equal(beat.body.selected, false);
    for (const field of ['instanceId', 'term', 'stream', 'lastSeq'])
      assert.equal(beat.body[field], undefined, `${field} is not told`);
    const snapshot = await ha<{ error: { code: string } }>('GET', 'snapshot', { name: 'evil' });
    assert.equal(snapshot.body.error.code, 'NOT_SELECTED');
  });

  it('never calls it, so its "history" is never taken; the term and the agents stay', async () => {
    const before = await status(primary);
    // Ten of the primary's heartbeats (300 ms) and then some.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    assert.deepEqual(received, [], 'the primary made no request to an unselected backup');
    const afterwards = await status(primary);
    assert.equal(afterwards.term, before.term);
    assert.equal(afterwards.agents.connected, 1);
    assert.ok(
      !primary.logs.some((l) => typeof l.msg === 'string' && /taking it back/.test(l.msg)),
      'no failback was attempted',
    );
  });

  it('lists it as registered and unselected, with health from its own contact', async () => {
    const backups = await primary.api<{ name: string; selected: boolean; health: string }[]>(
      'GET',
      '/backups',
    );
    const evil = backups.body.find((b) => b.name === 'evil');
    assert.equal(evil?.selected, false);
    assert.equal(evil?.health, 'healthy');
  });

  it('rate-limits new registrations: 429 RATE_LIMITED', async () => {
    const answers: number[] = [];
    for (let i = 0; i < 12; i++)
      answers.push((await ha('POST', 'register', { body: registration(`flood-${i}`) })).status);
    assert.ok(answers.includes(429), `some were refused: ${answers.join(' ')}`);
    assert.ok(answers.filter((s) => s === 200).length <= 10);
    // A registered backup re-registering (as backups do on every heartbeat) is not a new one.
    assert.equal((await ha('POST', 'register', { body: registration('evil') })).status, 200);
  });

  it('still runs builds for its users', async () => {
    const build = await submit(primary, 'tasks:\n  hello:\n    uses: core/noop\n');
    assert.equal((await primary.waitForBuild(build.id)).status, 'succeeded');
  });
});

describe('instance and cluster ids are for admins; the instance key for no one', () => {
  let viewerToken = '';

  before(async () => {
    const created = await primary.api('POST', '/users', {
      name: 'vera',
      password: 'viewer-password-123',
      role: 'viewer',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const login = await fetch(`${primary.url}/api/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'vera', password: 'viewer-password-123' }),
    });
    viewerToken = ((await login.json()) as { token: string }).token;
  });

  async function asViewer<T>(path: string): Promise<{ status: number; body: T }> {
    const response = await fetch(`${primary.url}/api/v1${path}`, {
      headers: { authorization: `Bearer ${viewerToken}` },
    });
    return { status: response.status, body: (await response.json()) as T };
  }

  it('shows the instance id in /status to admins only', async () => {
    assert.match((await status(primary)).instanceId ?? '', /^[0-9a-f-]{36}$/);
    const seen = await asViewer<StatusView>('/status');
    assert.equal(seen.status, 200);
    assert.equal(seen.body.instanceId, undefined);
  });

  it('leaves the ids out of the settings a viewer reads, and the key out of everyone’s', async () => {
    const admin = (await primary.api<Record<string, unknown>>('GET', '/settings')).body;
    assert.equal(typeof admin['Agent.InstanceId'], 'string');
    assert.equal(admin['Agent.InstanceKey'], undefined);
    const viewer = await asViewer<Record<string, unknown>>('/settings');
    assert.equal(viewer.body['Agent.InstanceId'], undefined);
    assert.equal(viewer.body['Agent.InstanceKey'], undefined);
    assert.equal((await asViewer('/settings/Agent.InstanceId')).status, 403);
    assert.equal((await primary.api('GET', '/settings/Agent.InstanceKey')).status, 404);
    const definitions = await asViewer<{ key: string; value: unknown }[]>('/setting-definitions');
    assert.equal(definitions.body.find((d) => d.key === 'Agent.InstanceId')?.value, null);
  });
});
