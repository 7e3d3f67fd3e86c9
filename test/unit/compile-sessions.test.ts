/**
 * Compile sessions (compile/sessions.ts) over a real store and the real scheduler (no agents:
 * a session's jobs so far run on the client): an open build is never finished by the scheduler,
 * survives a restart open, ends by its client's close, by a cancel, or by the idle check.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { BlobStore } from '../../src/common/blob-store.js';
import {
  CompileSessions,
  MAX_OPEN_SESSIONS_PER_USER,
  capacityAgents,
  sameMachine,
  sessionBuild,
  type CompileSessionsContext,
} from '../../src/coordinator/compile/sessions.js';
import { EventBus } from '../../src/coordinator/events.js';
import type { AgentSnapshot } from '../../src/coordinator/pool/agent-snapshot.js';
import { Scheduler } from '../../src/coordinator/scheduler/scheduler.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import type { CompileRecord } from '../../src/coordinator/store/types.js';
import { MusterError } from '../../src/protocol/errors.js';

const silent = pino({ level: 'silent' });
const log = { info: () => {} };
const IDLE_MS = 120_000;
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

let store: Store;
let blobs: BlobStore;
const started: { stop(): void | Promise<void> }[] = [];

beforeEach(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'compile-sessions-'));
  dirs.push(dir);
  store = openSqliteStore(join(dir, 'muster.db'));
  blobs = new BlobStore(join(dir, 'blobs'));
  await blobs.init();
});

afterEach(async () => {
  for (const s of started.splice(0)) await s.stop();
  store.close();
});

function scheduler(): Scheduler {
  const s = new Scheduler({
    store,
    pool: { ready: () => [] },
    blobs,
    events: new EventBus(),
    log: silent,
    agentLossGraceMs: 50,
  });
  s.start();
  started.push(s);
  return s;
}

const noJobs = (): never => {
  throw new Error('no remote jobs in this test');
};
const noBlobs = { sizeOf: async () => undefined };
const noQuota = { hold: () => () => {}, referenced: () => {} };

function sessions(overrides: Partial<CompileSessionsContext> = {}): {
  sessions: CompileSessions;
  clock: { now: number };
  events: string[];
} {
  const clock = { now: 1_000_000 };
  const bus = new EventBus();
  const events: string[] = [];
  bus.subscribe((event, data) =>
    events.push(
      event === 'task'
        ? `task ${(data as { row: { name: string } }).row.name}`
        : `build ${(data as { build: { status: string } }).build.status}`,
    ),
  );
  const s = new CompileSessions({
    store,
    builds: { submit: () => {}, close: (id, end) => store.closeBuild(id, end), addJob: noJobs },
    blobs: noBlobs,
    uploads: noQuota,
    events: bus,
    agents: () => [],
    writes: () => true,
    log: silent,
    idleTimeoutMs: IDLE_MS,
    now: () => clock.now,
    ...overrides,
  });
  return { sessions: s, clock, events };
}

const request = { command: 'make  -j4\n all', cwd: '/src', host: 'laptop' };
const record = (exitCode: number | null = 0): CompileRecord => ({
  label: 'gcc -c a.c',
  placement: 'local',
  cache: 'miss',
  exitCode,
  startedAt: Date.now(),
  durationMs: 1,
});
const summary = { jobs: 1, remote: 0, local: 1, cacheHits: 0, fallbacks: 0 };

function code(expected: string) {
  return (err: unknown) => err instanceof MusterError && err.code === expected;
}

describe('the scheduler with open builds', () => {
  it('keeps an open build with no tasks running until its client closes it', () => {
    const s = scheduler();
    const build = store.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    s.submit(build);
    s.schedule();
    store.appendRecords(build.id, [record(), record(1)]);
    s.schedule();
    assert.equal(store.getBuild(build.id)?.status, 'running');
    assert.equal(store.getBuild(build.id)?.open, true);
    const closed = s.close(build.id, { exitCode: 0, summary });
    assert.equal(closed.status, 'succeeded');
    // A compile error is a failed job; the build follows the command's exit code.
    assert.equal(store.listTasks(build.id)[1]?.status, 'failed');
    // Forgotten by the scheduler: a late cancel changes nothing.
    s.cancel(build.id);
    assert.equal(store.getBuild(build.id)?.status, 'succeeded');
  });

  it('ends an open build that is cancelled, as cancelled', () => {
    const s = scheduler();
    const build = store.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    s.submit(build);
    s.cancel(build.id);
    const row = store.getBuild(build.id);
    assert.deepEqual([row?.status, row?.open], ['cancelled', false]);
    assert.throws(() => store.appendRecords(build.id, [record()]), code('COMPILE_SESSION_CLOSED'));
  });

  it('leaves an open build open across a restart, to be closed by its client or its idle timeout', () => {
    const build = store.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    scheduler().stop();
    const again = scheduler();
    again.schedule();
    assert.equal(store.getBuild(build.id)?.status, 'running');
    assert.equal(store.getBuild(build.id)?.open, true);
    assert.equal(
      again.close(build.id, { exitCode: 3, summary }).error,
      'the command exited with 3',
    );
  });
});

describe('compile sessions', () => {
  it("open a build named after the command, with the pool's capacity", () => {
    const agents = [
      { name: 'a1', slots: 4, bootId: 'b'.repeat(64) },
      { name: 'a2', slots: 2, bootId: 'c'.repeat(64) },
      { name: 'a3', slots: 8, bootId: undefined },
    ];
    const { sessions: s, events } = sessions({ agents: () => agents });
    const { build, capacity } = s.open({ ...request, bootId: 'b'.repeat(64) }, 'ada', log);
    assert.equal(build.plan.name, 'make -j4 all');
    assert.equal(build.createdBy, 'ada');
    assert.deepEqual(capacity.agents, [
      { name: 'a1', slots: 4, sameMachine: true },
      { name: 'a2', slots: 2, sameMachine: false },
      { name: 'a3', slots: 8, sameMachine: null },
    ]);
    assert.deepEqual(events, ['build running']);
    // A client that does not say which machine it is on: unknown for every agent.
    assert.deepEqual(
      s.open(request, 'ada', log).capacity.agents.map((a) => a.sameMachine),
      [null, null, null],
    );
  });

  it('count only agents that can take work, with the boot id each reported', () => {
    const snapshot = (name: string, status: AgentSnapshot['status']): AgentSnapshot => ({
      name,
      host: 'h',
      port: 7420,
      status,
      slots: 2,
      slotsFrom: 'agent',
      busySlots: 0,
      labels: [],
      tls: true,
      fingerprint: null,
      lastError: null,
      agentVersion: null,
      instanceKey: null,
      lastConnectedAt: null,
      dialsOut: false,
      approved: true,
      facts: null,
      bootId: name === 'up' ? 'b'.repeat(64) : null,
      toolchains: [],
    });
    assert.deepEqual(
      capacityAgents([
        snapshot('up', 'connected'),
        snapshot('full', 'busy'),
        snapshot('down', 'unreachable'),
        snapshot('theirs', 'fenced'),
      ]),
      [
        { name: 'up', slots: 2, bootId: 'b'.repeat(64) },
        { name: 'full', slots: 2, bootId: undefined },
      ],
    );
    assert.equal(sameMachine(undefined, 'x'), null);
    assert.equal(sameMachine('x', 'x'), true);
  });

  it(`allow ${MAX_OPEN_SESSIONS_PER_USER} open sessions per user, then refuse`, () => {
    const { sessions: s } = sessions();
    for (let i = 0; i < MAX_OPEN_SESSIONS_PER_USER; i++) s.open(request, 'ada', log);
    assert.throws(() => s.open(request, 'ada', log), code('TOO_MANY_COMPILE_SESSIONS'));
    // Another user has sessions of their own; a closed one frees a place.
    s.open(request, 'bob', log);
    const first = store.listOpenBuilds()[0]!;
    s.close(String(first.id), { exitCode: 0, summary }, 'ada', log);
    s.open(request, 'ada', log);
  });

  it("take records and the close from the session's own user only, and only while open", () => {
    const { sessions: s, events } = sessions();
    const { build } = s.open(request, 'ada', log);
    const id = String(build.id);
    assert.throws(() => s.record(id, [record()], 'bob'), code('FORBIDDEN'));
    assert.throws(() => s.close(id, { exitCode: 0, summary }, 'bob', log), code('FORBIDDEN'));
    assert.throws(() => s.record('999', [record()], 'ada'), code('NOT_FOUND'));
    assert.throws(() => s.record('1e3', [record()], 'ada'), code('NOT_FOUND'));
    const plan = store.createBuild({ name: 'p', tasks: [] }, [], 'ada');
    assert.throws(() => s.record(String(plan.id), [record()], 'ada'), code('NOT_FOUND'));

    // Events reach streams only when someone listens (the test's bus always does).
    assert.deepEqual(
      s.record(id, [record(), record()], 'ada').map((t) => t.name),
      ['job-1', 'job-2'],
    );
    assert.deepEqual(s.record(id, [], 'ada'), []);
    const { build: closed, tasks } = s.close(id, { exitCode: 2, summary }, 'ada', log);
    assert.deepEqual([closed.status, closed.error], ['failed', 'the command exited with 2']);
    assert.equal(tasks.length, 2);
    // The records' 'build' event waits up to a second (one per second at most, not one per
    // batch); the close came first and carries it.
    assert.deepEqual(events, ['build running', 'task job-1', 'task job-2', 'build failed']);
    assert.throws(() => s.record(id, [record()], 'ada'), code('COMPILE_SESSION_CLOSED'));
    assert.throws(
      () => s.close(id, { exitCode: 0, summary }, 'ada', log),
      code('COMPILE_SESSION_CLOSED'),
    );
  });

  it('reach a session by its key (the build uid) once a failback renumbered its build', () => {
    // The backup opened ada's session and took a record while the primary was away…
    const backup = openSqliteStore(join(dirs[dirs.length - 1]!, 'backup.db'));
    try {
      const opened = backup.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
      backup.appendRecords(opened.id, [record()]);
      // …whose id the primary gave meanwhile to a session of bob's: the merge renumbers hers.
      const bobs = store.createOpenBuild({ name: 'make', createdBy: 'bob', kind: 'compile' });
      assert.equal(bobs.id, opened.id);
      const merged = store.replication.mergeBuildHistory(
        backup.replication.exportBuildHistory(opened.id, 0, 100),
        [],
      );
      assert.notEqual(merged, opened.id);
      const { sessions: s } = sessions();
      // The old id now names bob's session: refused, never recorded there.
      assert.throws(() => s.record(String(opened.id), [record()], 'ada'), code('FORBIDDEN'));
      assert.equal(store.listTasks(bobs.id).length, 0);
      // The key names hers, for her only.
      assert.match(opened.uid, /^[0-9a-f]{32}$/);
      assert.throws(() => s.record(opened.uid, [record()], 'bob'), code('FORBIDDEN'));
      assert.deepEqual(
        s.record(opened.uid, [record()], 'ada').map((t) => t.name),
        ['job-2'],
      );
      const { build, tasks } = s.close(opened.uid, { exitCode: 0, summary }, 'ada', log);
      assert.deepEqual([build.id, build.status, tasks.length], [merged, 'succeeded', 2]);
      // A key of another form, or one no build has, names nothing.
      for (const key of [opened.uid.toUpperCase(), `${opened.uid}0`, 'f'.repeat(32)])
        assert.throws(() => s.record(key, [], 'ada'), code('NOT_FOUND'));
      // Opening answers the key along with the id.
      const fresh = s.open(request, 'ada', log).build;
      assert.equal(sessionBuild(store, fresh.uid)?.id, fresh.id);
      assert.equal(sessionBuild(store, String(fresh.id))?.uid, fresh.uid);
    } finally {
      backup.close();
    }
  });

  it('close a session not heard from for the idle timeout as failed: the client went away', () => {
    const { sessions: s, clock } = sessions();
    const quiet = s.open(request, 'ada', log).build;
    const chatty = s.open(request, 'ada', log).build;
    clock.now += IDLE_MS - 1;
    assert.deepEqual(s.closeIdle(), []);
    s.record(String(chatty.id), [], 'ada'); // a heartbeat
    clock.now += 1;
    assert.deepEqual(s.closeIdle(), [quiet.id]);
    const row = store.getBuild(quiet.id);
    assert.deepEqual(
      [row?.status, row?.open, row?.error],
      ['failed', false, 'the client went away'],
    );
    assert.equal(store.getBuild(chatty.id)?.open, true);
    assert.throws(() => s.record(String(quiet.id), [], 'ada'), code('COMPILE_SESSION_CLOSED'));
    clock.now += IDLE_MS;
    assert.deepEqual(s.closeIdle(), [chatty.id]);
  });

  it('give a session found open (after a restart or a takeover) a full idle timeout from then', () => {
    const build = store.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    let writes = false;
    const { sessions: s, clock } = sessions({ writes: () => writes });
    // A backup standing by keeps no clocks and closes nothing.
    clock.now += IDLE_MS * 10;
    assert.deepEqual(s.closeIdle(), []);
    writes = true;
    assert.deepEqual(s.closeIdle(), []);
    clock.now += IDLE_MS - 1;
    assert.deepEqual(s.closeIdle(), []);
    clock.now += 1;
    assert.deepEqual(s.closeIdle(), [build.id]);
  });

  it('hand a new session to the scheduler: a cancel ends it, and the idle check leaves it be', () => {
    const sched = scheduler();
    const { sessions: s, clock } = sessions({ builds: sched });
    const { build } = s.open(request, 'ada', log);
    sched.cancel(build.id);
    const row = store.getBuild(build.id);
    assert.deepEqual([row?.status, row?.open], ['cancelled', false]);
    assert.throws(() => s.record(String(build.id), [], 'ada'), code('COMPILE_SESSION_CLOSED'));
    clock.now += IDLE_MS;
    assert.deepEqual(s.closeIdle(), []);
    // And one closed by its client goes through the scheduler, which lets go of it.
    const other = s.open(request, 'ada', log).build;
    s.close(String(other.id), { exitCode: 0, summary }, 'ada', log);
    sched.cancel(other.id);
    assert.equal(store.getBuild(other.id)?.status, 'succeeded');
  });

  it('leave a session its client closed meanwhile alone', () => {
    const { sessions: s, clock } = sessions({
      builds: {
        submit: () => {},
        close: () => {
          throw new MusterError('COMPILE_SESSION_CLOSED', 'closed meanwhile');
        },
        addJob: noJobs,
      },
    });
    s.open(request, 'ada', log);
    clock.now += IDLE_MS;
    assert.deepEqual(s.closeIdle(), []);
  });

  it('run the idle check in a loop until stopped', async () => {
    const s = new CompileSessions({
      store,
      builds: { submit: () => {}, close: (id, end) => store.closeBuild(id, end), addJob: noJobs },
      blobs: noBlobs,
      uploads: noQuota,
      events: new EventBus(),
      agents: () => [],
      writes: () => true,
      log: silent,
      idleTimeoutMs: 40,
    });
    started.push(s);
    const { build } = s.open(request, 'ada', log);
    s.start();
    for (let i = 0; i < 1000 && store.getBuild(build.id)?.open; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(store.getBuild(build.id)?.error, 'the client went away');
    await s.stop();
    await s.stop();
  });
});
