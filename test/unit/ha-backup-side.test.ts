/**
 * A backup's state machine (ha/backup-states.ts, ha/backup-side.ts) with a fake primary (a
 * PeerClient that answers from a real primary store, or fails as if down), a fake engine and a
 * real SQLite store: every move of the table, and the ones it refuses.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { BackupSide } from '../../src/coordinator/ha/backup-side.js';
import {
  BACKUP_TRANSITIONS,
  nextBackupState,
  type BackupEvent,
  type BackupState,
} from '../../src/coordinator/ha/backup-states.js';
import type { EnginePort, LeaseSummary } from '../../src/coordinator/ha/engine-port.js';
import {
  PeerClient,
  type PeerRequest,
  type PeerResponse,
} from '../../src/coordinator/ha/peer-client.js';
import type { Plan } from '../../src/api/plan/types.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { BlobStore } from '../../src/common/blob-store.js';
import { MusterError } from '../../src/protocol/errors.js';
import { SecretKey } from '../../src/coordinator/secrets/secret-key.js';
import { Secrets } from '../../src/coordinator/secrets/secrets.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-ha-backup-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const STATES: BackupState[] = ['standby', 'taking-over', 'active', 'handing-back'];
const EVENTS: BackupEvent[] = [
  'takeover',
  'activate',
  'abandon',
  'handback',
  'handback-done',
  'primary-lost',
];

/** The primary as the backup sees it: answers from a real store while up, UNREACHABLE while down. */
class FakePrimary extends PeerClient {
  up = true;
  selected = true;
  calls: string[] = [];
  /** What /api/v1/ha/secrets-key answers (the primary's secrets key). */
  secretsKey: Buffer | undefined;

  constructor(readonly store: Store) {
    super(
      'https://primary.test:8000',
      () => 'secret',
      () => ({}),
    );
  }

  override async json<T>(path: string, options: PeerRequest = {}): Promise<PeerResponse<T>> {
    this.calls.push(path);
    if (!this.up) throw new MusterError('UNREACHABLE', 'primary.test:8000: ECONNREFUSED');
    const answer = (body: unknown, headers: Record<string, string> = {}): PeerResponse<T> => ({
      body: body as T,
      headers,
      fingerprint: undefined,
    });
    if (path === '/api/v1/ha/register') return answer({ selected: this.selected });
    if (path === '/api/v1/ha/heartbeat')
      return answer({ role: 'primary', selected: this.selected, certificates: [] });
    if (!this.selected) throw new MusterError('NOT_SELECTED', 'not the selected backup');
    if (path === '/api/v1/ha/snapshot') {
      const file = join(dir, `snap-${++counter}.db`);
      const { stream, seq } = this.store.replication.writeSnapshot(file);
      copyFileSync(file, options.toFile ?? '');
      return answer(null, { 'x-muster-stream': stream, 'x-muster-seq': String(seq) });
    }
    if (path === '/api/v1/ha/secrets-key' && this.secretsKey)
      return answer({ key: this.secretsKey.toString('base64') });
    if (path === '/api/v1/ha/changes') {
      const query = options.query ?? {};
      const page = this.store.replication.readChanges(String(query.stream), Number(query.after));
      // A long poll: a page with nothing new comes after a while.
      if (page.changes.length === 0) await new Promise((r) => setTimeout(r, 20));
      return answer({ ...page, primaryLastSeq: this.store.replication.lastSeq() });
    }
    throw new MusterError('NOT_FOUND', `no fake for ${path}`);
  }
}

class FakeEngine implements EnginePort {
  running = false;
  leases: LeaseSummary = { total: 1, held: 1, liveElsewhere: 0 };
  calls: string[] = [];

  startPool(term: number): void {
    this.running = true;
    this.calls.push(`startPool ${term}`);
  }
  leaseSummary(): LeaseSummary {
    return this.leases;
  }
  adoptOrphans(): Promise<number> {
    this.calls.push('adoptOrphans');
    return Promise.resolve(0);
  }
  startScheduler(): void {
    this.calls.push('startScheduler');
  }
  stop(release: boolean): Promise<void> {
    this.running = false;
    this.calls.push(`stop ${String(release)}`);
    return Promise.resolve();
  }
}

function plan(name: string): Plan {
  return {
    name: 'demo',
    tasks: [
      {
        name,
        extension: 'core',
        operation: 'run',
        input: { command: `echo ${name}` },
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
}

interface Setup {
  side: BackupSide;
  primary: FakePrimary;
  engine: FakeEngine;
  backupStore: Store;
  primaryStore: Store;
  logs: { level: number; msg: string; from?: string; to?: string }[];
  dataDir: string;
}

async function setup(secrets?: { primaryKey: Buffer; backupKey: SecretKey }): Promise<Setup> {
  const n = ++counter;
  const primaryStore = openSqliteStore(join(dir, `primary-${n}.sqlite`));
  const backupStore = openSqliteStore(join(dir, `backup-${n}.sqlite`));
  cleanups.push(
    () => primaryStore.close(),
    () => backupStore.close(),
  );
  primaryStore.ha.setTerm(4);
  primaryStore.replication.setRecording(true);
  const build = primaryStore.createBuild(plan('t'), [], 'ada');
  primaryStore.setBuildStatus(build.id, 'running');
  const primary = new FakePrimary(primaryStore);
  primary.secretsKey = secrets?.primaryKey;
  const engine = new FakeEngine();
  const logs: Setup['logs'] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs.push(JSON.parse(chunk.toString()) as Setup['logs'][number]);
        done();
      },
    }),
  );
  const dataDir = join(dir, `data-${n}`);
  mkdirSync(dataDir, { recursive: true });
  const side = new BackupSide(backupStore, new BlobStore(join(dataDir, 'blobs')), engine, log, {
    primaryUrl: primary.url,
    name: 'b1',
    url: () => 'https://b1.test:8000',
    fingerprint: null,
    certificate: null,
    primaryCa: undefined,
    joinToken: undefined,
    failoverTimeoutMs: 100,
    heartbeatMs: 10,
    dataDir,
    connect: () => primary,
    ...(secrets ? { secretKey: secrets.backupKey } : {}),
  });
  await side.start();
  cleanups.push(() => side.stop());
  const s: Setup = { side, primary, engine, backupStore, primaryStore, logs, dataDir };
  // Selected, with a copy of the primary's state.
  await until(() => side.hasState && side.statusView().lagSeconds === 0, 'the copy');
  assert.equal(backupStore.ha.term(), 4);
  return s;
}

/** Waits (no deadline: the test runner has one) until `done` holds. */
async function until(done: () => boolean, what: string): Promise<void> {
  void what;
  while (!done()) await new Promise((r) => setTimeout(r, 5));
}

function moves(s: Setup): string[] {
  return s.logs.flatMap((l) => (l.from !== undefined ? [`${l.from} → ${l.to ?? ''}`] : []));
}

async function takeOver(s: Setup, leases: LeaseSummary): Promise<void> {
  const takeovers = () => moves(s).filter((m) => m === 'standby → taking-over').length;
  const before = takeovers();
  s.engine.leases = leases;
  s.primary.up = false;
  await until(() => takeovers() > before, 'the takeover');
}

function refusedAsConflict(err: unknown): boolean {
  return err instanceof MusterError && err.code === 'CONFLICT';
}

describe('backup states: the table', () => {
  it('allows exactly the moves it lists, and refuses every other', () => {
    const allowed = new Map<string, BackupState>([
      ['standby takeover', 'taking-over'],
      ['taking-over activate', 'active'],
      ['taking-over abandon', 'standby'],
      ['standby handback', 'handing-back'],
      ['taking-over handback', 'handing-back'],
      ['active handback', 'handing-back'],
      ['handing-back handback-done', 'standby'],
      ['handing-back primary-lost', 'standby'],
    ]);
    for (const from of STATES)
      for (const event of EVENTS)
        assert.equal(
          nextBackupState(from, event),
          allowed.get(`${from} ${event}`),
          `${from} ${event}`,
        );
    assert.equal(
      BACKUP_TRANSITIONS.flatMap((t) => t.from).length,
      allowed.size,
      'one row per allowed move',
    );
  });
});

describe('a backup', () => {
  it('takes over when the primary is gone, and becomes active once the leases are its own', async () => {
    const s = await setup();
    assert.equal(s.side.state, 'standby');
    assert.equal(s.side.selected, true);
    assert.equal(s.side.primaryReachable, true);
    await takeOver(s, { total: 1, held: 1, liveElsewhere: 0 });
    await until(() => s.side.state === 'active', 'active');
    assert.equal(s.side.role, 'backup-active');
    assert.equal(s.backupStore.ha.term(), 5);
    const record = s.backupStore.ha.takeover();
    assert.equal(record?.term, 5);
    assert.deepEqual(record?.activeBuildIds, [1]);
    assert.ok(s.side.activeSince);
    assert.deepEqual(s.engine.calls, ['startPool 5', 'adoptOrphans', 'startScheduler']);
    assert.deepEqual(moves(s), ['standby → taking-over', 'taking-over → active']);
    const messages = s.logs.map((l) => l.msg);
    assert.ok(
      messages.includes(
        'the primary has been unreachable for the failover timeout: taking over the agents',
      ),
    );
    assert.ok(
      messages.includes('this backup is active: it runs the builds until the primary returns'),
    );
    assert.deepEqual(s.side.stateView(), { state: 'active', term: 5, history: true });
  });

  it('does not take over while it is not selected', async () => {
    const s = await setup();
    s.primary.selected = false;
    await until(() => !s.side.selected, 'the deselection');
    s.primary.up = false;
    await until(() => !s.side.primaryReachable, 'the primary gone');
    const lost = Date.now();
    await until(() => Date.now() - lost > 300, 'three failover timeouts');
    assert.equal(s.side.state, 'standby');
    assert.deepEqual(s.engine.calls, []);
    assert.equal(
      (JSON.parse(readFileSync(join(s.dataDir, 'ha.json'), 'utf8')) as { selected?: boolean })
        .selected,
      false,
    );
  });

  it('waits while agents are leased elsewhere, and abandons the takeover when the primary answers', async () => {
    const s = await setup();
    await takeOver(s, { total: 1, held: 0, liveElsewhere: 1 });
    assert.equal(s.backupStore.ha.term(), 5);
    assert.ok(s.backupStore.ha.takeover());
    s.primary.up = true;
    await until(() => s.side.state === 'standby', 'the abandon');
    await until(() => s.engine.calls.includes('stop true'), 'the engine stopped');
    await until(() => s.backupStore.ha.takeover() === undefined, 'the record restored');
    assert.deepEqual(moves(s), ['standby → taking-over', 'taking-over → standby']);
    assert.ok(s.logs.some((l) => l.msg === 'the primary answers again: not taking over'));
  });

  it('hands back: active → handing-back → standby, then a new snapshot', async () => {
    const s = await setup();
    await takeOver(s, { total: 1, held: 1, liveElsewhere: 0 });
    await until(() => s.side.state === 'active', 'active');
    s.primary.up = true;
    const begun = await s.side.beginHandback();
    assert.equal(s.side.state, 'handing-back');
    assert.equal(s.engine.running, false);
    assert.deepEqual(begun.builds, [1]);
    assert.equal(begun.term, 5);
    // The primary asks again (its failback failed half way): nothing moves.
    await s.side.beginHandback();
    assert.equal(s.side.state, 'handing-back');
    s.side.endHandback();
    assert.equal(s.side.state, 'standby');
    assert.equal(s.side.activeSince, undefined);
    assert.equal(s.backupStore.ha.takeover(), undefined);
    await until(() => s.side.statusView().lagSeconds === 0, 'a new copy');
    assert.deepEqual(moves(s), [
      'standby → taking-over',
      'taking-over → active',
      'active → handing-back',
      'handing-back → standby',
    ]);
    assert.ok(s.logs.some((l) => l.msg === 'failback complete: standing by again'));
  });

  it('hands back while taking over', async () => {
    const s = await setup();
    await takeOver(s, { total: 1, held: 0, liveElsewhere: 1 });
    const begun = await s.side.beginHandback();
    assert.equal(s.side.state, 'handing-back');
    assert.ok(s.engine.calls.includes('stop true'));
    assert.equal(begun.takeover?.term, 5);
    s.side.endHandback();
    assert.equal(s.side.state, 'standby');
  });

  it('stands by with the history kept when the primary is lost during the handback, and hands it back later', async () => {
    const s = await setup();
    await takeOver(s, { total: 1, held: 1, liveElsewhere: 0 });
    await until(() => s.side.state === 'active', 'active');
    // Agents leased elsewhere: a takeover after the loss (it may begin one) cannot complete.
    s.engine.leases = { total: 1, held: 0, liveElsewhere: 1 };
    await s.side.beginHandback();
    assert.equal(s.side.state, 'handing-back');
    await until(() => moves(s).includes('handing-back → standby'), 'the primary lost');
    assert.ok(
      s.logs.some(
        (l) => l.msg === 'the primary went away during failback: standing by with the history kept',
      ),
    );
    assert.ok(s.backupStore.ha.takeover(), 'the history is kept');
    // The primary answers: a takeover begun since is abandoned, keeping the first record.
    s.primary.up = true;
    await until(() => s.side.primaryReachable && s.side.state === 'standby', 'standing by');
    assert.deepEqual(s.side.stateView().history, true);
    const begun = await s.side.beginHandback();
    assert.equal(s.side.state, 'handing-back');
    assert.ok(begun.builds.includes(1));
    s.side.endHandback();
    assert.equal(s.side.state, 'standby');
    assert.equal(s.backupStore.ha.takeover(), undefined);
    assert.ok(moves(s).includes('handing-back → standby'));
    assert.ok(moves(s).includes('standby → handing-back'));
  });

  it('finishes a handback from standby (the primary was lost, then came back to finish it)', async () => {
    const s = await setup();
    await takeOver(s, { total: 1, held: 1, liveElsewhere: 0 });
    await until(() => s.side.state === 'active', 'active');
    s.engine.leases = { total: 1, held: 0, liveElsewhere: 1 };
    await s.side.beginHandback();
    await until(() => moves(s).includes('handing-back → standby'), 'the primary lost');
    s.primary.up = true;
    await until(() => s.side.primaryReachable && s.side.state === 'standby', 'standing by');
    const before = moves(s).length;
    s.side.endHandback();
    assert.equal(s.side.state, 'standby');
    assert.equal(s.backupStore.ha.takeover(), undefined);
    assert.ok(s.logs.some((l) => l.msg === 'failback complete: standing by again'));
    // No move: it was standing by already.
    assert.equal(moves(s).length, before);
  });

  it('refuses to end a handback while it runs the cluster or takes over', async () => {
    const s = await setup();
    await takeOver(s, { total: 1, held: 0, liveElsewhere: 1 });
    assert.throws(() => s.side.endHandback(), refusedAsConflict);
    assert.equal(s.side.state, 'taking-over');
    assert.ok(s.backupStore.ha.takeover(), 'the record is kept');
    s.engine.leases = { total: 1, held: 1, liveElsewhere: 0 };
    await until(() => s.side.state === 'active', 'active');
    assert.throws(() => s.side.endHandback(), refusedAsConflict);
    assert.equal(s.side.state, 'active');
    assert.ok(s.backupStore.ha.takeover(), 'the record is kept');
  });

  it('a handback begun in standby with nothing to hand back moves nothing', async () => {
    const s = await setup();
    const begun = await s.side.beginHandback();
    assert.deepEqual(begun, { term: 4, builds: [], takeover: null });
    assert.equal(s.side.state, 'standby');
    assert.deepEqual(moves(s), []);
  });

  it('keeps its loops running: one that throws is logged with its reason and restarted', async () => {
    const s = await setup();
    // Every read of the store throws from here on, also where a loop has no catch of its own
    // (replication asks the store whether it may replicate): before the supervisor, an
    // unhandled rejection that ended the process.
    s.backupStore.close();
    const restarts = (): string[] =>
      s.logs.map((l) => l.msg).filter((msg) => msg.startsWith('replication failed, restarting: '));
    await until(() => restarts().length >= 2, 'two restarts of the replication loop');
    assert.match(restarts()[0] ?? '', /database connection is not open/);
    await s.side.stop();
  });

  it("receives the primary's secrets key over its link, and opens the secrets it replicated", async () => {
    const primaryDir = join(dir, `secrets-primary-${++counter}`);
    const backupDir = join(dir, `secrets-backup-${counter}`);
    mkdirSync(primaryDir);
    mkdirSync(backupDir);
    const primaryKey = await SecretKey.open(primaryDir, true);
    const backupKey = await SecretKey.open(backupDir, false);
    assert.equal(backupKey.id, undefined);
    const s = await setup({ primaryKey: primaryKey.exportKey(), backupKey });
    assert.equal(backupKey.id, primaryKey.id, 'fetched with the snapshot');
    assert.ok(s.primary.calls.includes('/api/v1/ha/secrets-key'));
    new Secrets(s.primaryStore, primaryKey).set('API_TOKEN', 'the-value', 'ada');
    await until(() => s.backupStore.secrets.get('API_TOKEN') !== undefined, 'the secret');
    assert.deepEqual(new Secrets(s.backupStore, backupKey).values(['API_TOKEN']), {
      API_TOKEN: 'the-value',
    });
    assert.deepEqual(readFileSync(join(backupDir, 'secrets.key')), primaryKey.exportKey());
  });

  it('stops where it is: stop() ends the loops and moves nothing', async () => {
    const s = await setup();
    await takeOver(s, { total: 1, held: 1, liveElsewhere: 0 });
    await until(() => s.side.state === 'active', 'active');
    await s.side.stop();
    const calls = s.primary.calls.length;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(s.primary.calls.length, calls, 'no call after stop');
    assert.equal(s.side.state, 'active');
  });
});
