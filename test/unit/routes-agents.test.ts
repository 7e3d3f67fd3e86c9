/**
 * The agent routes with inject() and a fake agent directory: list, show, add (fingerprint rules),
 * change (the scheduler asked to schedule again), remove; viewers look only, a backup refuses
 * changes (READ_ONLY).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { backupHa, testApi, type TestApi } from '../helpers/api-context.js';
import type { AgentView } from '../../src/api/views/agents.js';

const FINGERPRINT = 'ab'.repeat(32);

interface ErrorBody {
  error: { code: string; message: string };
}

describe('routes: agents', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('adds an agent to the store and the pool, lists, changes and removes it', async () => {
    api = await testApi();
    const added = await api.call('POST', '/api/v1/agents', {
      token: api.admin,
      body: {
        name: 'build-1',
        address: '10.0.0.5:7420',
        accessKey: 'k'.repeat(32),
        fingerprint: FINGERPRINT,
        labels: ['linux'],
      },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const view = added.body as AgentView;
    assert.equal(view.name, 'build-1');
    assert.equal(view.address, '10.0.0.5:7420');
    assert.deepEqual(view.labels, ['linux']);
    assert.equal(view.fingerprint, FINGERPRINT);
    assert.equal(api.store.getAgent('build-1')?.host, '10.0.0.5');

    const list = await api.call('GET', '/api/v1/agents', { token: api.viewer });
    assert.equal(list.status, 200);
    assert.deepEqual(
      (list.body as AgentView[]).map((a) => a.name),
      ['build-1'],
    );
    const shown = await api.call('GET', '/api/v1/agents/build-1', { token: api.viewer });
    assert.deepEqual(shown, { status: 200, body: view });

    const changed = await api.call('PATCH', '/api/v1/agents/build-1', {
      token: api.admin,
      body: { labels: ['linux', 'big'], slots: 4 },
    });
    assert.equal(changed.status, 200);
    assert.deepEqual((changed.body as AgentView).labels, ['linux', 'big']);
    assert.equal((changed.body as AgentView).slots, 4);
    assert.equal(api.scheduler.scheduled, 1);

    const removed = await api.call('DELETE', '/api/v1/agents/build-1', { token: api.admin });
    assert.equal(removed.status, 204);
    assert.equal(api.store.getAgent('build-1'), undefined);
    assert.deepEqual(api.agents.calls, ['add build-1', 'update build-1', 'remove build-1']);
    const gone = await api.call('GET', '/api/v1/agents/build-1', { token: api.viewer });
    assert.equal(gone.status, 404);
    assert.equal((gone.body as ErrorBody).error.code, 'NOT_FOUND');
  });

  it('wants a fingerprint over TLS, of SHA-256 length; none with tls: false', async () => {
    api = await testApi();
    const base = { name: 'a', address: 'host:7420', accessKey: 'k'.repeat(32) };
    const none = await api.call('POST', '/api/v1/agents', { token: api.admin, body: base });
    assert.equal(none.status, 400);
    assert.match((none.body as ErrorBody).error.message, /fingerprint/);
    const short = await api.call('POST', '/api/v1/agents', {
      token: api.admin,
      body: { ...base, fingerprint: 'ab:cd' },
    });
    assert.equal(short.status, 400);
    assert.match((short.body as ErrorBody).error.message, /SHA-256/);
    const plain = await api.call('POST', '/api/v1/agents', {
      token: api.admin,
      body: { ...base, tls: false },
    });
    assert.equal(plain.status, 201);
    assert.equal((plain.body as AgentView).tls, false);
    const twice = await api.call('POST', '/api/v1/agents', {
      token: api.admin,
      body: { ...base, tls: false },
    });
    assert.equal(twice.status, 409);
    assert.equal((twice.body as ErrorBody).error.code, 'CONFLICT');
    assert.deepEqual(api.agents.calls, ['add a']);
  });

  it('lets viewers list only, and a backup change nothing', async () => {
    api = await testApi();
    const body = { name: 'a', address: 'host:7420', accessKey: 'k'.repeat(32), tls: false };
    const viewer = await api.call('POST', '/api/v1/agents', { token: api.viewer, body });
    assert.equal(viewer.status, 403);
    assert.equal((viewer.body as ErrorBody).error.code, 'FORBIDDEN');
    await api.close();

    api = await testApi(() => ({ ha: backupHa('backup-active', 'https://primary.test') }));
    const refused = await api.call('POST', '/api/v1/agents', { token: api.admin, body });
    assert.equal(refused.status, 403);
    assert.equal((refused.body as ErrorBody).error.code, 'READ_ONLY');
    assert.match(
      (refused.body as ErrorBody).error.message,
      /on the primary \(https:\/\/primary\.test\)/,
    );
    const removed = await api.call('DELETE', '/api/v1/agents/a', { token: api.admin });
    assert.equal(removed.status, 403);
    assert.deepEqual(api.agents.calls, []);
    const list = await api.call('GET', '/api/v1/agents', { token: api.viewer });
    assert.deepEqual(list, { status: 200, body: [] });
  });
});
