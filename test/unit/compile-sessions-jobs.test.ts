/**
 * The session service's side of remote jobs (compile/sessions.ts `job()`), over a real store and
 * a stand-in for the scheduler that ends jobs when the test says: a session whose client waits
 * for a job is not idle, a client that stops waiting cancels its job; and the records' 'build'
 * event comes at most once per buildEventMs, not once per batch.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { compileJobBody } from '../../src/api/requests.js';
import {
  CompileSessions,
  type CompileSessionsContext,
} from '../../src/coordinator/compile/sessions.js';
import { EventBus } from '../../src/coordinator/events.js';
import type { JobEnd, NewCompileJob } from '../../src/coordinator/scheduler/compile-jobs.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import type { TaskRow } from '../../src/coordinator/store/types.js';

const silent = pino({ level: 'silent' });
const log = { info: () => {} };
const IDLE_MS = 120_000;
const TEXT = { sha256: 'c'.repeat(64), size: 120 };
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

let store: Store;
beforeEach(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'compile-sessions-jobs-'));
  dirs.push(dir);
  store = openSqliteStore(join(dir, 'muster.db'));
});
afterEach(() => store.close());

const body = compileJobBody.parse({
  label: 'gcc -c a.c -o a.o',
  input: {
    toolchain: 'a'.repeat(64),
    driver: 'bin/gcc',
    args: ['-c', 'a.c', '-o', 'a.o'],
    cwd: '',
    debugPrefixMaps: [],
    env: {},
    outputs: [{ name: 'object', path: 'a.o' }],
  },
  source: { path: 'a.c', ...TEXT },
});

/** Jobs the stand-in scheduler holds: each ends when the test calls end(). */
interface Held {
  job: NewCompileJob;
  row: TaskRow;
  cancelled: boolean;
  end(end: JobEnd): void;
}

function service(overrides: Partial<CompileSessionsContext> = {}) {
  const clock = { now: 1_000_000 };
  const held: Held[] = [];
  const events: string[] = [];
  const bus = new EventBus();
  bus.subscribe((event) => events.push(event));
  const sessions = new CompileSessions({
    store,
    builds: {
      submit: () => {},
      close: (id, end) => store.closeBuild(id, end),
      addJob: (buildId, job) => {
        const row = store.appendJobTask(buildId, {
          label: job.label,
          spec: JSON.stringify(job.spec),
          status: 'queued',
        });
        let end!: (e: JobEnd) => void;
        const ended = new Promise<JobEnd>((r) => (end = r));
        const entry: Held = { job, row, cancelled: false, end };
        held.push(entry);
        return {
          task: row.name,
          ended,
          cancel: () => {
            entry.cancelled = true;
          },
        };
      },
    },
    blobs: { sizeOf: async (sha256) => (sha256 === TEXT.sha256 ? TEXT.size : undefined) },
    uploads: { hold: () => () => {}, referenced: () => {} },
    events: bus,
    agents: () => [],
    writes: () => true,
    log: silent,
    idleTimeoutMs: IDLE_MS,
    now: () => clock.now,
    ...overrides,
  });
  return { sessions, clock, held, events };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), `timed out waiting for ${what}`);
}

describe('compile sessions: remote jobs', () => {
  it('keep a session whose client waits for a job from going idle', async () => {
    const { sessions, clock, held } = service();
    const { build } = sessions.open({ command: 'make', cwd: '/src', host: 'laptop' }, 'ada', log);
    const answer = sessions.job(String(build.id), body, 'ada', new AbortController().signal);
    await until(() => held.length === 1, 'the job');
    assert.deepEqual(
      [held[0]!.job.label, held[0]!.job.maxQueueMs, held[0]!.job.spec.toolchain],
      [body.label, 100, body.input.toolchain],
    );
    clock.now += 3 * IDLE_MS;
    assert.deepEqual(sessions.closeIdle(), [], 'a long compile is not silence');
    held[0]!.end({ status: 'cancelled', reason: null, row: held[0]!.row, result: undefined });
    const view = await answer;
    assert.deepEqual([view.task, view.status, view.object], ['job-1', 'cancelled', null]);
    clock.now += IDLE_MS - 1;
    assert.deepEqual(sessions.closeIdle(), [], 'heard from when the answer went out');
    clock.now += 1;
    assert.deepEqual(sessions.closeIdle(), [build.id]);
  });

  it('cancel the job of a client that stops waiting', async () => {
    const { sessions, held } = service();
    const { build } = sessions.open({ command: 'make', cwd: '/src', host: 'laptop' }, 'ada', log);
    const gone = new AbortController();
    const answer = sessions.job(String(build.id), body, 'ada', gone.signal);
    await until(() => held.length === 1, 'the job');
    assert.equal(held[0]!.cancelled, false);
    gone.abort();
    assert.equal(held[0]!.cancelled, true);
    held[0]!.end({ status: 'cancelled', reason: null, row: held[0]!.row, result: undefined });
    assert.equal((await answer).status, 'cancelled');
  });

  it("emit the records' build event once per buildEventMs, not once per batch", async () => {
    const { sessions, events } = service({ buildEventMs: 30 });
    const { build } = sessions.open({ command: 'make', cwd: '/src', host: 'laptop' }, 'ada', log);
    const record = {
      label: 'gcc -c a.c',
      placement: 'local' as const,
      cache: 'miss' as const,
      exitCode: 0,
      startedAt: Date.now(),
      durationMs: 1,
    };
    events.length = 0;
    for (let i = 0; i < 5; i++) sessions.record(String(build.id), [record], 'ada');
    assert.deepEqual(events, ['task', 'task', 'task', 'task', 'task']);
    await until(() => events.includes('build'), 'the build event');
    assert.deepEqual(
      events.filter((e) => e === 'build'),
      ['build'],
    );
  });
});
