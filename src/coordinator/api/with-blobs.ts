/** Writing a row that names uploaded blobs (a cache entry, a toolchain) without a sweep in between. */
import type { BlobSizeOf } from '../store/cache.js';
import type { ApiContext } from './context.js';

/** At most this many blobs are stat()ed on the event loop's thread (see BlobStore.sizeOfNow). */
const STAT_NOW_MAX = 16;

/**
 * Runs `write` with the blob store's sizes of `hashes`, those blobs held from the sweep until
 * the row that names them is written (then it keeps them, and they count as used: all of
 * `hashes`, or those `usedOf` the result names when `write` stores several rows and may refuse
 * some).
 */
export async function withBlobs<T>(
  ctx: Pick<ApiContext, 'uploads' | 'blobs'>,
  hashes: string[],
  write: (sizeOf: BlobSizeOf) => T,
  usedOf?: (result: T) => Iterable<string>,
): Promise<T> {
  const release = ctx.uploads.hold(hashes);
  try {
    const unique = [...new Set(hashes)];
    const sizes = new Map<string, number>();
    // A cache entry's few blobs are stat()ed at once; a toolchain's many through the pool.
    const now = unique.length <= STAT_NOW_MAX;
    for (const hash of unique) {
      const size = now ? ctx.blobs.sizeOfNow(hash) : await ctx.blobs.sizeOf(hash);
      if (size !== undefined) sizes.set(hash, size);
    }
    const result = write((hash) => sizes.get(hash));
    ctx.uploads.referenced(usedOf === undefined ? unique : usedOf(result));
    return result;
  } finally {
    release();
  }
}
