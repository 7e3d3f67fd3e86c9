/**
 * The shared cache on the coordinator (ports.ts `SharedCache`) over the CLI's API client: lookups
 * in one round trip, their answers checked, blobs fetched and checked against their hash and
 * size (a coordinator or a proxy that answers other bytes is a miss, never a wrong object),
 * stores batched: the results made while one upload is in flight go together in the next
 * (POST /cache/results: up to 64 results, their small blobs inline, one round trip instead of
 * four a result; blobs over 1 MiB are uploaded first, when the coordinator lacks them). A
 * coordinator without that route (an older one: 404) gets each result the old way — the blobs
 * it lacks, the entry, the manifest line.
 */
import { createHash } from 'node:crypto';
import { CACHE_RESULTS_INLINE_BLOB_BYTES, CACHE_RESULTS_INLINE_BYTES } from '../../api/requests.js';
import type { ApiClient, PutCacheResultsRequest } from '../api-client.js';
import type { CacheLookupView } from '../../api/views/compile.js';
import { MusterError, isErrorCode } from '../../protocol/errors.js';
import { cacheLookupAnswer, cacheResultsAnswer, checkAnswer } from './coordinator-answers.js';
import { CoordinatorGuard } from './coordinator-guard.js';
import type { NewCompileResult, SharedCache } from './ports.js';

type CacheApi = Pick<
  ApiClient,
  | 'cacheLookup'
  | 'getBlob'
  | 'missingBlobs'
  | 'putBlob'
  | 'putCacheEntry'
  | 'putCacheResults'
  | 'putManifestLine'
>;

/** Results in one POST /cache/results (the route's own limit). */
const MAX_BATCH = 64;

interface Queued {
  readonly result: NewCompileResult;
  readonly blobs: Map<string, Buffer>;
  /** Bytes of its blobs that ride inline. */
  readonly inlineBytes: number;
  resolve(): void;
  reject(err: unknown): void;
}

const LOOKUP_TIMEOUT_MS = 5_000;

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The one checked blob fetch of the compile service: the API client stops reading past `size`,
 * and the bytes must hash to `hash`.
 */
export async function fetchCheckedBlob(
  api: Pick<ApiClient, 'getBlob'>,
  hash: string,
  size: number,
): Promise<Buffer> {
  const data = await api.getBlob(hash, size);
  if (data.length !== size || sha256(data) !== hash)
    throw new MusterError(
      'BLOB_HASH_MISMATCH',
      `the coordinator's blob ${hash} has other content (${data.length} bytes, ${size} expected)`,
    );
  return data;
}

export class CoordinatorCache implements SharedCache {
  #queue: Queued[] = [];
  #flushing = false;
  /** False once the coordinator answered 404 to POST /cache/results (an older one). */
  #batches = true;

  constructor(
    private readonly api: CacheApi,
    /** The compile session the results are made in, if any. */
    private readonly buildId?: () => number | undefined,
    /** Shared with the other ports to the same coordinator. */
    private readonly guard: CoordinatorGuard = new CoordinatorGuard(),
  ) {}

  lookup(request: { direct?: string; keys?: string[] }): Promise<CacheLookupView> {
    return this.guard.run(async () =>
      checkAnswer(
        cacheLookupAnswer,
        await this.api.cacheLookup(request, LOOKUP_TIMEOUT_MS),
        'cache lookup answer',
      ),
    );
  }

  fetchBlob(hash: string, size: number): Promise<Buffer> {
    return this.guard.run(() => fetchCheckedBlob(this.api, hash, size));
  }

  /** Settles when the coordinator has kept the result (or refused it: why). */
  store(result: NewCompileResult): Promise<void> {
    const blobs = blobsOf(result);
    let inlineBytes = 0;
    for (const data of blobs.values())
      if (data.length <= CACHE_RESULTS_INLINE_BLOB_BYTES) inlineBytes += data.length;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ result, blobs, inlineBytes, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  /** Sends what is queued, a batch at a time, until nothing is. */
  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#take();
        try {
          await this.guard.run(() => this.#send(batch));
        } catch (err) {
          for (const queued of batch) queued.reject(err);
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** The next batch: in order, at most MAX_BATCH results and the inline limit (at least one). */
  #take(): Queued[] {
    let bytes = 0;
    let count = 0;
    for (const queued of this.#queue) {
      if (count === MAX_BATCH) break;
      if (count > 0 && bytes + queued.inlineBytes > CACHE_RESULTS_INLINE_BYTES) break;
      bytes += queued.inlineBytes;
      count++;
    }
    return this.#queue.splice(0, count);
  }

  async #send(batch: Queued[]): Promise<void> {
    if (this.#batches) {
      try {
        await this.#sendBatch(batch);
        return;
      } catch (err) {
        if (!(err instanceof MusterError && err.code === 'NOT_FOUND')) throw err;
        this.#batches = false;
      }
    }
    for (const queued of batch) {
      await this.#uploadOne(queued).then(
        () => queued.resolve(),
        (err: unknown) => queued.reject(err),
      );
    }
  }

  async #sendBatch(batch: Queued[]): Promise<void> {
    const inline = new Map<string, Buffer>();
    const large = new Map<string, Buffer>();
    for (const queued of batch)
      for (const [hash, data] of queued.blobs)
        (data.length <= CACHE_RESULTS_INLINE_BLOB_BYTES ? inline : large).set(hash, data);
    await this.#uploadMissing(large);
    const body: PutCacheResultsRequest = {
      results: batch.map(({ result }) => ({
        key: result.key,
        entry: this.#entry(result),
        ...(result.manifest === undefined
          ? {}
          : {
              manifest: { direct: result.manifest.direct, includes: result.manifest.includes },
            }),
      })),
      blobs: [...inline].map(([hash, data]) => ({ sha256: hash, data: data.toString('base64') })),
    };
    const answer = checkAnswer(
      cacheResultsAnswer,
      await this.api.putCacheResults(body),
      'cache results answer',
    );
    batch.forEach((queued, i) => {
      const kept = answer.results[i];
      if (kept?.key !== queued.result.key)
        queued.reject(new MusterError('INTERNAL', 'the cache results answer is out of order'));
      else if (kept.stored) queued.resolve();
      else
        queued.reject(
          new MusterError(
            isErrorCode(kept.error.code) ? kept.error.code : 'INTERNAL',
            kept.error.message,
          ),
        );
    });
  }

  /** One result the way a coordinator without POST /cache/results takes it. */
  async #uploadOne({ result, blobs }: Queued): Promise<void> {
    await this.#uploadMissing(blobs);
    await this.api.putCacheEntry(result.key, this.#entry(result));
    if (result.manifest !== undefined)
      await this.api.putManifestLine(result.manifest.direct, {
        includes: result.manifest.includes,
        entry: result.key,
      });
  }

  async #uploadMissing(blobs: Map<string, Buffer>): Promise<void> {
    if (blobs.size === 0) return;
    const missing = await this.api.missingBlobs([...blobs.keys()]);
    for (const hash of missing) {
      const data = blobs.get(hash);
      if (data !== undefined) await this.api.putBlob(hash, data);
    }
  }

  #entry(result: NewCompileResult): PutCacheResultsRequest['results'][number]['entry'] {
    const buildId = this.buildId?.();
    return {
      outputs: result.outputs.map((output) => ({
        name: output.name,
        sha256: sha256(output.data),
        size: output.data.length,
        mode: output.mode,
      })),
      stderr:
        result.stderr.length > 0
          ? { sha256: sha256(result.stderr), size: result.stderr.length }
          : null,
      exitCode: 0,
      toolchain: result.toolchain.id,
      ...(buildId === undefined ? {} : { buildId }),
    };
  }
}

/** A result's blobs by hash: its outputs and, when it printed, its stderr. */
function blobsOf(result: NewCompileResult): Map<string, Buffer> {
  const blobs = new Map<string, Buffer>();
  for (const output of result.outputs) blobs.set(sha256(output.data), output.data);
  if (result.stderr.length > 0) blobs.set(sha256(result.stderr), result.stderr);
  return blobs;
}
