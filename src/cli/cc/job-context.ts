/**
 * What one compile job needs of the service that runs it (service.ts builds it; tests may build
 * their own): the cache tiers, the counters, the per-service memories (file hashes, toolchains,
 * system headers) and the ports to the coordinator.
 */
import type { Logger } from 'pino';
import type { CompilerPaths } from './compiler-path.js';
import type { ExplainLog } from './explain.js';
import type { FileHashes } from './file-hashes.js';
import type { LocalTier } from './local-tier.js';
import type { JobRecorder, SharedCache } from './ports.js';
import type { ShimHello, ShimRan } from './shim-protocol.js';
import type { StatsCounter } from './stats.js';
import type { SystemHeaders } from './system-headers.js';
import type { ToolchainIds } from './toolchain-ids.js';

export interface JobContext {
  readonly tier: LocalTier;
  readonly stats: StatsCounter;
  readonly hashes: FileHashes;
  readonly compilers: CompilerPaths;
  readonly toolchains: ToolchainIds;
  readonly systemHeaders: SystemHeaders;
  readonly explainLog: ExplainLog;
  readonly sharedCache: SharedCache | undefined;
  readonly recorder: JobRecorder | undefined;
  /**
   * Set when the coordinator could not be reached at the start (`muster build` without one):
   * every compile that is not served from the local tier is a fallback with this reason.
   */
  readonly offlineReason: string | undefined;
  readonly masqueradeDir: string | undefined;
  readonly shimPath: string | undefined;
  /** A private directory for the compiles' dependency lists. */
  readonly tempDir: string;
  readonly log: Logger;
  /** Work the shim does not wait for (uploads, explain records); stop() waits for it, bounded. */
  background(what: string, work: Promise<unknown>): void;
}

/** One shim's side of a job: its hello, and a way to have it run a program and report. */
export interface ShimExchange {
  readonly hello: ShimHello;
  /** Sends `run` (a token is added) and resolves with the matching `ran`. */
  run(program: {
    readonly path: string;
    readonly argv: readonly string[];
    readonly env: readonly string[];
  }): Promise<ShimRan>;
}
