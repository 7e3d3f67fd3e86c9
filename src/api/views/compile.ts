/**
 * What the compile-session and cache routes answer (issue 13; requests in ../requests.ts).
 */

/** POST /api/v1/compile-sessions */
export interface CompileSessionView {
  /** The open build that collects the session's jobs. */
  buildId: number;
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

/** POST /api/v1/cache/lookup */
export interface CacheLookupView {
  /** The direct key's lines, newest first (empty without a direct key or when it has none). */
  manifest: CacheManifestLineView[];
  /** The entries asked for by key and those the manifest lines lead to, that exist. */
  entries: CacheEntryView[];
}

export interface ToolchainView {
  id: string;
  info: Record<string, unknown>;
  createdAt: string;
}
