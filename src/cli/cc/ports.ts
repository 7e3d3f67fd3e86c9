/**
 * What the compile service needs from the coordinator, as interfaces: the service
 * (service.ts) is built and tested without one, and `muster build` / `muster cc --serve` give it
 * the real thing (coordinator-tier.ts, session-recorder.ts, over the CLI's API client). A port
 * that fails throws; the service then counts a fallback and carries on locally.
 */
import type { CompileRecord, CompileSummary } from '../../api/requests-types.js';
import type {
  CacheLookupView,
  CompileJobView,
  CompileSessionView,
} from '../../api/views/compile.js';
import type { CompileJobRequest } from '../api-client.js';
import type { Toolchain } from './toolchain.js';

/** One output of a compile to store: 'object' or 'depfile'. */
export interface StoredOutput {
  readonly name: 'object' | 'depfile';
  readonly data: Buffer;
  readonly mode: number;
}

export interface NewCompileResult {
  /** The result's key (a direct-mode result key, cache-key.ts, or a remote job's, compileJobKey). */
  readonly key: string;
  readonly outputs: readonly StoredOutput[];
  /** What the compiler printed (empty: nothing). */
  readonly stderr: Buffer;
  readonly toolchain: Toolchain;
  /** With direct mode: the manifest line that leads to `key`. */
  readonly manifest?: { readonly direct: string; readonly includes: [string, string][] };
}

/** The coordinator's shared cache. */
export interface SharedCache {
  lookup(request: { direct?: string; keys?: string[] }): Promise<CacheLookupView>;
  /** A blob the lookup named; checked against its hash and size by the implementation. */
  fetchBlob(sha256: string, size: number): Promise<Buffer>;
  /** Uploads the blobs and the toolchain if the coordinator lacks them, then the rows. */
  store(result: NewCompileResult): Promise<void>;
  /** Sends what waits to be sent now, and every later store at once (the service is stopping). */
  flushNow?(): void;
}

/** The open build that shows this session's jobs (batched by the implementation). */
export interface JobRecorder {
  record(record: CompileRecord): void;
  /** A job that ran on an agent (its task is the record): for summaries that count jobs. */
  noteRemote?(): void;
  close(exitCode: number | null, summary: CompileSummary): Promise<void>;
}

/** The compile session remote jobs go to, and its pool as the coordinator described it. */
export interface RemoteSession {
  readonly buildId: number;
  /** What its requests name it by: its key, or its build id (compileSessionPath). */
  readonly key: string;
  readonly capacity: CompileSessionView['capacity'];
}

/**
 * A toolchain on the coordinator: `ready` (registered, an agent has it — or it has been a while:
 * the job's answer says the rest); `registering` (uploading, or no agent has synced it yet:
 * compile here); or why registering failed, as a fallback reason.
 */
export type ToolchainState = 'ready' | 'registering' | 'no-coordinator' | 'remote-error';

/**
 * Compiles on the session's agents (design §2): the text and the toolchain go up first, then the
 * job, whose answer is checked by the implementation (coordinator-jobs.ts).
 */
export interface RemoteJobs {
  /** The session jobs go to, opened when needed; null when there is none now. */
  session(): Promise<RemoteSession | null>;
  /**
   * Whether jobs with the toolchain can go now, without waiting for its registration: the first
   * ask starts it in the background (asked once per id, uploaded when the coordinator lacks it).
   */
  toolchainState(toolchain: Toolchain): Promise<ToolchainState>;
  /**
   * The registration toolchainState started (settles when it is registered, or failed): work
   * the service's stop waits for, so that a build shorter than the upload still registers it.
   */
  ensureToolchain?(toolchain: Toolchain): Promise<unknown>;
  /** Uploads a directives-only text. */
  putText(sha256: string, data: Buffer): Promise<void>;
  /** Runs the job; resolves with its answer (a job that did not run is an answer too). */
  submit(session: string, job: CompileJobRequest): Promise<CompileJobView>;
  /** An object the answer named, checked against its hash and size. */
  fetchObject(sha256: string, size: number): Promise<Buffer>;
}

/** The service's ports to the coordinator (none, and why: `offlineReason`). */
export interface CoordinatorPorts {
  readonly sharedCache?: SharedCache;
  readonly remote?: RemoteJobs;
  readonly recorder?: JobRecorder;
  /** No coordinator for this service's life: compiles that miss locally count as fallbacks. */
  readonly offlineReason?: string;
}
