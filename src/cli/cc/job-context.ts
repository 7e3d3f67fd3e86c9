/**
 * What one compile job needs of the service that runs it (service.ts builds it; tests may build
 * their own): the cache tiers, the counters, the per-service memories (file hashes, toolchains,
 * system headers) and the ports to the coordinator.
 */
import type { Compile } from './classify.js';
import type { CompilerPaths } from './compiler-path.js';
import type { DeferredStores } from './deferred-stores.js';
import type { ExplainLog } from './explain.js';
import type { FileHashes } from './file-hashes.js';
import type { LocalTier } from './local-tier.js';
import type { Placement } from './placement.js';
import type { CoordinatorPorts, JobRecorder, RemoteJobs, SharedCache } from './ports.js';
import type { ShimHello, ShimRan } from './shim-protocol.js';
import type { ServiceLog } from './service-log.js';
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
  /** Compiles on agents; undefined: every compile runs here. */
  readonly remote: RemoteJobs | undefined;
  readonly placement: Placement;
  /** A compile's own `MUSTER_CC_PLACEMENT` overrides `placement` (the per-user service). */
  readonly placementFromEnv: boolean;
  /** How long a remote job may wait for an agent slot (default: by placement). */
  readonly maxQueueMs: number | undefined;
  /** No lookups and no stores (`muster build --no-cache`); placement as usual. */
  readonly noCache: boolean;
  /** The compiles running here now, and this machine's cores (auto placement reads both). */
  readonly localSlots: { running: number; readonly cores: number };
  /**
   * Set when the coordinator could not be reached at the start (`muster build` without one):
   * every compile that is not served from the local tier is a fallback with this reason.
   */
  readonly offlineReason: string | undefined;
  readonly masqueradeDir: string | undefined;
  readonly shimPath: string | undefined;
  /** A private directory for the compiles' dependency lists. */
  readonly tempDir: string;
  readonly log: ServiceLog;
  /**
   * Local compiles' results waiting to be kept (the shim was answered); the service wakes it
   * when a compile ends, and drains it when it stops.
   */
  readonly stores: DeferredStores;
  /**
   * Work the shim does not wait for (kept results, uploads, explain records); stop() waits for
   * it, bounded — also for work that work adds.
   */
  background(what: string, work: Promise<unknown>): void;
}

export interface ShimProgram {
  readonly path: string;
  readonly argv: readonly string[];
  readonly env: readonly string[];
}

/** One shim's side of a job: its hello, and a way to have it run a program and report. */
export interface ShimExchange {
  readonly hello: ShimHello;
  /** Sends `run` (a token is added) and resolves with the matching `ran`. */
  run(program: ShimProgram): Promise<ShimRan>;
  /** Sends `cpp`: the same, but the shim only captures the program's stderr (never shows it). */
  cpp(program: ShimProgram): Promise<ShimRan>;
}

/** A compile as the service handles it: classified, its real compiler found. */
export interface CompileCall {
  readonly job: Compile;
  /** As the user named it. */
  readonly compiler: string;
  readonly path: string;
  readonly argv: readonly string[];
  /** The shim's environment (what the key reads). */
  readonly env: Record<string, string>;
  /** The compiler's. */
  readonly childEnv: Record<string, string>;
}

/** Every port named, absent ones as undefined (they replace the context's). */
export function portsOf(
  ports: CoordinatorPorts,
): Pick<JobContext, 'sharedCache' | 'remote' | 'recorder' | 'offlineReason'> {
  return {
    sharedCache: ports.sharedCache,
    remote: ports.remote,
    recorder: ports.recorder,
    offlineReason: ports.offlineReason,
  };
}
