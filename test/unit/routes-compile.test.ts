/**
 * The compile-session routes with inject(): the real session service (compile/sessions.ts) over
 * a temp store. What `muster build` sees: status codes, error codes, the session view, and the
 * build view with its jobs (kind, summary, label, placement, cache).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { BuildView } from '../../src/api/views/builds.js';
import type { CompileSessionView } from '../../src/api/views/compile.js';
import type { AgentRow } from '../../src/coordinator/store/types.js';
import { MAX_OPEN_SESSIONS_PER_USER } from '../../src/coordinator/compile/sessions.js';
import { backupHa, testApi, type TestApi } from '../helpers/api-context.js';

interface ErrorBody {
  error: { code: string; message: string };
}

const open = { command: 'make -j4', cwd: '/home/ada/src', host: 'laptop' };
const record = {
  label: 'gcc -O2 -c lapi.c -o lapi.o',
  placement: 'local',
  cache: 'miss',
  exitCode: 0,
  startedAt: Date.now(),
  durationMs: 120,
};
const summary = { jobs: 2, remote: 0, local: 1, cacheHits: 1, fallbacks: 0 };

describe('routes: compile sessions', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('open a session, take records, close it: the build shows the jobs and the summary', async () => {
    api = await testApi();
    const agent: AgentRow = {
      name: 'a1',
      host: '10.0.0.2',
      port: 7420,
      accessKey: 'k'.repeat(16),
      fingerprint: null,
      tls: true,
      labels: [],
      slots: 4,
      cores: null,
      createdAt: '2030-01-01T00:00:00.000Z',
      agentId: null,
      approved: true,
      facts: null,
    };
    api.agents.add(agent);
    const opened = await api.call('POST', '/api/v1/compile-sessions', {
      token: api.admin,
      body: { ...open, bootId: 'b'.repeat(64) },
    });
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const session = opened.body as CompileSessionView;
    // The fake pool's agents are still connecting: no capacity yet.
    assert.deepEqual(session.capacity, { agents: [] });

    const shown = await api.call('GET', `/api/v1/builds/${session.buildId}`, { token: api.viewer });
    const running = shown.body as BuildView;
    assert.deepEqual(
      [running.kind, running.status, running.name, running.tasks.length],
      ['compile', 'running', 'make -j4', 0],
    );
    assert.deepEqual(running.summary, { jobs: 0, remote: 0, local: 0, cacheHits: 0, fallbacks: 0 });

    // Its key: what the client names it by (the build id would change at a renumbering failback).
    assert.match(session.session, /^[0-9a-f]{32}$/);
    const url = `/api/v1/compile-sessions/${session.session}`;
    const records = await api.call('POST', `${url}/records`, {
      token: api.admin,
      body: {
        records: [
          record,
          { ...record, placement: 'cache', cache: 'hit', label: 'gcc -c lua.c' },
          { ...record, exitCode: 1, fallback: 'agent-lost', label: 'gcc -c bad.c' },
        ],
      },
    });
    assert.equal(records.status, 204, JSON.stringify(records.body));
    const heartbeat = await api.call('POST', `${url}/records`, {
      token: api.admin,
      body: { records: [] },
    });
    assert.equal(heartbeat.status, 204);
    const during = (
      await api.call('GET', `/api/v1/builds/${session.buildId}`, { token: api.viewer })
    ).body as BuildView;
    assert.deepEqual(during.summary, { jobs: 3, remote: 0, local: 2, cacheHits: 1, fallbacks: 1 });
    assert.deepEqual(
      during.tasks.map((t) => [
        t.name,
        t.status,
        t.agent,
        t.placement,
        t.cache,
        t.fallback,
        t.label,
      ]),
      [
        ['job-1', 'succeeded', 'local', 'local', 'miss', null, 'gcc -O2 -c lapi.c -o lapi.o'],
        ['job-2', 'succeeded', 'cache', 'cache', 'hit', null, 'gcc -c lua.c'],
        ['job-3', 'failed', 'local', 'local', 'miss', 'agent-lost', 'gcc -c bad.c'],
      ],
    );
    // The client's times, clamped to the session's window (opened, now).
    const duration = during.tasks[0]?.durationMs;
    assert.ok(duration !== null && duration !== undefined && duration >= 0 && duration <= 120);

    const closed = await api.call('POST', `${url}/close`, {
      token: api.admin,
      body: { exitCode: 0, summary },
    });
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    const view = closed.body as BuildView;
    assert.deepEqual([view.status, view.error, view.kind], ['succeeded', null, 'compile']);
    assert.deepEqual(view.summary, summary);
    assert.equal(view.tasks.length, 3);

    // Plan builds say what they are, and have no summary and no compile fields.
    const list = await api.call('GET', '/api/v1/builds', { token: api.viewer });
    assert.deepEqual(
      (list.body as { id: number; kind: string }[]).map((b) => [b.id, b.kind]),
      [[session.buildId, 'compile']],
    );
  });

  it('refuse records and a close once the session has ended: 409 COMPILE_SESSION_CLOSED', async () => {
    api = await testApi();
    const { body } = await api.call('POST', '/api/v1/compile-sessions', {
      token: api.admin,
      body: open,
    });
    const url = `/api/v1/compile-sessions/${(body as CompileSessionView).buildId}`;
    const failed = await api.call('POST', `${url}/close`, {
      token: api.admin,
      body: { exitCode: 2, summary },
    });
    assert.deepEqual(
      [(failed.body as BuildView).status, (failed.body as BuildView).error],
      ['failed', 'the command exited with 2'],
    );
    for (const [path, payload] of [
      ['records', { records: [record] }],
      ['close', { exitCode: 0, summary }],
    ] as const) {
      const late = await api.call('POST', `${url}/${path}`, { token: api.admin, body: payload });
      assert.equal(late.status, 409);
      assert.equal((late.body as ErrorBody).error.code, 'COMPILE_SESSION_CLOSED');
    }
  });

  it('check who calls and what they send', async () => {
    api = await testApi();
    const asViewer = await api.call('POST', '/api/v1/compile-sessions', {
      token: api.viewer,
      body: open,
    });
    assert.equal(asViewer.status, 403);
    const anonymous = await api.call('POST', '/api/v1/compile-sessions', { body: open });
    assert.equal(anonymous.status, 401);
    const unknownField = await api.call('POST', '/api/v1/compile-sessions', {
      token: api.admin,
      body: { ...open, extra: 1 },
    });
    assert.equal((unknownField.body as ErrorBody).error.code, 'VALIDATION_FAILED');

    const { body } = await api.call('POST', '/api/v1/compile-sessions', {
      token: api.admin,
      body: open,
    });
    const url = `/api/v1/compile-sessions/${(body as CompileSessionView).buildId}`;
    const tooMany = await api.call('POST', `${url}/records`, {
      token: api.admin,
      body: { records: Array.from({ length: 1001 }, () => record) },
    });
    assert.equal(tooMany.status, 400);
    const badRecord = await api.call('POST', `${url}/records`, {
      token: api.admin,
      body: { records: [{ ...record, placement: 'remote' }] },
    });
    assert.equal((badRecord.body as ErrorBody).error.code, 'VALIDATION_FAILED');
    const noSession = await api.call('POST', '/api/v1/compile-sessions/9999/records', {
      token: api.admin,
      body: { records: [] },
    });
    assert.equal(noSession.status, 404);

    // Another builder may not report to it (they may cancel it, as any build).
    await api.call('POST', '/api/v1/users', {
      token: api.admin,
      body: { name: 'bob', password: 'correct horse battery', role: 'admin' },
    });
    const login = await api.call('POST', '/api/v1/login', {
      body: { user: 'bob', password: 'correct horse battery' },
    });
    const bob = (login.body as { token: string }).token;
    const theirs = await api.call('POST', `${url}/records`, { token: bob, body: { records: [] } });
    assert.equal(theirs.status, 403);
  });

  it(`allow ${MAX_OPEN_SESSIONS_PER_USER} open sessions per user: then 429 TOO_MANY_COMPILE_SESSIONS`, async () => {
    api = await testApi();
    for (let i = 0; i < MAX_OPEN_SESSIONS_PER_USER; i++) {
      const ok = await api.call('POST', '/api/v1/compile-sessions', {
        token: api.admin,
        body: open,
      });
      assert.equal(ok.status, 201);
    }
    const refused = await api.call('POST', '/api/v1/compile-sessions', {
      token: api.admin,
      body: open,
    });
    assert.equal(refused.status, 429);
    assert.equal((refused.body as ErrorBody).error.code, 'TOO_MANY_COMPILE_SESSIONS');
  });

  it('a backup standing by refuses sessions with 503 STANDBY; an active one opens them', async () => {
    api = await testApi(() => ({ ha: backupHa('backup-standby', 'https://primary.test:8000') }));
    const standby = await api.call('POST', '/api/v1/compile-sessions', {
      token: api.admin,
      body: open,
    });
    assert.equal(standby.status, 503);
    assert.equal((standby.body as ErrorBody).error.code, 'STANDBY');
    await api.close();
    api = await testApi(() => ({ ha: backupHa('backup-active', 'https://primary.test:8000') }));
    const active = await api.call('POST', '/api/v1/compile-sessions', {
      token: api.admin,
      body: open,
    });
    assert.equal(active.status, 201);
  });
});
