/**
 * The shared cache on the coordinator (ports.ts `SharedCache`) over the CLI's API client: lookups
 * in one round trip, their answers checked, blobs fetched and checked against their hash and
 * size (a coordinator or a proxy that answers other bytes is a miss, never a wrong object),
 * stores batched: a result waits up to `gatherMs` for others (RESULTS_GATHER_MS in the services:
 * a make -j2 ends a compile every few hundred ms, and a batch of one costs the coordinator and
 * this process a request each), and the results made while one upload is in flight go together
 * in the next (POST /cache/results within the route's bounds, CACHE_RESULTS_LIMITS: up to 64
 * results, their small blobs inline, one round trip instead of four a result; blobs over
 * INLINE_UPLOAD_BYTES are uploaded first as bytes, when the coordinator lacks them, at most
 * MAX_BATCH_UPLOAD_BYTES of them a batch; a result answered BLOB_NOT_FOUND — a failover between
 * those uploads and the batch — has its blobs uploaded again and is sent once more). A
 * coordinator that refuses clients' results (CACHE_CLIENT_RESULTS_REFUSED) is sent none, and no
 * blob, for BATCH_RETRY_MS or until the client switches coordinators: each refused batch would
 * leave its uploaded blobs unused, counted against the coordinator's upload quota until swept.
 * A coordinator without that route (an older one: 404) gets each result the old way — the blobs it lacks, the entry, the manifest line — and so does
 * a result whose manifest line alone is over the route's bounds. Each of those goes through the
 * guard on its own, so the first that gets no answer fails the rest at once. Batches are tried
 * again BATCH_RETRY_MS after such a 404, or at once when the API client has switched coordinators
 * (an upgrade, a failover to an upgraded backup, a failback): a service lives long.
 */
import { createHash } from 'node:crypto';
import { CACHE_RESULTS_LIMITS } from '../../api/requests.js';
import type { ApiClient, PutCacheResultsRequest } from '../api-client.js';
import type { CacheLookupView } from '../../api/views/compile.js';
import { MusterError, isErrorCode } from '../../protocol/errors.js';
import { cacheLookupAnswer, cacheResultsAnswer, checkAnswer } from './coordinator-answers.js';
import { CoordinatorGuard } from './coordinator-guard.js';
import type { DirectKeys } from './direct-keys.js';
import type { NewCompileResult, SharedCache } from './ports.js';

/**
 * Blobs up to this size ride inline in POST /cache/results (the route takes up to
 * CACHE_RESULTS_LIMITS.inlineBlobBytes); larger ones go first as bytes (PUT /blobs/{sha256},
 * streamed to disk). Inline, a blob is base64 in a JSON body the coordinator parses whole: about
 * 33 ms of its CPU a MiB (JSON parse, base64 check and decode, the garbage of multi-MB strings),
 * measured with re2's 0.5–1.2 MB objects at `-O3 -g`, against a request's own cost of a
 * millisecond or two. Lua's objects (1–44 KB) stay inline.
 */
export const INLINE_UPLOAD_BYTES = 64 * 1024;
/** Bytes of blobs uploaded on their own (over INLINE_UPLOAD_BYTES) for one batch. */
export const MAX_BATCH_UPLOAD_BYTES = 8 * 1024 * 1024;

type CacheApi = Pick<
  ApiClient,
  | 'cacheLookup'
  | 'getBlob'
  | 'missingBlobs'
  | 'putBlob'
  | 'putCacheEntry'
  | 'putCacheResults'
  | 'putManifestLine'
> &
  /** Where requests go (the API client's: it changes when the client switches coordinators). */
  Partial<Pick<ApiClient, 'url' | 'cacheDirects'>>;

type ResultRow = PutCacheResultsRequest['results'][number];

interface Queued {
  readonly result: NewCompileResult;
  /** Its entry and manifest line, as POST /cache/results takes them. */
  readonly row: ResultRow;
  /** Of `row` as JSON. */
  readonly rowBytes: number;
  /** Its blobs by hash, those that ride inline and the larger ones. */
  readonly inline: Map<string, Buffer>;
  readonly large: Map<string, Buffer>;
  /** Bytes of `inline`. */
  readonly inlineBytes: number;
  /** Bytes of `large`. */
  readonly largeBytes: number;
  resolve(): void;
  reject(err: unknown): void;
}

const LOOKUP_TIMEOUT_MS = 5_000;
const DIRECTS_TIMEOUT_MS = 10_000;
/** How long the services let a result wait for others to go in one request. */
export const RESULTS_GATHER_MS = 500;
/**
 * After a 404 to POST /cache/results, results go one by one for this long; after a refusal of
 * clients' results, none go for this long.
 */
export const BATCH_RETRY_MS = 60_000;

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
  /** The gathering wait in progress. */
  #gathering: NodeJS.Timeout | undefined;
  /** Set by flushNow(): nothing waits any more. */
  #hurry = false;
  /**
   * Set when the coordinator answered 404 to POST /cache/results (an older one): when, and at
   * which URL. Batches are tried again after BATCH_RETRY_MS, or at another URL.
   */
  #noBatches: { readonly at: number; readonly url: string | undefined } | undefined;
  /** Set when the coordinator refused clients' results: when, at which URL, and its answer. */
  #refused:
    | { readonly at: number; readonly url: string | undefined; readonly err: MusterError }
    | undefined;

  constructor(
    private readonly api: CacheApi,
    /** The compile session the results are made in, if any. */
    private readonly buildId?: () => number | undefined,
    /** Shared with the other ports to the same coordinator. */
    private readonly guard: CoordinatorGuard = new CoordinatorGuard(),
    private readonly now: () => number = Date.now,
    /** How long a result waits for others (0: sent at once, as tests want). */
    private readonly gatherMs = 0,
    /** The coordinator's direct keys as last heard (direct-keys.ts); absent: every key is looked up. */
    private readonly directs?: DirectKeys,
  ) {}

  /** Starts bringing the list of direct keys up to date, when it is old. */
  refreshDirects(): void {
    const api = this.api;
    if (this.directs === undefined || api.cacheDirects === undefined) return;
    this.directs.refresh((epoch, since) => api.cacheDirects!(epoch, since, DIRECTS_TIMEOUT_MS));
  }

  flushNow(): void {
    this.#hurry = true;
    clearTimeout(this.#gathering);
    this.#gathering = undefined;
    if (!this.#flushing && this.#queue.length > 0) void this.#flush();
  }

  /** Starts sending: at once, or after the gathering wait (one at a time). */
  #schedule(): void {
    if (this.#flushing || this.#gathering !== undefined) return;
    if (this.#hurry || this.gatherMs <= 0) {
      void this.#flush();
      return;
    }
    this.#gathering = setTimeout(() => {
      this.#gathering = undefined;
      void this.#flush();
    }, this.gatherMs);
  }

  lookup(request: { direct?: string; keys?: string[] }): Promise<CacheLookupView> {
    // A key surely not there is a miss without a request — unless the coordinator is paused:
    // then the lookup fails as before (the compile's fallback is counted).
    if (request.direct !== undefined && request.keys === undefined && !this.guard.paused) {
      this.refreshDirects();
      if (this.directs?.lacks(request.direct) === true)
        return Promise.resolve({ manifest: [], entries: [] });
    }
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
    const inline = new Map<string, Buffer>();
    const large = new Map<string, Buffer>();
    const ref = (data: Buffer): { sha256: string; size: number } => {
      const hash = sha256(data);
      (data.length <= INLINE_UPLOAD_BYTES ? inline : large).set(hash, data);
      return { sha256: hash, size: data.length };
    };
    if (result.manifest !== undefined) this.directs?.add(result.manifest.direct);
    const buildId = this.buildId?.();
    const row: ResultRow = {
      key: result.key,
      entry: {
        outputs: result.outputs.map((output) => ({
          name: output.name,
          ...ref(output.data),
          mode: output.mode,
        })),
        stderr: result.stderr.length > 0 ? ref(result.stderr) : null,
        exitCode: 0,
        toolchain: result.toolchain.id,
        ...(buildId === undefined ? {} : { buildId }),
      },
      ...(result.manifest === undefined
        ? {}
        : { manifest: { direct: result.manifest.direct, includes: result.manifest.includes } }),
    };
    let inlineBytes = 0;
    for (const data of inline.values()) inlineBytes += data.length;
    let largeBytes = 0;
    for (const data of large.values()) largeBytes += data.length;
    const rowBytes = Buffer.byteLength(JSON.stringify(row));
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({
        result,
        row,
        rowBytes,
        inline,
        large,
        inlineBytes,
        largeBytes,
        resolve,
        reject,
      });
      this.#schedule();
    });
  }

  /** Sends what is queued, a batch at a time, until nothing is. */
  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#take();
        try {
          await this.#send(batch);
        } catch (err) {
          for (const queued of batch) queued.reject(err);
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** The next batch: in order, within CACHE_RESULTS_LIMITS (at least one result). */
  #take(): Queued[] {
    const limits = CACHE_RESULTS_LIMITS;
    let count = 0;
    let blobs = 0;
    let inlineBytes = 0;
    let largeBytes = 0;
    let rowBytes = 0;
    for (const queued of this.#queue) {
      const over =
        count === limits.results ||
        blobs + queued.inline.size > limits.blobs ||
        inlineBytes + queued.inlineBytes > limits.inlineBytes ||
        largeBytes + queued.largeBytes > MAX_BATCH_UPLOAD_BYTES ||
        rowBytes + queued.rowBytes > limits.rowBytes;
      if (count > 0 && over) break;
      count++;
      blobs += queued.inline.size;
      inlineBytes += queued.inlineBytes;
      largeBytes += queued.largeBytes;
      rowBytes += queued.rowBytes;
    }
    return this.#queue.splice(0, count);
  }

  /** Settles every result of `batch` (a throw rejects those not settled). */
  async #send(batch: Queued[]): Promise<void> {
    const refused = this.#refusedNow();
    if (refused !== undefined) throw refused;
    try {
      await this.#sendEither(batch);
    } catch (err) {
      if (err instanceof MusterError && err.code === 'CACHE_CLIENT_RESULTS_REFUSED')
        this.#refused = { at: this.now(), url: this.api.url, err };
      throw err;
    }
  }

  /** The refusal to answer every result with now, if the coordinator refused them lately. */
  #refusedNow(): MusterError | undefined {
    const refused = this.#refused;
    if (refused === undefined) return undefined;
    if (this.api.url === refused.url && this.now() - refused.at < BATCH_RETRY_MS)
      return refused.err;
    this.#refused = undefined;
    return undefined;
  }

  async #sendEither(batch: Queued[]): Promise<void> {
    // A lone result whose rows are over the route's bounds: the one-by-one way.
    const alone = batch.length === 1 && batch[0]!.rowBytes > CACHE_RESULTS_LIMITS.rowBytes;
    if (this.#batchesNow() && !alone) {
      try {
        await this.guard.run(() => this.#sendBatch(batch));
        return;
      } catch (err) {
        if (!(err instanceof MusterError && err.code === 'NOT_FOUND')) throw err;
        this.#noBatches = { at: this.now(), url: this.api.url };
      }
    }
    // Each through the guard: once one got no answer, the others fail at once.
    for (const queued of batch) {
      await this.guard
        .run(() => this.#uploadOne(queued))
        .then(
          () => queued.resolve(),
          (err: unknown) => queued.reject(err),
        );
    }
  }

  /** Whether results go batched now (the coordinator did not say 404 lately, at this URL). */
  #batchesNow(): boolean {
    const no = this.#noBatches;
    if (no === undefined) return true;
    if (this.api.url === no.url && this.now() - no.at < BATCH_RETRY_MS) return false;
    this.#noBatches = undefined;
    return true;
  }

  /**
   * One POST of the batch, its large blobs uploaded first. A result answered BLOB_NOT_FOUND
   * whose large blobs were uploaded (the API client moved to another coordinator in between:
   * a failover, a failback) is sent again once, its blobs uploaded again.
   */
  async #sendBatch(batch: Queued[], again = false): Promise<void> {
    const inline = new Map<string, Buffer>();
    const large = new Map<string, Buffer>();
    let rowBytes = 0;
    for (const queued of batch) {
      for (const [hash, data] of queued.inline) inline.set(hash, data);
      for (const [hash, data] of queued.large) large.set(hash, data);
      rowBytes += queued.rowBytes;
    }
    await this.#uploadMissing(large);
    let inlineBytes = 0;
    for (const data of inline.values()) inlineBytes += data.length;
    const body: PutCacheResultsRequest = {
      results: batch.map((queued) => queued.row),
      blobs: [...inline].map(([hash, data]) => ({ sha256: hash, data: data.toString('base64') })),
    };
    const answer = checkAnswer(
      cacheResultsAnswer,
      await this.api.putCacheResults(body, rowBytes + Math.ceil((inlineBytes * 4) / 3)),
      'cache results answer',
    );
    const retry: Queued[] = [];
    batch.forEach((queued, i) => {
      const kept = answer.results[i];
      if (kept?.key !== queued.result.key)
        queued.reject(new MusterError('INTERNAL', 'the cache results answer is out of order'));
      else if (kept.stored) queued.resolve();
      else if (!again && kept.error.code === 'BLOB_NOT_FOUND' && queued.large.size > 0)
        retry.push(queued);
      else
        queued.reject(
          new MusterError(
            isErrorCode(kept.error.code) ? kept.error.code : 'INTERNAL',
            kept.error.message,
          ),
        );
    });
    if (retry.length > 0) await this.#sendBatch(retry, true);
  }

  /** One result the way a coordinator without POST /cache/results takes it. */
  async #uploadOne({ row, inline, large }: Queued): Promise<void> {
    await this.#uploadMissing(new Map([...inline, ...large]));
    await this.api.putCacheEntry(row.key, row.entry);
    if (row.manifest !== undefined)
      await this.api.putManifestLine(row.manifest.direct, {
        includes: row.manifest.includes,
        entry: row.key,
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
}
