import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CloseCompileSession, CompileRecord } from '../../src/api/requests-types.js';
import { WorkingSessions } from '../../src/cli/cc/working-sessions.js';
import { MusterError } from '../../src/protocol/errors.js';

function record(n: number, exitCode = 0): CompileRecord {
  return {
    label: `gcc -c f${n}.c`,
    placement: n % 2 === 0 ? 'cache' : 'local',
    cache: n % 2 === 0 ? 'hit' : 'miss',
    exitCode,
    startedAt: 1_700_000_000_000 + n,
    durationMs: 1,
  };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), 'condition not reached within 5 s');
}

/** The session key the fake coordinator gives build `id` (a build's uid is 32 hex digits). */
const keyOf = (id: number): string => id.toString(16).padStart(32, '0');
const idOf = (key: string): number => Number.parseInt(key, 16);

function fakeApi(options: { down?: () => boolean } = {}) {
  let next = 1;
  const opened: number[] = [];
  const recorded = new Map<number, number[]>();
  const closed = new Map<number, CloseCompileSession>();
  return {
    opened,
    recorded,
    closed,
    api: {
      createCompileSession: () => {
        if (options.down?.() === true)
          return Promise.reject(new MusterError('UNREACHABLE', 'connection refused'));
        const buildId = next++;
        opened.push(buildId);
        return Promise.resolve({ buildId, session: keyOf(buildId), capacity: { agents: [] } });
      },
      recordCompileJobs: (key: string, records: CompileRecord[]) => {
        const buildId = idOf(key);
        recorded.set(buildId, [
          ...(recorded.get(buildId) ?? []),
          ...records.map((r) => r.startedAt - 1_700_000_000_000),
        ]);
        return Promise.resolve();
      },
      closeCompileSession: (key: string, body: CloseCompileSession) => {
        closed.set(idOf(key), body);
        return Promise.resolve({ id: idOf(key) } as never);
      },
    },
  };
}

describe('working sessions of the per-user compile service', () => {
  it('opens a build with the first job, closes it when idle, opens another with the next', async () => {
    const fake = fakeApi();
    const sessions = new WorkingSessions(fake.api, { idleMs: 50, flushMs: 5 });
    sessions.record(record(1));
    sessions.record(record(2));
    await until(() => fake.recorded.get(1)?.length === 2);
    assert.equal(sessions.buildId, 1);
    await until(() => fake.closed.has(1));
    assert.deepEqual(fake.closed.get(1), {
      exitCode: 0,
      summary: { jobs: 2, remote: 0, local: 1, cacheHits: 1, fallbacks: 0 },
    });
    assert.equal(sessions.buildId, undefined);
    sessions.record(record(3, 1));
    await until(() => fake.recorded.get(2)?.length === 1);
    await sessions.close();
    assert.equal(fake.closed.get(2)?.exitCode, 1, 'a failed compile fails the working session');
    assert.deepEqual(fake.opened, [1, 2]);
  });

  it('opens a new session when the coordinator ended the current one', async () => {
    const fake = fakeApi();
    let refuse = false;
    const api = {
      ...fake.api,
      recordCompileJobs: (key: string, records: CompileRecord[]) =>
        refuse && idOf(key) === 1
          ? Promise.reject(new MusterError('COMPILE_SESSION_CLOSED', 'cancelled'))
          : fake.api.recordCompileJobs(key, records),
    };
    const sessions = new WorkingSessions(api, { idleMs: 10_000, flushMs: 5 });
    sessions.record(record(1));
    await until(() => fake.recorded.get(1)?.length === 1);
    refuse = true;
    sessions.record(record(2));
    await new Promise((r) => setTimeout(r, 50));
    sessions.record(record(3));
    await until(() => fake.recorded.get(2)?.length === 1);
    assert.deepEqual(fake.recorded.get(2), [3]);
    await sessions.close();
  });

  it('without a coordinator drops the jobs of that moment and tries again later', async () => {
    let down = true;
    const warnings: string[] = [];
    const fake = fakeApi({ down: () => down });
    const sessions = new WorkingSessions(fake.api, {
      idleMs: 10_000,
      retryMs: 30,
      flushMs: 5,
      warn: (t) => warnings.push(t),
    });
    sessions.record(record(1));
    await until(() => warnings.length === 1);
    sessions.record(record(2)); // within retryMs: not even tried
    down = false;
    await new Promise((r) => setTimeout(r, 40));
    sessions.record(record(3));
    await until(() => fake.recorded.get(1)?.length === 1);
    assert.deepEqual(fake.recorded.get(1), [3]);
    await sessions.close();
    assert.equal(fake.closed.get(1)?.summary.jobs, 1);
    sessions.record(record(4));
    assert.deepEqual(fake.opened, [1], 'nothing opens after close');
  });

  it('opens the session a remote job needs, once, and counts its remote jobs', async () => {
    let down = false;
    const fake = fakeApi({ down: () => down });
    const sessions = new WorkingSessions(fake.api, { idleMs: 60_000, flushMs: 5, retryMs: 60_000 });
    const [a, b] = await Promise.all([sessions.current(), sessions.current()]);
    assert.deepEqual(a, { buildId: 1, key: keyOf(1), capacity: { agents: [] } });
    assert.deepEqual(b, a);
    assert.deepEqual(fake.opened, [1]);
    sessions.noteRemote();
    sessions.record(record(1));
    await sessions.close();
    assert.deepEqual(fake.closed.get(1)?.summary, {
      jobs: 2,
      remote: 1,
      local: 1,
      cacheHits: 0,
      fallbacks: 0,
    });
    assert.equal(await sessions.current(), null, 'none after close');

    // A coordinator that cannot open one: null, and not asked again for a while.
    down = true;
    const later = new WorkingSessions(fake.api, { idleMs: 60_000, retryMs: 60_000 });
    assert.equal(await later.current(), null);
    down = false;
    assert.equal(await later.current(), null);
    assert.deepEqual(fake.opened, [1]);
    await later.close();
  });
});
