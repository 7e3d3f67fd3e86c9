/**
 * Whom a primary trusts, on real SQLite: registrations are capped and rate-limited and never
 * become callable; only the selected backup, and one deselected before it said it has nothing to
 * hand back, is; what a backup hands back is checked field by field before the store sees it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import {
  backupStateSchema,
  buildHistorySchema,
  fromBackup,
  handedBackTokensSchema,
} from '../../src/coordinator/ha/history-schema.js';
import { MAX_REGISTERED_BACKUPS, type PrimarySide } from '../../src/coordinator/ha/primary-side.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { MusterError } from '../../src/protocol/errors.js';
import { AnsweringPeer, primarySideFor } from '../helpers/primary-side.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-ha-trust-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const open: Store[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

function primary(): { side: PrimarySide; store: Store } {
  const store = openSqliteStore(join(dir, `db-${++counter}.sqlite`));
  open.push(store);
  const side = primarySideFor(store, dir, (backup) => new AnsweringPeer(backup.url));
  return { side, store };
}

function registration(name: string) {
  return {
    name,
    url: `https://${name}.example:8000`,
    fingerprint: null,
    certificate: null,
    secret: `secret-of-${name}-0123456789abcdef0123456789`,
  };
}

function refused(code: string): (err: unknown) => boolean {
  return (err) => err instanceof MusterError && err.code === code;
}

describe('registrations', () => {
  it('answer only whether the backup is selected', () => {
    const { side } = primary();
    assert.deepEqual(side.register(registration('b1')), { selected: false });
  });

  it('are rate-limited (new ones), while re-registrations always pass', () => {
    const { side } = primary();
    for (let i = 0; i < 10; i++) side.register(registration(`b${i}`));
    assert.throws(() => side.register(registration('b10')), refused('RATE_LIMITED'));
    for (let i = 0; i < 10; i++) side.register(registration(`b${i}`));
  });

  it(`are capped at ${MAX_REGISTERED_BACKUPS}, until an admin removes some`, (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 0 });
    const { side } = primary();
    for (let i = 0; i < MAX_REGISTERED_BACKUPS; i++) {
      side.register(registration(`b${i}`));
      t.mock.timers.tick(10_000); // slower than the rate limit
    }
    assert.throws(() => side.register(registration('one-more')), refused('RATE_LIMITED'));
    side.remove('b0');
    side.register(registration('one-more'));
  });

  it('tell an unselected heartbeat no ids, term or stream', async () => {
    const { side, store } = primary();
    side.register(registration('b1'));
    const row = store.backups.get('b1')!;
    assert.deepEqual(Object.keys(side.heartbeat(row)).sort(), ['certificates', 'role', 'selected']);
    await side.select('b1', 'admin');
    const selected = side.heartbeat(store.backups.get('b1')!);
    assert.equal(selected.instanceId, 'the-instance-id');
    assert.equal(typeof selected.stream, 'string');
  });
});

describe('the backups a primary calls', () => {
  it('are the selected one and those deselected before they settled; never a registration', async () => {
    const { side } = primary();
    for (const name of ['a', 'b', 'c']) side.register(registration(name));
    assert.deepEqual(side.trusted(), [], 'no one is selected: no one is called');
    await side.select('a', 'admin');
    assert.deepEqual(
      side.trusted().map((b) => b.name),
      ['a'],
    );
    await side.select('b', 'admin');
    assert.deepEqual(
      side.trusted().map((b) => b.name),
      ['b', 'a'],
      'a may have run the cluster: asked until it says it has nothing',
    );
    await side.select(null, 'admin');
    assert.deepEqual(
      side.trusted().map((b) => b.name),
      ['a', 'b'],
    );
    side.settle('a');
    assert.deepEqual(
      side.trusted().map((b) => b.name),
      ['b'],
    );
    side.remove('b');
    assert.deepEqual(side.trusted(), []);
    // Selecting one again makes it callable again; c never was.
    await side.select('a', 'admin');
    assert.deepEqual(
      side.trusted().map((b) => b.name),
      ['a'],
    );
  });
});

describe('what a backup hands back', () => {
  const build = {
    id: 1001,
    uid: '0123456789abcdef0123456789abcdef',
    status: 'succeeded',
    plan: '{"tasks":[]}',
    files: '[]',
    created_by: 'admin',
    created_at: '2026-12-05T10:00:00.000Z',
    started_at: '2026-12-05T10:00:01.000Z',
    finished_at: '2026-12-05T10:00:02.000Z',
    error: null,
    kind: 'plan',
    open: 0,
    summary: null,
  };
  const task = {
    build_id: 1001,
    name: 'hello',
    position: 0,
    status: 'succeeded',
    attempts: 1,
    exit_code: 0,
    agent: 'a1',
    started_at: build.started_at,
    finished_at: build.finished_at,
    outputs: '[]',
    error: null,
    label: null,
    cache: null,
    placement: null,
    fallback: null,
    spec: null,
  };
  const attempt = {
    id: 7,
    build_id: 1001,
    task_name: 'hello',
    number: 1,
    agent: 'a1',
    agent_task_id: 'b1001:hello:1',
    status: 'succeeded',
    started_at: build.started_at,
    finished_at: build.finished_at,
    exit_code: 0,
    error: null,
    next_seq: 3,
  };
  const log = {
    id: 9,
    build_id: 1001,
    task_name: 'hello',
    attempt: 1,
    stream: 'stdout',
    data: { $b64: 'aGVsbG8K' },
    at: build.finished_at,
  };
  const history = { build, tasks: [task], attempts: [attempt], logs: [log] };

  it('passes a history as a backup writes it', () => {
    assert.deepEqual(fromBackup(buildHistorySchema, history, 'history'), history);
  });

  it('refuses rows of another build or task, wrong types and unknown statuses', () => {
    const cases: [string, unknown][] = [
      ['a task of another build', { ...history, tasks: [{ ...task, build_id: 1 }] }],
      ['an attempt of an unknown task', { ...history, attempts: [{ ...attempt, task_name: 'x' }] }],
      ['a log chunk of another build', { ...history, logs: [{ ...log, build_id: 1 }] }],
      ['a status the store does not know', { ...history, build: { ...build, status: 'won' } }],
      ['a number where text goes', { ...history, build: { ...build, plan: 42 } }],
      ['a files list that is not a list', { ...history, build: { ...build, files: '{}' } }],
      ['a bad agent task id', { ...history, attempts: [{ ...attempt, agent_task_id: '../x' }] }],
      ['no build', { tasks: [], attempts: [], logs: [] }],
      ['an unknown build kind', { ...history, build: { ...build, kind: 'shell' } }],
      ['an open flag that is not 0 or 1', { ...history, build: { ...build, open: 2 } }],
      ['a summary that is not one', { ...history, build: { ...build, summary: '{"jobs":"x"}' } }],
      ['an unknown placement', { ...history, tasks: [{ ...task, placement: 'moon' }] }],
    ];
    for (const [what, value] of cases)
      assert.throws(
        () => fromBackup(buildHistorySchema, value, 'history'),
        refused('VALIDATION_FAILED'),
        what,
      );
  });

  it('takes tokens as hashes of named users, and no role', () => {
    const token = {
      user_name: 'admin',
      token_hash: 'a'.repeat(64),
      created_at: build.created_at,
      expires_at: build.finished_at,
      last_used_at: null,
      role: 'admin',
    };
    const [parsed] = fromBackup(handedBackTokensSchema, [token], 'tokens');
    assert.equal((parsed as Record<string, unknown>).role, undefined, 'a role is dropped');
    assert.throws(
      () => fromBackup(handedBackTokensSchema, [{ ...token, token_hash: 'mst_plain' }], 'tokens'),
      refused('VALIDATION_FAILED'),
    );
  });

  it('refuses a state with a term no one could outbid', () => {
    assert.throws(
      () => fromBackup(backupStateSchema, { state: 'active', term: 2 ** 53, history: true }, 's'),
      refused('VALIDATION_FAILED'),
    );
  });
});
