/**
 * The ports of the HTTP edge: what the routes ask of the rest of the coordinator, declared here
 * by what they use. The coordinator's classes satisfy them structurally (the store, the pool, the
 * build service, the HA sides…), nothing implements them for the API's sake, and route tests
 * pass fakes (test/unit/routes-*.test.ts).
 */
import type { Secrets } from '../secrets/secrets.js';
import type { BlobStore } from '../../common/blob-store.js';
import type { BuildFile } from '../../api/plan/types.js';
import type { CompileJobView } from '../../api/views/compile.js';
import type { StatusView } from '../../api/views/status.js';
import type { BlobSweeper } from '../blob-sweeper.js';
import type { BundleManager } from '../bundles.js';
import type { BuildFilter, BuildLog, BuildWithTasks, LogsFilter } from '../builds/builds.js';
import type { EventBus } from '../events.js';
import type { BackupSide } from '../ha/backup-side.js';
import type { PrimarySide } from '../ha/primary-side.js';
import type { Metrics } from '../metrics.js';
import type { AgentSnapshot } from '../pool/agent-snapshot.js';
import type { CompiledCoordinatorOptions } from '../options.js';
import type { Store } from '../store/store.js';
import type {
  AgentRow,
  AttemptRow,
  BuildRow,
  CompileRecord,
  CompileSummary,
  LogChunk,
  TaskRow,
} from '../store/types.js';
import type { CompileJobBody } from '../compile/jobs.js';
import type { SessionCapacity } from '../compile/sessions.js';
import type { CertificateManager } from '../tls/certificate-manager.js';

/** Builds: submit, cancel, delete, read (builds/builds.ts). */
export interface BuildService {
  submit(
    request: { plan: string; files: BuildFile[] },
    user: string,
    log: BuildLog,
  ): Promise<BuildWithTasks>;
  cancel(id: string, user: string, log: BuildLog): BuildWithTasks;
  delete(id: string, user: string, log: BuildLog, record: (build: BuildRow) => void): BuildRow;
  get(id: string): BuildWithTasks;
  list(filter: BuildFilter): BuildWithTasks[];
  logs(id: string, readFilter: () => LogsFilter): { chunks: LogChunk[]; next: number };
  attempts(id: string): AttemptRow[];
}

/** Compile sessions: open, report jobs, close (compile/sessions.ts). */
export interface CompileSessionService {
  open(
    request: { command: string; cwd: string; host: string; bootId?: string | undefined },
    user: string,
    log: BuildLog,
  ): { build: BuildRow; capacity: SessionCapacity };
  record(id: string, records: readonly CompileRecord[], user: string): TaskRow[];
  job(id: string, body: CompileJobBody, user: string, gone: AbortSignal): Promise<CompileJobView>;
  close(
    id: string,
    end: { exitCode: number | null; summary: CompileSummary },
    user: string,
    log: BuildLog,
  ): BuildWithTasks;
}

/** The registered agents as the pool sees them, and telling it of changes (pool/pool.ts). */
export interface AgentDirectory {
  snapshots(): AgentSnapshot[];
  snapshot(name: string): AgentSnapshot | undefined;
  /** Connects to an agent just registered. */
  add(row: AgentRow): void;
  /** An agent's labels or slots changed. */
  update(row: AgentRow): void;
  remove(name: string): void;
  /** Pushes the bundle again to every connected agent (the extensions changed). */
  resyncAll(): Promise<void>;
}

/** Schedules again (an agent's slots or labels changed). */
/** Secrets (secrets/secrets.ts): names and who set them; a value goes in, never out. */
export type SecretService = Pick<Secrets, 'set' | 'list' | 'get' | 'delete'>;

export interface Scheduling {
  schedule(): void;
}

/** What the routes read and write in the store themselves (store/store.ts). */
export type ApiStore = Pick<
  Store,
  // users, sessions and tokens
  | 'useToken'
  | 'createToken'
  | 'deleteToken'
  | 'deleteTokensOf'
  | 'getUser'
  | 'getUserById'
  | 'listUsers'
  | 'createUser'
  | 'setRole'
  | 'setPassword'
  | 'deleteUser'
  // settings
  | 'listSettings'
  | 'getSetting'
  | 'setSetting'
  // agents, extensions, status
  | 'addAgent'
  | 'getAgent'
  | 'updateAgent'
  | 'joinTokens'
  | 'removeAgent'
  | 'listExtensions'
  | 'putExtension'
  | 'removeExtension'
  | 'countActiveBuilds'
  // a compile session's build, named by a cache entry
  | 'getBuild'
  // a batch of cache results written at once
  | 'transaction'
> & {
  /** The audit log: recording changes, reading it, and a backup's rows taken back at failback. */
  audit: Pick<Store['audit'], 'record' | 'list' | 'exportSince'>;
  /** A backup's history, which its primary takes back at failback. */
  replication: Pick<Store['replication'], 'exportBuildHistory' | 'exportTokens'>;
  /**
   * The shared compile cache (cache-routes.ts) and its toolchains (toolchain-routes.ts), and
   * its rows a backup made, also taken back at failback.
   */
  cache: Pick<
    Store['cache'],
    | 'exportSince'
    | 'getEntry'
    | 'putEntry'
    | 'touch'
    | 'manifest'
    | 'putManifestLine'
    | 'getToolchain'
    | 'putToolchain'
    | 'toolchainSummaries'
    | 'directKeys'
    | 'touchToolchain'
    | 'removeToolchain'
  >;
};

export type BlobAccess = Pick<
  BlobStore,
  'missing' | 'createWriter' | 'sizeOf' | 'read' | 'sizeOfNow' | 'touchNow' | 'writeNow'
>;
/** The quota on unreferenced uploads, and what keeps blobs a request uses from being swept. */
export type UploadQuota = Pick<BlobSweeper, 'hold' | 'referenced' | 'reserve'>;
export type EventSource = Pick<EventBus, 'subscribe'>;
/** The host runtime and extensions pushed to agents (bundles.ts). */
export type BundleSource = Pick<
  BundleManager,
  'get' | 'invalidate' | 'stale' | 'shippedToolchains'
>;
export type ApiMetrics = Pick<
  Metrics,
  'registry' | 'loginFailures' | 'blobBytesReceived' | 'cacheLookups'
>;
export type ApiOptions = Pick<
  CompiledCoordinatorOptions,
  | 'tls'
  | 'requestTimeoutMs'
  | 'idleTimeoutMs'
  | 'keepAliveTimeoutMs'
  | 'passwordCost'
  | 'tokenTtlMs'
  | 'maxUploadBytes'
  | 'advertiseUrl'
  | 'haHeartbeatMs'
>;
/** The certificate a TLS coordinator serves, and replacing it (tls/certificate-manager.ts). */
export type ServedCertificate = Pick<CertificateManager, 'view' | 'replace'>;

/** A primary's side of high availability, as the routes use it (ha/primary-side.ts). */
export type PrimaryHa = Pick<
  PrimarySide,
  | 'list'
  | 'select'
  | 'remove'
  | 'register'
  | 'authenticate'
  | 'heartbeat'
  | 'changes'
  | 'snapshot'
  | 'secretsKey'
  | 'selected'
  | 'requireSelected'
  | 'lastDeselection'
  | 'awaitPin'
>;

/** A backup's side of high availability, as the routes use it (ha/backup-side.ts). */
export type BackupHa = Pick<
  BackupSide,
  | 'statusView'
  | 'authenticatePrimary'
  | 'stateView'
  | 'beginHandback'
  | 'endHandback'
  | 'takeoverRecord'
>;

/** Which role this coordinator plays, under which term, and its side of high availability. */
export interface HaStatus {
  role(): StatusView['role'];
  /** The fencing term this coordinator works under. */
  term(): number;
  /** Set on a primary. */
  primary: PrimaryHa | undefined;
  /** Set on a backup. */
  backup: BackupHa | undefined;
}
