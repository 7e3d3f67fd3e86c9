/** Writing a row that names uploaded blobs (a cache entry, a toolchain) without a sweep in between. */
import type { BlobSizeOf } from '../store/cache.js';
import type { ApiContext } from './context.js';

/**
 * Runs `write` with the blob store's sizes of `hashes`, those blobs held from the sweep until
 * the row that names them is written (then it keeps them, and they count as used).
 */
export async function withBlobs<T>(
  ctx: Pick<ApiContext, 'uploads' | 'blobs'>,
  hashes: string[],
  write: (sizeOf: BlobSizeOf) => T,
): Promise<T> {
  const release = ctx.uploads.hold(hashes);
  try {
    const unique = [...new Set(hashes)];
    const sizes = new Map<string, number>();
    for (const hash of unique) {
      const size = await ctx.blobs.sizeOf(hash);
      if (size !== undefined) sizes.set(hash, size);
    }
    const result = write((hash) => sizes.get(hash));
    ctx.uploads.referenced(unique);
    return result;
  } finally {
    release();
  }
}
