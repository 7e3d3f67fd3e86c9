/**
 * What the compile-session and cache routes answer (issue 13; requests in ../requests.ts).
 */

/** POST /api/v1/compile-sessions */
export interface CompileSessionView {
  /** The open build that collects the session's jobs. */
  buildId: number;
  /**
   * The session's key, for its records, jobs and close (…/compile-sessions/{session}/…): it
   * stays the same when a failback gives the build another id (the build id works too, until
   * then).
   */
  session: string;
  capacity: {
    agents: {
      name: string;
      slots: number;
      /** The agent runs on the client's machine (same boot id): it adds no cores. null: unknown. */
      sameMachine: boolean | null;
    }[];
  };
}

export interface CacheBlobView {
  sha256: string;
  size: number;
}

export interface CacheOutputView extends CacheBlobView {
  name: string;
  mode: number;
}

export interface CacheEntryView {
  key: string;
  kind: 'compile' | 'task';
  outputs: CacheOutputView[];
  stderr: CacheBlobView | null;
  exitCode: number;
  toolchain: string | null;
  source: 'client' | 'agent';
  createdAt: string;
}

export interface CacheManifestLineView {
  includes: [string, string][];
  entry: string;
}

/** POST /api/v1/cache/manifests/{direct}: whether the line is new (201) or was there (200). */
export interface ManifestLineAddedView {
  added: boolean;
}

/** POST /api/v1/cache/lookup */
export interface CacheLookupView {
  /** The direct key's lines, newest first (empty without a direct key or when it has none). */
  manifest: CacheManifestLineView[];
  /** The entries asked for by key and those the manifest lines lead to, that exist. */
  entries: CacheEntryView[];
}

/**
 * GET /api/v1/cache/directs: a page of the direct keys the shared cache has lines under, in the
 * order they came, each as its first 4 bytes (a client keeps the list and asks only about the
 * keys on it; a key not on it has nothing to find).
 */
export interface CacheDirectsView {
  /** This listing's numbering (new at every start of the coordinator). */
  epoch: string;
  /** The page starts from the first key (the epoch asked was another, or the number unknown). */
  reset: boolean;
  /** The keys' first 4 bytes each, big-endian, one after the other, base64. */
  prefixes: string;
  /** Ask again with `since` this for what comes after. */
  next: number;
  /** More keys follow this page. */
  more: boolean;
  /** Direct keys there are now. */
  count: number;
}

/** One result of POST /api/v1/cache/results: kept, or why not (the others are kept anyway). */
export type CacheResultView =
  | { key: string; stored: true; created: boolean }
  | { key: string; stored: false; error: { code: string; message: string } };

/** POST /api/v1/cache/results, in the order the results were sent. */
export interface CacheResultsView {
  results: CacheResultView[];
}

export interface ToolchainView {
  id: string;
  info: Record<string, unknown>;
  createdAt: string;
  /**
   * The connected agents that can run compile jobs with it now: synced with a bundle that
   * carries it, and not refused as incompatible since (for operators and tests).
   */
  agents: string[];
  /** Who registered it. (These five: absent from a coordinator that cannot remove toolchains.) */
  createdBy?: string;
  /** Its last use: a compile job that named it, or its registration (stamped at most every 10 minutes). */
  lastUsedAt?: string;
  /** How many files it has, and their bytes. */
  files?: number;
  bytes?: number;
  /**
   * Whether the bundle carries it now: the most recently used toolchains are shipped, as many
   * as fit (32, 4 GiB); one beyond runs its jobs on the client until a job names it again.
   */
  shipped?: boolean;
}

/**
 * POST /api/v1/compile-sessions/{id}/jobs. Only `succeeded` with `exitCode` 0 and an empty
 * `stderr` is a result to use as is (then the coordinator has also kept it in the shared cache
 * under `cacheKey`); anything else the client compiles itself (a compile error: to print the
 * real diagnostics) and settles the job with a record naming `task`.
 */
export interface CompileJobView {
  /** The job's task in the session's build (`job-N`). */
  task: string;
  /**
   * not-started: no agent slot within maxQueueMs, or no agent has the toolchain yet (`reason`);
   * lost: its agent went away while it ran; failed: the compiler failed, the agent could not
   * run it, or its result could not be read (`error`); cancelled: the session's build was
   * cancelled.
   */
  status: 'succeeded' | 'failed' | 'lost' | 'cancelled' | 'not-started';
  /** The agent it ran on. */
  agent: string | null;
  exitCode: number | null;
  /** What the compiler printed on stderr (UTF-8, the first 64 KiB) and how many bytes in all. */
  stderr: string;
  stderrBytes: number;
  /**
   * With succeeded and exit code 0: the object (GET /api/v1/blobs/{sha256}); null when the
   * compiler printed on stdout (reason `remote-stdout`: the client compiles here to show it).
   */
  object: CacheBlobView | null;
  /** The key of this exact job in the shared cache (api/compile-job-key.ts). */
  cacheKey: string;
  /**
   * Why it did not run remotely, or why its result is not to take, as a fallback reason
   * (`no-agent-slot`, `agent-lost`, `remote-stdout`, `remote-result-unreadable`, …).
   */
  reason: string | null;
  error: { code: string; message: string } | null;
}
