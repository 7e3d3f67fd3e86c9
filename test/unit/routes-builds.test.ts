/**
 * The build routes with inject(): the real build service (builds/builds.ts) over a temp store,
 * with a fake scheduler, fake blobs and the HA status a test needs. What a client sees: status
 * codes, error codes and JSON bodies.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import { backupHa, testApi, type TestApi } from '../helpers/api-context.js';
import type { BuildView } from '../../src/api/views/builds.js';
import { MusterError } from '../../src/protocol/errors.js';

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

const PLAN = `name: hello
tasks:
  compile:
    run: cc -c a.c -o a.o
    inputs: [a.c]
    outputs: [a.o]
  link:
    run: cc a.o -o hello
    needs: [compile]
`;
const FILE = { path: 'a.c', sha256: sha('int main;'), size: 9, mode: 0o644 };

interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

describe('routes: builds', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('submits a build whose inputs were uploaded: 201, the view, and the scheduler told', async () => {
    api = await testApi();
    api.present.add(FILE.sha256);
    const { status, body } = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan: PLAN, files: [FILE] },
    });
    assert.equal(status, 201);
    const view = body as BuildView;
    assert.equal(view.name, 'hello');
    assert.equal(view.status, 'queued');
    assert.equal(view.createdBy, 'admin');
    assert.deepEqual(
      view.tasks.map((t) => [t.name, t.needs]),
      [
        ['compile', []],
        ['link', ['compile']],
      ],
    );
    assert.deepEqual(api.scheduler.submitted, [view.id]);
    const shown = await api.call('GET', `/api/v1/builds/${view.id}`, { token: api.viewer });
    assert.equal(shown.status, 200);
    assert.deepEqual(shown.body, view);
    const list = await api.call('GET', '/api/v1/builds', { token: api.viewer });
    assert.equal(list.status, 200);
    assert.deepEqual(
      (list.body as { id: number; counts: { total: number } }[]).map((b) => [b.id, b.counts.total]),
      [[view.id, 2]],
    );
  });

  it('answers a plan with errors with 400 PLAN_INVALID and every problem', async () => {
    api = await testApi();
    const { status, body } = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan: 'tasks:\n  a:\n    run: x\n    needs: [b]\n    timeout: soon\n', files: [] },
    });
    assert.equal(status, 400);
    const { error } = body as ErrorBody;
    assert.equal(error.code, 'PLAN_INVALID');
    const problems = error.details?.problems;
    assert.ok(Array.isArray(problems), JSON.stringify(error));
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.match(problems.join('\n'), /"b"/);
    assert.match(problems.join('\n'), /timeout/);
    assert.deepEqual(api.scheduler.submitted, []);
  });

  it('refuses inputs that were not uploaded: 400 BLOB_NOT_FOUND naming them', async () => {
    api = await testApi();
    const { status, body } = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan: PLAN, files: [FILE] },
    });
    assert.equal(status, 400);
    const { error } = body as ErrorBody;
    assert.equal(error.code, 'BLOB_NOT_FOUND');
    assert.deepEqual(error.details?.missing, [FILE.sha256]);
    assert.deepEqual(api.store.listBuilds({}), []);
  });

  it('refuses an input path outside the plan directory and one listed twice', async () => {
    api = await testApi();
    api.present.add(FILE.sha256);
    const outside = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan: PLAN, files: [FILE, { ...FILE, path: '../etc/passwd' }] },
    });
    assert.equal(outside.status, 400);
    assert.equal((outside.body as ErrorBody).error.code, 'INVALID_PATH');
    const twice = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan: PLAN, files: [FILE, FILE] },
    });
    assert.equal(twice.status, 400);
    assert.equal((twice.body as ErrorBody).error.code, 'VALIDATION_FAILED');
    assert.match((twice.body as ErrorBody).error.message, /a\.c is listed twice/);
  });

  it('lets a viewer look but not run: 403 FORBIDDEN; without a token 401', async () => {
    api = await testApi();
    api.present.add(FILE.sha256);
    const { status, body } = await api.call('POST', '/api/v1/builds', {
      token: api.viewer,
      body: { plan: PLAN, files: [FILE] },
    });
    assert.equal(status, 403);
    assert.equal((body as ErrorBody).error.code, 'FORBIDDEN');
    assert.match((body as ErrorBody).error.message, /viewer is a viewer/);
    const anonymous = await api.call('GET', '/api/v1/builds');
    assert.equal(anonymous.status, 401);
    assert.equal((anonymous.body as ErrorBody).error.code, 'UNAUTHORIZED');
  });

  it('a backup standing by refuses builds with 503 STANDBY naming its primary; an active one runs them', async () => {
    api = await testApi(() => ({ ha: backupHa('backup-standby', 'https://primary.test:8000') }));
    api.present.add(FILE.sha256);
    const refused = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan: PLAN, files: [FILE] },
    });
    assert.equal(refused.status, 503);
    const { error } = refused.body as ErrorBody;
    assert.equal(error.code, 'STANDBY');
    assert.match(error.message, /primary \(https:\/\/primary\.test:8000\)/);
    await api.close();

    api = await testApi(() => ({ ha: backupHa('backup-active', 'https://primary.test:8000') }));
    api.present.add(FILE.sha256);
    const accepted = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan: PLAN, files: [FILE] },
    });
    assert.equal(accepted.status, 201);
  });

  it('cancels a build that has not finished, leaves a finished one alone, 404 for none', async () => {
    api = await testApi();
    api.present.add(FILE.sha256);
    const submitted = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan: PLAN, files: [FILE] },
    });
    const id = (submitted.body as BuildView).id;
    const cancelled = await api.call('POST', `/api/v1/builds/${id}/cancel`, { token: api.admin });
    assert.equal(cancelled.status, 200);
    assert.equal((cancelled.body as BuildView).id, id);
    assert.deepEqual(api.scheduler.cancelled, [id]);

    api.store.setBuildStatus(id, 'succeeded');
    const again = await api.call('POST', `/api/v1/builds/${id}/cancel`, { token: api.admin });
    assert.equal(again.status, 200);
    assert.equal((again.body as BuildView).status, 'succeeded');
    assert.deepEqual(api.scheduler.cancelled, [id]);

    const viewer = await api.call('POST', `/api/v1/builds/${id}/cancel`, { token: api.viewer });
    assert.equal(viewer.status, 403);
    for (const missing of ['999', 'abc']) {
      const none = await api.call('POST', `/api/v1/builds/${missing}/cancel`, {
        token: api.admin,
      });
      assert.equal(none.status, 404);
      assert.equal((none.body as ErrorBody).error.code, 'NOT_FOUND');
    }
  });

  it('deletes an ended build for an admin (204, an audit row); refuses a viewer, a running build, none', async () => {
    api = await testApi();
    api.present.add(FILE.sha256);
    const submit = async (): Promise<number> => {
      const submitted = await api!.call('POST', '/api/v1/builds', {
        token: api!.admin,
        body: { plan: PLAN, files: [FILE] },
      });
      return (submitted.body as BuildView).id;
    };
    const ended = await submit();
    const other = await submit();
    api.store.setBuildStatus(ended, 'failed', { finishedAt: new Date().toISOString() });

    const viewer = await api.call('DELETE', `/api/v1/builds/${ended}`, { token: api.viewer });
    assert.equal(viewer.status, 403);
    assert.equal((viewer.body as ErrorBody).error.code, 'FORBIDDEN');
    for (const status of ['queued', 'running'] as const) {
      api.store.setBuildStatus(other, status);
      const active = await api.call('DELETE', `/api/v1/builds/${other}`, { token: api.admin });
      assert.equal(active.status, 409);
      const { error } = active.body as ErrorBody;
      assert.equal(error.code, 'BUILD_NOT_ENDED');
      assert.match(error.message, new RegExp(`muster builds cancel ${other}`));
    }
    assert.equal(api.store.audit.list({}).length, 0, 'a refused deletion leaves no audit row');

    const deleted = await api.call('DELETE', `/api/v1/builds/${ended}`, { token: api.admin });
    assert.equal(deleted.status, 204);
    const gone = await api.call('GET', `/api/v1/builds/${ended}`, { token: api.viewer });
    assert.equal(gone.status, 404);
    const kept = await api.call('GET', `/api/v1/builds/${other}`, { token: api.viewer });
    assert.equal(kept.status, 200);
    const [row, ...more] = api.store.audit.list({});
    assert.equal(more.length, 0);
    assert.equal(row?.action, 'build.delete');
    assert.equal(row?.actor, 'admin');
    assert.equal(row?.target, String(ended));
    assert.ok(row?.ip);
    assert.deepEqual(row?.details, { name: 'hello', status: 'failed', createdBy: 'admin' });

    for (const missing of [String(ended), '999', 'abc']) {
      const none = await api.call('DELETE', `/api/v1/builds/${missing}`, { token: api.admin });
      assert.equal(none.status, 404);
      assert.equal((none.body as ErrorBody).error.code, 'NOT_FOUND');
    }
  });

  it('reads a log page, NOT_FOUND for a missing build before its query is checked', async () => {
    api = await testApi();
    api.present.add(FILE.sha256);
    const submitted = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan: PLAN, files: [FILE] },
    });
    const id = (submitted.body as BuildView).id;
    const empty = await api.call('GET', `/api/v1/builds/${id}/logs?after=5`, { token: api.viewer });
    assert.equal(empty.status, 200);
    assert.deepEqual(empty.body, { chunks: [], next: 5 });
    const bad = await api.call('GET', `/api/v1/builds/${id}/logs?after=-1`, { token: api.viewer });
    assert.equal(bad.status, 400);
    assert.equal((bad.body as ErrorBody).error.code, 'VALIDATION_FAILED');
    const missing = await api.call('GET', '/api/v1/builds/999/logs?after=-1', {
      token: api.viewer,
    });
    assert.equal(missing.status, 404);
    const attempts = await api.call('GET', `/api/v1/builds/${id}/attempts`, { token: api.viewer });
    assert.deepEqual(attempts, { status: 200, body: [] });
  });

  it('maps what the build service throws: a MusterError by its code, anything else to 500 INTERNAL', async () => {
    const fail = (err: Error) => () => {
      throw err;
    };
    const unused = fail(new Error('not used by this test'));
    api = await testApi(() => ({
      builds: {
        submit: unused,
        cancel: unused,
        delete: unused,
        get: fail(new MusterError('STORAGE_ERROR', 'the disk is full')),
        list: fail(new Error('a bug')),
        logs: unused,
        attempts: unused,
      },
    }));
    const storage = await api.call('GET', '/api/v1/builds/1', { token: api.viewer });
    assert.deepEqual(storage, {
      status: 507,
      body: { error: { code: 'STORAGE_ERROR', message: 'the disk is full' } },
    });
    const bug = await api.call('GET', '/api/v1/builds', { token: api.viewer });
    assert.deepEqual(bug, {
      status: 500,
      body: { error: { code: 'INTERNAL', message: 'internal error; see the coordinator log' } },
    });
  });
});
