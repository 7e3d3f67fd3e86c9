/**
 * The shared cache on the coordinator (ports.ts `SharedCache`) over the CLI's API client: lookups
 * in one round trip, their answers checked, blobs fetched and checked against their hash and
 * size (a coordinator or a proxy that answers other bytes is a miss, never a wrong object),
 * stores that upload only the blobs the coordinator lacks and then write the entry and its
 * manifest line.
 */
import { createHash } from 'node:crypto';
import type { ApiClient } from '../api-client.js';
import type { CacheLookupView } from '../../api/views/compile.js';
import { MusterError } from '../../protocol/errors.js';
import { cacheLookupAnswer, checkAnswer } from './coordinator-answers.js';
import { CoordinatorGuard } from './coordinator-guard.js';
import type { NewCompileResult, SharedCache } from './ports.js';

type CacheApi = Pick<
  ApiClient,
  'cacheLookup' | 'getBlob' | 'missingBlobs' | 'putBlob' | 'putCacheEntry' | 'putManifestLine'
>;

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

  store(result: NewCompileResult): Promise<void> {
    return this.guard.run(() => this.upload(result));
  }

  private async upload(result: NewCompileResult): Promise<void> {
    const blobs = new Map<string, Buffer>();
    const outputs = result.outputs.map((output) => {
      const hash = sha256(output.data);
      blobs.set(hash, output.data);
      return { name: output.name, sha256: hash, size: output.data.length, mode: output.mode };
    });
    let stderr: { sha256: string; size: number } | null = null;
    if (result.stderr.length > 0) {
      stderr = { sha256: sha256(result.stderr), size: result.stderr.length };
      blobs.set(stderr.sha256, result.stderr);
    }
    const missing = await this.api.missingBlobs([...blobs.keys()]);
    for (const hash of missing) {
      const data = blobs.get(hash);
      if (data !== undefined) await this.api.putBlob(hash, data);
    }
    const buildId = this.buildId?.();
    await this.api.putCacheEntry(result.key, {
      outputs,
      stderr,
      exitCode: 0,
      toolchain: result.toolchain.id,
      ...(buildId === undefined ? {} : { buildId }),
    });
    if (result.manifest !== undefined)
      await this.api.putManifestLine(result.manifest.direct, {
        includes: result.manifest.includes,
        entry: result.key,
      });
  }
}
