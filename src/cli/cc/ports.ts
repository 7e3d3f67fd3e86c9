/**
 * What the compile service needs from the coordinator, as interfaces: the service
 * (service.ts) is built and tested without one, and `muster build` / `muster cc --serve` give it
 * the real thing (coordinator-tier.ts, session-recorder.ts, over the CLI's API client). A port
 * that fails throws; the service then counts a fallback and carries on locally.
 */
import type { CompileRecord, CompileSummary } from '../../api/requests-types.js';
import type { CacheLookupView } from '../../api/views/compile.js';
import type { Toolchain } from './toolchain.js';

/** One output of a compile to store: 'object' or 'depfile'. */
export interface StoredOutput {
  readonly name: 'object' | 'depfile';
  readonly data: Buffer;
  readonly mode: number;
}

export interface NewCompileResult {
  /** The result's key (a direct-mode result key or a preprocessor key, cache-key.ts). */
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
}

/** The open build that shows this session's jobs (batched by the implementation). */
export interface JobRecorder {
  record(record: CompileRecord): void;
  close(exitCode: number | null, summary: CompileSummary): Promise<void>;
}
