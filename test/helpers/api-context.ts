/**
 * The coordinator's HTTP API built from fakes of its ports (src/coordinator/api/ports.ts), for
 * route tests with Fastify's inject(). Users, tokens and settings live in a real SQLite store in
 * a temp dir: the auth hook and the user routes exercise the store's token and user semantics
 * (expiry, last use, deleting a user's tokens), which a fake would only imitate. Everything else
 * (agents, builds, blobs, HA) is a fake that records what the routes asked of it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { AgentSnapshot } from '../../src/coordinator/pool/agent-snapshot.js';
import type { StatusView } from '../../src/api/views/status.js';
import { hashPassword, newToken } from '../../src/coordinator/auth/passwords.js';
import type { ApiContext } from '../../src/coordinator/api/context.js';
import type {
  AgentDirectory,
  BackupHa,
  BlobAccess,
  HaStatus,
  UploadQuota,
} from '../../src/coordinator/api/ports.js';
import { buildServer } from '../../src/coordinator/api/server.js';
import { Builds } from '../../src/coordinator/builds/builds.js';
import { CompileSessions, capacityAgents } from '../../src/coordinator/compile/sessions.js';
import { EventBus } from '../../src/coordinator/events.js';
import type { JobHandle, NewCompileJob } from '../../src/coordinator/scheduler/compile-jobs.js';
import { Metrics } from '../../src/coordinator/metrics.js';
import { compileCoordinatorOptions } from '../../src/coordinator/options.js';
import { SecretKey } from '../../src/coordinator/secrets/secret-key.js';
import { Secrets } from '../../src/coordinator/secrets/secrets.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import type { AgentRow, BuildRow } from '../../src/coordinator/store/types.js';
import type { Bundle } from '../../src/protocol/client/bundle.js';

/** The password of every test user. */
export const PASSWORD = 'correct horse battery';

/** The agent pool as routes see it: views of registered rows, and what was asked. */
export class FakeAgents implements AgentDirectory {
  readonly rows = new Map<string, AgentRow>();
  readonly calls: string[] = [];
  /** The toolchains each agent can run now (its snapshot's `toolchains`). */
  readonly toolchains = new Map<string, string[]>();

  snapshots(): AgentSnapshot[] {
    return [...this.rows.keys()].sort().flatMap((name) => this.snapshot(name) ?? []);
  }

  snapshot(name: string): AgentSnapshot | undefined {
    const row = this.rows.get(name);
    if (!row) return undefined;
    return {
      name: row.name,
      host: row.host,
      port: row.port,
      status: 'connecting',
      slots: row.slots ?? 1,
      slotsFrom: row.slots === null ? 'unknown' : 'configured',
      busySlots: 0,
      labels: row.labels,
      tls: row.tls,
      fingerprint: row.fingerprint,
      lastError: null,
      agentVersion: null,
      instanceKey: null,
      lastConnectedAt: null,
      dialsOut: false,
      approved: true,
      facts: null,
      bootId: null,
      toolchains: this.toolchains.get(name) ?? [],
    };
  }

  add(row: AgentRow): void {
    this.calls.push(`add ${row.name}`);
    this.rows.set(row.name, row);
  }

  update(row: AgentRow): void {
    this.calls.push(`update ${row.name}`);
    this.rows.set(row.name, row);
  }

  remove(name: string): void {
    this.calls.push(`remove ${name}`);
    this.rows.delete(name);
  }

  async resyncAll(): Promise<void> {
    this.calls.push('resync');
  }
}

/** The scheduler as the build service and the agent routes see it. */
export class FakeScheduler {
  readonly submitted: number[] = [];
  readonly cancelled: number[] = [];
  scheduled = 0;

  submit(row: BuildRow): void {
    this.submitted.push(row.id);
  }

  cancel(buildId: number): void {
    this.cancelled.push(buildId);
  }

  schedule(): void {
    this.scheduled++;
  }

  /** Remote compile jobs: the test's runner (a real Scheduler's addJob), or refused. */
  jobs: ((buildId: number, job: NewCompileJob) => JobHandle) | undefined;

  addJob(buildId: number, job: NewCompileJob): JobHandle {
    if (!this.jobs) throw new Error('no remote jobs in this test');
    return this.jobs(buildId, job);
  }
}

/** Blobs by hash: only `present` exist; nothing is written. */
export function fakeBlobs(present: Set<string>): BlobAccess {
  return blobsOfSize((sha256) => (present.has(sha256) ? 0 : undefined));
}

/** Blobs that exist with the size `sizeOf` gives (undefined: missing); none uploaded or read. */
export function blobsOfSize(sizeOf: (sha256: string) => number | undefined): BlobAccess {
  return {
    missing: async (hashes) => [...hashes].filter((h) => sizeOf(h) === undefined),
    createWriter: () => Promise.reject(new Error('no uploads in this test')),
    sizeOf: async (sha256) => sizeOf(sha256),
    sizeOfNow: sizeOf,
    touchNow: (sha256) => sizeOf(sha256) !== undefined,
    writeNow: () => {
      throw new Error('no uploads in this test');
    },
    read: () => {
      throw new Error('no downloads in this test');
    },
  };
}

export const noQuota: UploadQuota = {
  hold: () => () => {},
  referenced: () => {},
  reserve: () => () => {},
};

/** A backup standing by (or active) for a primary at `primaryUrl`. */
export function backupHa(role: 'backup-standby' | 'backup-active', primaryUrl: string): HaStatus {
  const status: NonNullable<StatusView['primary']> = {
    url: primaryUrl,
    reachable: role === 'backup-standby',
    lastContact: null,
    lagSeconds: null,
    selected: true,
    state: role === 'backup-active' ? 'active' : 'standby',
    activeSince: null,
    replicationError: null,
    seenByPrimary: null,
  };
  const refuse = (): never => {
    throw new Error('not used by this test');
  };
  const backup: BackupHa = {
    statusView: () => status,
    authenticatePrimary: refuse,
    stateView: refuse,
    beginHandback: refuse,
    endHandback: refuse,
    takeoverRecord: () => undefined,
  };
  return { role: () => role, term: () => 3, primary: undefined, backup };
}

export interface TestApi {
  app: FastifyInstance;
  store: Store;
  ctx: ApiContext;
  agents: FakeAgents;
  scheduler: FakeScheduler;
  /** Bearer tokens of the users "admin" (an admin) and "viewer" (a viewer). */
  admin: string;
  viewer: string;
  /** Blobs that exist (fakeBlobs); add to it before a request. */
  present: Set<string>;
  /** Sends a request as `token` (a bearer token) and returns status and JSON body. */
  call(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    options?: { token?: string; body?: unknown },
  ): Promise<{ status: number; body: unknown }>;
  /** GET /metrics: the Prometheus text. */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

/** The API over a fresh store with an admin and a viewer; `override` replaces ports. */
export async function testApi(
  override: (defaults: ApiContext) => Partial<ApiContext> = () => ({}),
): Promise<TestApi> {
  const dir = await mkdtemp(join(tmpdir(), 'muster-routes-'));
  const store = openSqliteStore(join(dir, 'muster.db'));
  const options = compileCoordinatorOptions({
    listen: '127.0.0.1:0',
    data: dir,
    passwordCost: 14,
  });
  const passwordHash = await hashPassword(PASSWORD, { log2N: options.passwordCost });
  const expires = new Date(Date.now() + 3_600_000).toISOString();
  const tokenOf = (name: string, role: 'admin' | 'viewer'): string => {
    const user = store.createUser(name, role, passwordHash);
    const { token, hash } = newToken();
    store.createToken(user.id, hash, expires);
    return token;
  };
  const admin = tokenOf('admin', 'admin');
  const viewer = tokenOf('viewer', 'viewer');
  const agents = new FakeAgents();
  const scheduler = new FakeScheduler();
  const present = new Set<string>();
  const blobs = fakeBlobs(present);
  const metrics = new Metrics({
    agentsByStatus: () => ({}),
    runningAttempts: () => 0,
    queuedTasks: () => 0,
    activeBuilds: () => 0,
    cache: () => store.cache.totals(),
    ha: { backups: () => [], replication: () => undefined },
  });
  const bundle: Bundle = {
    manifest: { entry: 'main.js', files: [] },
    versionId: 'test',
    blobs: new Map(),
  };
  const events = new EventBus();
  const secrets = new Secrets(store, await SecretKey.open(dir, true));
  const defaults: ApiContext = {
    store,
    agents,
    secrets,
    builds: new Builds({
      store,
      blobs,
      uploads: noQuota,
      secrets,
      scheduler,
      onSubmitted: () => metrics.buildsSubmitted.inc(),
    }),
    compile: new CompileSessions({
      store,
      builds: {
        submit: (row) => scheduler.submit(row),
        close: (id, end) => store.closeBuild(id, end),
        addJob: (id, job) => scheduler.addJob(id, job),
      },
      blobs,
      uploads: noQuota,
      events,
      agents: () => capacityAgents(agents.snapshots()),
      writes: () => true,
      log: pino({ level: 'silent' }),
      idleTimeoutMs: 120_000,
    }),
    scheduler,
    blobs,
    uploads: noQuota,
    events,
    bundles: {
      get: async () => bundle,
      invalidate: () => {},
      stale: () => false,
      shippedToolchains: () => new Set<string>(),
    },
    metrics,
    options,
    hashPassword: (password) => hashPassword(password, { log2N: options.passwordCost }),
    version: '0.0.0-test',
    ha: { role: () => 'primary', term: () => 1, primary: undefined, backup: undefined },
    instanceId: () => 'test-instance',
    isReady: () => true,
    certificates: undefined,
  };
  const ctx = { ...defaults, ...override(defaults) };
  const app = buildServer(ctx, pino({ level: 'silent' }), () => {});
  await app.ready();
  return {
    app,
    store,
    ctx,
    agents,
    scheduler,
    admin,
    viewer,
    present,
    async call(method, url, { token, body } = {}) {
      const response = await app.inject({
        method,
        url,
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        ...(body === undefined ? {} : { payload: body as object }),
      });
      const text = response.body;
      return { status: response.statusCode, body: text === '' ? undefined : JSON.parse(text) };
    },
    async metrics() {
      return (await app.inject({ method: 'GET', url: '/metrics' })).body;
    },
    async close() {
      await app.close();
      store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
