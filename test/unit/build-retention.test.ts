/**
 * The retention pass (builds/retention.ts) on real SQLite: ended builds older than
 * Builds.Retention go with everything of theirs, recent, queued and running builds and open
 * compile sessions stay, the work is done in batches (one audit row each), and unset, 0 or an
 * unreadable setting keeps everything. The housekeeping loop runs it on a primary only.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import type { Plan } from '../../src/api/plan/types.js';
import type { BlobSweeper } from '../../src/coordinator/blob-sweeper.js';
import {
  BUILDS_RETENTION_SETTING,
  BuildRetention,
  buildsRetentionMs,
} from '../../src/coordinator/builds/retention.js';
import { Housekeeping } from '../../src/coordinator/housekeeping.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-retention-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const log = pino({ level: 'silent' });

const open: Store[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

let clock = new Date('2030-01-01T00:00:00.000Z');
function store(): Store {
  const s = openSqliteStore(join(dir, `db-${++counter}.sqlite`), { now: () => clock });
  open.push(s);
  return s;
}

const plan: Plan = {
  name: 'demo',
  tasks: [
    {
      name: 't1',
      extension: 'core',
      operation: 'run',
      input: { command: 'echo t1' },
      inputs: [],
      outputs: [],
      needs: [],
      env: {},
      timeoutMs: undefined,
      retries: 0,
      requires: [],
    },
  ],
};

/** A build with a task, an attempt and a log chunk, left in `status` (ended at the clock). */
function build(s: Store, status: 'succeeded' | 'failed' | 'cancelled' | 'running' | 'queued') {
  const { id } = s.createBuild(plan, [], 'ada');
  if (status === 'queued') return id;
  s.setBuildStatus(id, 'running', { startedAt: clock.toISOString() });
  s.createAttempt({
    buildId: id,
    taskName: 't1',
    number: 1,
    agent: 'a1',
    agentTaskId: `b${id}:t1:1`,
    status: 'running',
    startedAt: clock.toISOString(),
  });
  s.appendLog({
    buildId: id,
    taskName: 't1',
    attempt: 1,
    stream: 'stdout',
    data: Buffer.from('hi\n'),
    at: clock.toISOString(),
  });
  if (status !== 'running') s.setBuildStatus(id, status, { finishedAt: clock.toISOString() });
  return id;
}

const at = (iso: string) => () => Date.parse(iso);

describe('build retention', () => {
  it('reads the setting: a duration with a unit; unset, empty, 0 or unreadable keep forever', () => {
    assert.equal(buildsRetentionMs('30d'), 30 * 86_400_000);
    assert.equal(buildsRetentionMs('90m'), 90 * 60_000);
    for (const forever of [undefined, '', '0', '0d', '30', 'soon', 30, null])
      assert.equal(buildsRetentionMs(forever), undefined, String(forever));
  });

  it('deletes ended builds older than the retention and keeps recent, queued, running and open ones', async () => {
    const s = store();
    clock = new Date('2030-01-01T00:00:00.000Z');
    const old = [build(s, 'succeeded'), build(s, 'failed'), build(s, 'cancelled')];
    const running = build(s, 'running');
    const queued = build(s, 'queued');
    const session = s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' }).id;
    clock = new Date('2030-01-09T00:00:00.000Z');
    const recent = build(s, 'succeeded');
    s.setSetting(BUILDS_RETENTION_SETTING, '7d');
    const result = await new BuildRetention(s, log, { now: at('2030-01-10T00:00:00.000Z') }).pass();
    assert.deepEqual(result, { deleted: 3, endedBefore: '2030-01-03T00:00:00.000Z' });
    for (const id of old) {
      assert.equal(s.getBuild(id), undefined);
      assert.deepEqual([s.listTasks(id), s.listAttempts(id), s.readLogs(id, {})], [[], [], []]);
    }
    for (const id of [running, queued, session, recent]) assert.ok(s.getBuild(id), String(id));
    assert.equal(s.readLogs(running, {}).length, 1);
    const rows = s.audit.list({});
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.action, 'builds.retention');
    assert.equal(rows[0]?.actorKind, 'system');
    assert.deepEqual(rows[0]?.details, {
      deleted: 3,
      retention: '7d',
      endedBefore: '2030-01-03T00:00:00.000Z',
    });
    // Nothing more to delete: no pass, no row.
    const again = await new BuildRetention(s, log, { now: at('2030-01-10T00:00:00.000Z') }).pass();
    assert.equal(again.deleted, 0);
    assert.equal(s.audit.list({}).length, 1);
  });

  it('works in batches, one transaction and audit row each, oldest first', async () => {
    const s = store();
    clock = new Date('2030-01-01T00:00:00.000Z');
    const ids = Array.from({ length: 7 }, () => build(s, 'succeeded'));
    s.setSetting(BUILDS_RETENTION_SETTING, '1d');
    const retention = new BuildRetention(s, log, { batch: 3, now: at('2030-02-01T00:00:00.000Z') });
    assert.equal((await retention.pass()).deleted, 7);
    assert.deepEqual(
      s.audit
        .list({})
        .map((r) => r.details.deleted)
        .reverse(),
      [3, 3, 1],
    );
    for (const id of ids) assert.equal(s.getBuild(id), undefined);
  });

  it('ends a pass between batches once told to stop', async () => {
    const s = store();
    clock = new Date('2030-01-01T00:00:00.000Z');
    const ids = Array.from({ length: 5 }, () => build(s, 'succeeded'));
    s.setSetting(BUILDS_RETENTION_SETTING, '1d');
    const retention = new BuildRetention(s, log, { batch: 2, now: at('2030-02-01T00:00:00.000Z') });
    let batches = 0;
    const result = await retention.pass(() => batches++ < 1);
    assert.equal(result.deleted, 2);
    assert.deepEqual(
      ids.map((id) => s.getBuild(id) !== undefined),
      [false, false, true, true, true],
    );
  });

  it('keeps everything with the setting unset, cleared or 0', async () => {
    const s = store();
    clock = new Date('2030-01-01T00:00:00.000Z');
    const id = build(s, 'succeeded');
    const retention = new BuildRetention(s, log, { now: at('2040-01-01T00:00:00.000Z') });
    for (const value of [undefined, '', '0']) {
      s.setSetting(BUILDS_RETENTION_SETTING, value);
      assert.deepEqual(await retention.pass(), { deleted: 0 });
    }
    assert.ok(s.getBuild(id));
    assert.equal(s.audit.list({}).length, 0);
  });

  it('is run by housekeeping before the blob sweep, only while this coordinator is a primary', async () => {
    const s = store();
    const passes: string[] = [];
    let primary = false;
    const sweeps: string[] = [];
    const uploads = {
      sweep: () => {
        sweeps.push(`sweep after ${passes.length} passes`);
        return Promise.resolve({ removed: 0, removedBytes: 0, pendingBytes: 0 });
      },
    } as unknown as BlobSweeper;
    const housekeeping = new Housekeeping(s, uploads, 3_600_000, log, () => true, undefined, {
      pass: () => {
        passes.push('pass');
        return Promise.resolve({ deleted: 0 });
      },
      applies: () => primary,
    });
    await housekeeping.deleteOldBuilds();
    assert.deepEqual(passes, []);
    primary = true;
    await housekeeping.deleteOldBuilds();
    assert.deepEqual(passes, ['pass']);
    housekeeping.start();
    housekeeping.stop();
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(passes, ['pass', 'pass']);
    assert.deepEqual(sweeps, ['sweep after 2 passes']);
  });
});
