import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { Plan, PlanTask } from '../../src/api/plan/types.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import type { ErrorCode } from '../../src/protocol/errors.js';
import { MusterError } from '../../src/protocol/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const dbFile = () => join(dir, `db-${++counter}.sqlite`);

/** The stores' clock: tests set `time` to control createdAt/addedAt stamps. */
const T0 = '2030-01-01T00:00:00.000Z';
let time = T0;
const clock = () => new Date(time);

const open: Store[] = [];
afterEach(() => {
  time = T0;
  for (const store of open.splice(0)) store.close();
});

function memoryStore(): Store {
  const store = openSqliteStore(':memory:', { now: clock });
  open.push(store);
  return store;
}

function task(name: string, needs: string[] = []): PlanTask {
  return {
    name,
    extension: 'core',
    operation: 'run',
    input: { command: `echo ${name}` },
    inputs: ['src/**'],
    outputs: ['out/**'],
    needs,
    env: { A: '1' },
    timeoutMs: 60_000,
    retries: 1,
    requires: ['linux'],
  };
}

function plan(...names: string[]): Plan {
  return { name: 'demo', tasks: names.map((n) => task(n)) };
}

const files = [{ path: 'src/a.c', sha256: 'ab'.repeat(32), size: 3, mode: 0o644 }];

function code(expected: ErrorCode, pattern?: RegExp) {
  return (err: unknown) =>
    err instanceof MusterError &&
    err.code === expected &&
    (pattern === undefined || pattern.test(err.message));
}

describe('sqlite store: users and tokens', () => {
  it('creates, finds, lists, changes and deletes users', () => {
    const store = memoryStore();
    const ada = store.createUser('ada', 'admin', 'h1');
    assert.deepEqual(ada, {
      id: 1,
      name: 'ada',
      role: 'admin',
      passwordHash: 'h1',
      createdAt: T0,
    });
    store.createUser('bob', 'viewer', 'h2');
    assert.throws(() => store.createUser('ada', 'viewer', 'x'), code('CONFLICT', /"ada"/));

    assert.deepEqual(store.getUser('ada'), ada);
    assert.deepEqual(store.getUserById(ada.id), ada);
    assert.equal(store.getUser('nobody'), undefined);
    assert.equal(store.getUserById(99), undefined);
    assert.deepEqual(
      store.listUsers().map((u) => u.name),
      ['ada', 'bob'],
    );

    store.setPassword('ada', 'h3');
    store.setRole('ada', 'viewer');
    assert.equal(store.getUser('ada')?.passwordHash, 'h3');
    assert.equal(store.getUser('ada')?.role, 'viewer');
    assert.throws(() => store.setPassword('nobody', 'x'), code('NOT_FOUND', /"nobody"/));
    assert.throws(() => store.setRole('nobody', 'admin'), code('NOT_FOUND', /"nobody"/));

    assert.equal(store.deleteUser('bob'), true);
    assert.equal(store.deleteUser('bob'), false);
    assert.equal(store.getUser('bob'), undefined);
  });

  it('uses tokens until they expire, touching lastUsedAt', () => {
    const store = memoryStore();
    const user = store.createUser('ada', 'admin', 'h');
    const token = store.createToken(user.id, 'hash-1', '2030-06-01T00:00:00.000Z');
    assert.equal(token.userId, user.id);
    assert.equal(token.lastUsedAt, null);
    assert.throws(
      () => store.createToken(user.id, 'hash-1', '2031-01-01T00:00:00.000Z'),
      code('CONFLICT'),
    );
    assert.throws(
      () => store.createToken(999, 'hash-2', '2031-01-01T00:00:00.000Z'),
      code('NOT_FOUND'),
    );

    const used = store.useToken('hash-1', '2030-05-01T00:00:00.000Z');
    assert.deepEqual(used?.user, user);
    assert.equal(used?.token.lastUsedAt, '2030-05-01T00:00:00.000Z');
    assert.equal(used?.token.expiresAt, '2030-06-01T00:00:00.000Z');
    assert.equal(store.useToken('hash-1', '2030-06-01T00:00:00.000Z'), undefined, 'expired at');
    assert.equal(store.useToken('hash-1', '2030-07-01T00:00:00.000Z'), undefined, 'expired');
    assert.equal(store.useToken('no-such-hash', '2030-05-01T00:00:00.000Z'), undefined);
    // A use touches it again once the stamp is a minute old; uses within that minute keep it.
    assert.equal(
      store.useToken('hash-1', '2030-05-02T00:00:00.000Z')?.token.lastUsedAt,
      '2030-05-02T00:00:00.000Z',
    );
    assert.equal(
      store.useToken('hash-1', '2030-05-02T00:00:59.999Z')?.token.lastUsedAt,
      '2030-05-02T00:00:00.000Z',
    );
    assert.equal(
      store.useToken('hash-1', '2030-05-02T00:01:00.000Z')?.token.lastUsedAt,
      '2030-05-02T00:01:00.000Z',
    );

    store.createToken(user.id, 'hash-3', '2030-08-01T00:00:00.000Z');
    store.createToken(user.id, 'hash-4', '2030-09-01T00:00:00.000Z');
    assert.equal(store.deleteExpiredTokens('2030-08-15T00:00:00.000Z'), 2);
    assert.ok(store.useToken('hash-4', '2030-08-15T00:00:00.000Z'));
    store.deleteToken('hash-4');
    assert.equal(store.useToken('hash-4', '2030-08-15T00:00:00.000Z'), undefined);

    // A password change ends a user's other tokens and keeps the one asked for.
    store.createToken(user.id, 'hash-6', '2031-01-01T00:00:00.000Z');
    store.createToken(user.id, 'hash-7', '2031-01-01T00:00:00.000Z');
    assert.equal(store.deleteTokensOf(user.id, 'hash-7'), 1);
    assert.equal(store.useToken('hash-6', '2030-08-15T00:00:00.000Z'), undefined);
    assert.ok(store.useToken('hash-7', '2030-08-15T00:00:00.000Z'));
    assert.equal(store.deleteTokensOf(user.id), 1);

    store.createToken(user.id, 'hash-5', '2031-01-01T00:00:00.000Z');
    store.deleteUser('ada');
    assert.equal(store.useToken('hash-5', '2030-08-15T00:00:00.000Z'), undefined, 'cascaded');
  });
});

describe('sqlite store: settings, agents, extensions', () => {
  it('keeps settings as JSON values', () => {
    const store = memoryStore();
    assert.equal(store.getSetting('missing'), undefined);
    store.setSetting('retention', { days: 30, keep: ['a', 'b'] });
    store.setSetting('open', false);
    store.setSetting('nothing', null);
    assert.deepEqual(store.getSetting('retention'), { days: 30, keep: ['a', 'b'] });
    store.setSetting('retention', 7);
    assert.equal(store.getSetting('retention'), 7);
    assert.deepEqual(store.listSettings(), { nothing: null, open: false, retention: 7 });
    store.setSetting('open', undefined);
    assert.equal(store.getSetting('open'), undefined);
    assert.deepEqual(Object.keys(store.listSettings()), ['nothing', 'retention']);
  });

  it('adds, updates and removes agents; a taken name is a conflict', () => {
    const store = memoryStore();
    const agent = {
      name: 'a1',
      host: '10.0.0.1',
      port: 7420,
      accessKey: 'k',
      fingerprint: 'AA:BB',
      tls: true,
      labels: ['linux', 'x64'],
      slots: null,
    };
    const added = store.addAgent(agent);
    assert.deepEqual(added, {
      ...agent,
      cores: null,
      createdAt: T0,
      agentId: null,
      approved: true,
      facts: null,
    });
    assert.throws(() => store.addAgent({ ...agent, host: 'other' }), code('CONFLICT', /"a1"/));
    store.addAgent({ ...agent, name: 'a0', tls: false, fingerprint: null, slots: 4, labels: [] });
    assert.deepEqual(
      store.listAgents().map((a) => [a.name, a.tls, a.slots]),
      [
        ['a0', false, 4],
        ['a1', true, null],
      ],
    );

    const updated = store.updateAgent('a1', { labels: ['mac'], slots: 2, fingerprint: null });
    assert.deepEqual(updated, {
      ...added,
      labels: ['mac'],
      slots: 2,
      fingerprint: null,
    });
    assert.deepEqual(store.getAgent('a1'), updated);
    // The cores it reported when it last connected: kept apart from the slots configured.
    assert.deepEqual(store.updateAgent('a1', { cores: 16 }), { ...updated, cores: 16 });
    assert.deepEqual(store.updateAgent('a1', { accessKey: 'k2', slots: undefined }), {
      ...updated,
      cores: 16,
      accessKey: 'k2',
    });
    assert.deepEqual(store.updateAgent('a1', { slots: null }).slots, null);
    assert.throws(() => store.updateAgent('nope', { slots: 1 }), code('NOT_FOUND', /"nope"/));

    assert.equal(store.removeAgent('a1'), true);
    assert.equal(store.removeAgent('a1'), false);
    assert.equal(store.getAgent('a1'), undefined);
  });

  it('keeps one extension per name: a new version replaces the old', () => {
    const store = memoryStore();
    store.putExtension({ name: 'docker', version: '1.0.0', files });
    store.putExtension({ name: 'aws', version: '2.0.0', files: [] });
    time = '2030-01-02T00:00:00.000Z';
    const v2 = store.putExtension({ name: 'docker', version: '1.1.0', files: [] });
    assert.deepEqual(v2, {
      name: 'docker',
      version: '1.1.0',
      files: [],
      addedAt: '2030-01-02T00:00:00.000Z',
    });
    assert.deepEqual(
      store.listExtensions().map((e) => [e.name, e.version]),
      [
        ['aws', '2.0.0'],
        ['docker', '1.1.0'],
      ],
    );
    assert.equal(store.removeExtension('aws'), true);
    assert.equal(store.removeExtension('aws'), false);
    assert.equal(store.listExtensions().length, 1);
  });
});

describe('sqlite store: builds, tasks, attempts', () => {
  it('creates a build with its tasks, in plan order', () => {
    const store = memoryStore();
    const p: Plan = { name: 'demo', tasks: [task('z'), task('a', ['z']), task('m')] };
    const build = store.createBuild(p, files, 'ada');
    assert.match(build.uid, /^[0-9a-f]{32}$/);
    assert.deepEqual(build, {
      id: 1,
      uid: build.uid,
      status: 'queued',
      plan: p,
      files,
      createdBy: 'ada',
      createdAt: T0,
      startedAt: null,
      finishedAt: null,
      error: null,
      kind: 'plan',
      open: false,
      summary: null,
    });
    assert.deepEqual(store.getBuild(1), build);
    assert.equal(store.getBuild(2), undefined);
    const tasks = store.listTasks(1);
    assert.deepEqual(
      tasks.map((t) => t.name),
      ['z', 'a', 'm'],
    );
    assert.deepEqual(tasks[0], {
      buildId: 1,
      name: 'z',
      status: 'pending',
      attempts: 0,
      exitCode: null,
      agent: null,
      startedAt: null,
      finishedAt: null,
      outputs: [],
      error: null,
      label: null,
      cache: null,
      placement: null,
      fallback: null,
    });
    assert.equal(store.createBuild(plan('x'), [], 'ada').id, 2);
  });

  it('creates nothing when a task row fails', () => {
    const store = memoryStore();
    assert.throws(() => store.createBuild(plan('dup', 'dup'), [], 'ada'), /UNIQUE/);
    assert.deepEqual(store.listBuilds({}), []);
  });

  it('never reuses a build id', () => {
    const file = dbFile();
    let store = openSqliteStore(file);
    store.createBuild(plan('a'), [], 'ada');
    store.createBuild(plan('a'), [], 'ada');
    store.close();
    const db = new Database(file);
    db.prepare('DELETE FROM builds WHERE id = 2').run();
    db.close();
    store = openSqliteStore(file);
    assert.equal(store.createBuild(plan('a'), [], 'ada').id, 3);
    store.close();
  });

  it('lists builds newest first, by status, with limit and paging', () => {
    const store = memoryStore();
    for (let i = 0; i < 7; i++) store.createBuild(plan('t'), [], 'ada');
    store.setBuildStatus(2, 'running', { startedAt: '2030-02-01T00:00:00.000Z' });
    store.setBuildStatus(3, 'succeeded');
    store.setBuildStatus(5, 'running');
    store.setBuildStatus(6, 'failed', { error: 'boom', finishedAt: '2030-02-02T00:00:00.000Z' });

    const ids = (rows: { id: number }[]) => rows.map((r) => r.id);
    assert.deepEqual(ids(store.listBuilds({})), [7, 6, 5, 4, 3, 2, 1]);
    assert.deepEqual(ids(store.listBuilds({ limit: 3 })), [7, 6, 5]);
    assert.deepEqual(ids(store.listBuilds({ limit: 3, beforeId: 5 })), [4, 3, 2]);
    assert.deepEqual(ids(store.listBuilds({ limit: 3, beforeId: 2 })), [1]);
    assert.deepEqual(ids(store.listBuilds({ status: 'running' })), [5, 2]);
    assert.deepEqual(ids(store.listBuilds({ status: 'running', beforeId: 5 })), [2]);
    assert.deepEqual(ids(store.listBuilds({ status: 'cancelled' })), []);
    assert.deepEqual(ids(store.listBuilds({ limit: 0 })), [7], 'limit is at least 1');
    assert.deepEqual(ids(store.listActiveBuilds()), [1, 2, 4, 5, 7]);

    // A search: within the name or the user, any case, or the number; % and _ are plain text.
    store.createBuild({ ...plan('t'), name: 'Nightly_100%' }, [], 'bob');
    assert.deepEqual(ids(store.listBuilds({ text: 'NIGHTLY' })), [8]);
    assert.deepEqual(ids(store.listBuilds({ text: '100%' })), [8]);
    assert.deepEqual(ids(store.listBuilds({ text: 'y_1' })), [8]);
    assert.deepEqual(ids(store.listBuilds({ text: 'y%1' })), []);
    assert.deepEqual(ids(store.listBuilds({ text: 'bo' })), [8]);
    assert.deepEqual(ids(store.listBuilds({ text: 'ada', status: 'running' })), [5, 2]);
    assert.deepEqual(ids(store.listBuilds({ text: 'ada', limit: 2, beforeId: 7 })), [6, 5]);
    assert.deepEqual(ids(store.listBuilds({ text: '3' })), [3]);

    const failed = store.getBuild(6);
    assert.equal(failed?.status, 'failed');
    assert.equal(failed?.error, 'boom');
    assert.equal(failed?.finishedAt, '2030-02-02T00:00:00.000Z');
    // Fields left out are kept; null clears.
    store.setBuildStatus(2, 'cancelled', { error: 'stopped' });
    assert.equal(store.getBuild(2)?.startedAt, '2030-02-01T00:00:00.000Z');
    store.setBuildStatus(2, 'cancelled', { error: null });
    assert.equal(store.getBuild(2)?.error, null);
    assert.throws(() => store.setBuildStatus(99, 'failed'), code('NOT_FOUND'));
  });

  it('caps a build listing at 1000', () => {
    const store = memoryStore();
    store.transaction(() => {
      for (let i = 0; i < 1005; i++) store.createBuild(plan('t'), [], 'ada');
    });
    assert.equal(store.listBuilds({}).length, 50);
    assert.equal(store.listBuilds({ limit: 5000 }).length, 1000);
  });

  it('updates tasks field by field', () => {
    const store = memoryStore();
    store.createBuild(plan('a', 'b'), [], 'ada');
    store.updateTask(1, 'a', { status: 'running', attempts: 1, agent: 'a1', startedAt: 's' });
    store.updateTask(1, 'a', {
      status: 'succeeded',
      exitCode: 0,
      finishedAt: 'f',
      outputs: [{ path: 'out/x', sha256: 'cd'.repeat(32), size: 9, mode: 0o755 }],
    });
    assert.deepEqual(store.getTask(1, 'a'), {
      buildId: 1,
      name: 'a',
      status: 'succeeded',
      attempts: 1,
      exitCode: 0,
      agent: 'a1',
      startedAt: 's',
      finishedAt: 'f',
      outputs: [{ path: 'out/x', sha256: 'cd'.repeat(32), size: 9, mode: 0o755 }],
      error: null,
      label: null,
      cache: null,
      placement: null,
      fallback: null,
    });
    store.updateTask(1, 'a', { agent: null, error: 'x' });
    assert.equal(store.getTask(1, 'a')?.agent, null);
    assert.equal(store.getTask(1, 'a')?.error, 'x');
    assert.equal(store.getTask(1, 'b')?.status, 'pending');
    assert.equal(store.getTask(1, 'nope'), undefined);
    assert.throws(() => store.updateTask(1, 'nope', { status: 'failed' }), code('NOT_FOUND'));
  });

  it('records attempts and lists the running ones', () => {
    const store = memoryStore();
    store.createBuild(plan('a', 'b'), [], 'ada');
    store.createBuild(plan('c'), [], 'ada');
    const attempt = (buildId: number, taskName: string, number: number, agentTaskId: string) =>
      store.createAttempt({
        buildId,
        taskName,
        number,
        agent: 'a1',
        agentTaskId,
        status: 'running',
        startedAt: '2030-03-01T00:00:00.000Z',
      });
    const a1 = attempt(1, 'a', 1, 'x-1');
    assert.deepEqual(a1, {
      id: 1,
      buildId: 1,
      taskName: 'a',
      number: 1,
      agent: 'a1',
      agentTaskId: 'x-1',
      status: 'running',
      startedAt: '2030-03-01T00:00:00.000Z',
      finishedAt: null,
      exitCode: null,
      error: null,
      nextSeq: 0,
    });
    attempt(1, 'b', 1, 'x-2');
    attempt(2, 'c', 1, 'x-3');
    assert.throws(() => attempt(1, 'a', 1, 'x-4'), /UNIQUE/, 'same number twice');
    assert.throws(() => attempt(1, 'nope', 1, 'x-5'), /FOREIGN KEY/, 'no such task');

    store.finishAttempt(a1.id, 'lost', { finishedAt: '2030-03-01T00:01:00.000Z', error: 'gone' });
    const a2 = attempt(1, 'a', 2, 'x-6');
    store.setAttemptNextSeq(a2.id, 17);
    assert.deepEqual(
      store.listRunningAttempts().map((a) => a.agentTaskId),
      ['x-2', 'x-3', 'x-6'],
    );
    assert.deepEqual(
      store.listAttempts(1).map((a) => a.agentTaskId),
      ['x-1', 'x-2', 'x-6'],
    );
    assert.deepEqual(
      store.listAttempts(1, 'a').map((a) => [a.number, a.status, a.error]),
      [
        [1, 'lost', 'gone'],
        [2, 'running', null],
      ],
    );
    assert.equal(store.getAttemptByAgentTaskId('x-6')?.nextSeq, 17);
    assert.equal(store.getAttemptByAgentTaskId('nope'), undefined);

    store.finishAttempt(a2.id, 'succeeded', { finishedAt: 'f', exitCode: 0 });
    const done = store.getAttemptByAgentTaskId('x-6');
    assert.equal(done?.status, 'succeeded');
    assert.equal(done?.exitCode, 0);
    assert.equal(done?.error, null);
    assert.throws(() => store.finishAttempt(99, 'failed', { finishedAt: 'f' }), code('NOT_FOUND'));
    assert.throws(() => store.setAttemptNextSeq(99, 1), code('NOT_FOUND'));
  });
});

describe('sqlite store: logs', () => {
  it('appends chunks with ids increasing per build and reads them with filters and paging', () => {
    const store = memoryStore();
    store.createBuild(plan('a', 'b'), [], 'ada');
    store.createBuild(plan('c'), [], 'ada');
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) {
      const taskName = i % 2 === 0 ? 'a' : 'b';
      ids.push(
        store.appendLog({
          buildId: 1,
          taskName,
          attempt: 1,
          stream: i === 5 ? 'stderr' : 'stdout',
          data: Buffer.from([i, 0, 255]),
          at: `t${i}`,
        }),
      );
      store.appendLog({
        buildId: 2,
        taskName: 'c',
        attempt: 1,
        stream: 'log',
        data: Buffer.from('x'),
        at: 't',
      });
    }
    assert.deepEqual(
      ids,
      [...ids].sort((x, y) => x - y),
    );

    const all = store.readLogs(1, {});
    assert.deepEqual(
      all.map((c) => c.id),
      ids,
    );
    assert.deepEqual(all[5], {
      buildId: 1,
      taskName: 'b',
      attempt: 1,
      id: ids[5],
      stream: 'stderr',
      data: Buffer.from([5, 0, 255]),
      at: 't5',
    });
    assert.ok(Buffer.isBuffer(all[0]?.data));

    assert.deepEqual(
      store.readLogs(1, { taskName: 'a' }).map((c) => c.at),
      ['t0', 't2', 't4'],
    );
    const page1 = store.readLogs(1, { limit: 4 });
    const page2 = store.readLogs(1, { limit: 4, afterId: page1.at(-1)?.id });
    assert.deepEqual(
      [...page1, ...page2].map((c) => c.id),
      ids,
    );
    assert.deepEqual(
      store.readLogs(1, { taskName: 'b', afterId: ids[1], limit: 1 }).map((c) => c.at),
      ['t3'],
    );
    assert.equal(store.readLogs(2, {}).length, 6);
    assert.deepEqual(store.readLogs(3, {}), []);
    assert.throws(
      () =>
        store.appendLog({
          buildId: 99,
          taskName: 'a',
          attempt: 1,
          stream: 'log',
          data: Buffer.alloc(0),
          at: 't',
        }),
      /FOREIGN KEY/,
    );
  });

  it('takes 10,000 chunks in one transaction', () => {
    const store = memoryStore();
    store.createBuild(plan('a'), [], 'ada');
    const data = Buffer.alloc(256, 'x');
    store.transaction(() => {
      for (let i = 0; i < 10_000; i++) {
        store.appendLog({ buildId: 1, taskName: 'a', attempt: 1, stream: 'stdout', data, at: 't' });
      }
    });
    assert.equal(store.readLogs(1, { limit: 100_000 }).length, 10_000);
  });
});

describe('sqlite store: transactions and durability', () => {
  it('writes nothing when the function throws', () => {
    const store = memoryStore();
    assert.throws(
      () =>
        store.transaction(() => {
          store.createUser('ada', 'admin', 'h');
          store.createBuild(plan('a'), [], 'ada');
          store.setSetting('k', 1);
          throw new Error('abort');
        }),
      /abort/,
    );
    assert.deepEqual(store.listUsers(), []);
    assert.deepEqual(store.listBuilds({}), []);
    assert.deepEqual(store.listSettings(), {});
  });

  it('nests: an inner call joins the outer transaction', () => {
    const store = memoryStore();
    const result = store.transaction(() => {
      store.createUser('ada', 'admin', 'h');
      // createBuild opens its own (nested) transaction.
      const build = store.createBuild(plan('a'), [], 'ada');
      // An inner failure that the outer catches undoes only the inner part.
      assert.throws(() =>
        store.transaction(() => {
          store.createUser('bob', 'viewer', 'h');
          throw new Error('inner');
        }),
      );
      return store.transaction(() => build.id);
    });
    assert.equal(result, 1);
    assert.deepEqual(
      store.listUsers().map((u) => u.name),
      ['ada'],
    );
    assert.equal(store.listTasks(1).length, 1);

    assert.throws(() =>
      store.transaction(() => {
        store.transaction(() => store.createUser('cy', 'viewer', 'h'));
        throw new Error('outer');
      }),
    );
    assert.equal(store.getUser('cy'), undefined, 'the committed inner part is undone too');
  });

  it('refuses an async function', () => {
    const store = memoryStore();
    assert.throws(() => store.transaction(() => Promise.resolve(1)), /promise/);
  });

  it('keeps everything across close and reopen, and close is idempotent', () => {
    const file = dbFile();
    const store = openSqliteStore(file, { now: clock });
    store.createUser('ada', 'admin', 'h');
    store.setSetting('k', { v: [1, 2] });
    store.addAgent({
      name: 'a1',
      host: 'h',
      port: 1,
      accessKey: 'k',
      fingerprint: null,
      tls: false,
      labels: [],
      slots: null,
    });
    const build = store.createBuild(plan('a', 'b'), files, 'ada');
    store.appendLog({
      buildId: 1,
      taskName: 'a',
      attempt: 1,
      stream: 'stdout',
      data: Buffer.from('hello'),
      at: 't',
    });
    assert.ok(existsSync(`${file}-wal`), 'WAL mode');
    store.close();
    store.close();
    assert.throws(() => store.getUser('ada'), /not open/);

    const again = openSqliteStore(file);
    open.push(again);
    assert.equal(again.getUser('ada')?.role, 'admin');
    assert.deepEqual(again.getSetting('k'), { v: [1, 2] });
    assert.equal(again.getAgent('a1')?.host, 'h');
    assert.deepEqual(again.getBuild(1), build);
    assert.equal(again.listTasks(1).length, 2);
    assert.equal(again.readLogs(1, {})[0]?.data.toString(), 'hello');
  });
});

describe('counting active builds', () => {
  it('counts queued and running builds without reading them', () => {
    const store = openSqliteStore(':memory:');
    const plan = { name: undefined, tasks: [] };
    const a = store.createBuild(plan, [], 'u');
    const b = store.createBuild(plan, [], 'u');
    store.createBuild(plan, [], 'u');
    store.setBuildStatus(a.id, 'running');
    store.setBuildStatus(b.id, 'succeeded');
    assert.deepEqual(store.countActiveBuilds(), { queued: 1, running: 1 });
    store.close();
  });
});
