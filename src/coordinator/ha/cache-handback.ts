/**
 * Failback's part for the compile cache: the rows a backup made while it ran the cluster come
 * back a table at a time (toolchains, entries, then manifest lines, which need their entries),
 * page by page, with the blobs they name. The primary keeps what it has (cache rows are
 * immutable: the same key is the same result) and adds the rest with its own checks. A row that
 * fails them (a blob of another size, a line whose entry this primary has evicted meanwhile) is
 * skipped and counted; the cache is an optimisation, and a build never depends on one entry.
 */
import type { BlobStore } from '../../common/blob-store.js';
import { MusterError } from '../../protocol/errors.js';
import { manifestLineCursorKey, type CacheCursor, type CacheHistoryTable } from '../store/cache.js';
import type { Store } from '../store/store.js';
import { fetchMissingBlobs } from './blob-sync.js';
import { fromBackup, handedBackCacheSchemas } from './history-schema.js';
import type { PeerClient } from './peer-client.js';

/** Rows per page: manifest lines can list thousands of headers each. */
const PAGE: Record<CacheHistoryTable, number> = { toolchains: 100, entries: 500, manifests: 50 };

/** What storing a handed-back row may refuse; anything else (the database failing) stops. */
const SKIPPED_CODES = new Set([
  'BLOB_NOT_FOUND',
  'BLOB_SIZE_MISMATCH',
  'NOT_FOUND',
  'VALIDATION_FAILED',
  'INVALID_PATH',
]);

export interface CacheHandback {
  /** Rows this primary did not have, by table. */
  added: Record<CacheHistoryTable, number>;
  /** Rows refused by the store's checks. */
  skipped: number;
}

type Peer = Pick<PeerClient, 'json' | 'url'>;

/** Takes back the compile cache's rows the backup made since its takeover (it knows when). */
export async function takeBackCache(
  peer: Peer,
  store: Store,
  blobs: BlobStore,
): Promise<CacheHandback> {
  const result: CacheHandback = { added: { toolchains: 0, entries: 0, manifests: 0 }, skipped: 0 };
  const keep = (table: CacheHistoryTable, put: () => boolean): void => {
    try {
      if (put()) result.added[table]++;
    } catch (err) {
      if (!(err instanceof MusterError) || !SKIPPED_CODES.has(err.code)) throw err;
      result.skipped++;
    }
  };

  await pages(peer, 'toolchains', async (body) => {
    const { rows, next } = fromBackup(handedBackCacheSchemas.toolchains, body, 'cache toolchains');
    const last = rows.at(-1);
    const sizeOf = await fetchBlobs(
      peer,
      blobs,
      rows.flatMap((r) => r.files.map((f) => f.sha256)),
    );
    store.transaction(() => {
      for (const { createdAt, lastUsedAt, ...row } of rows)
        keep(
          'toolchains',
          () =>
            store.cache.putToolchain(
              {
                ...row,
                ...(lastUsedAt === undefined ? {} : { lastUsedAt: notAfterNow(lastUsedAt) }),
              },
              sizeOf,
              notAfterNow(createdAt),
            ).created,
        );
    });
    return { more: next !== null, last: last && { at: last.createdAt, key: last.id } };
  });
  await pages(peer, 'entries', async (body) => {
    const { rows, next } = fromBackup(handedBackCacheSchemas.entries, body, 'cache entries');
    const last = rows.at(-1);
    const hashes = rows.flatMap((r) => [
      ...r.outputs.map((o) => o.sha256),
      ...(r.stderr ? [r.stderr.sha256] : []),
    ]);
    const sizeOf = await fetchBlobs(peer, blobs, hashes);
    store.transaction(() => {
      for (const { createdAt, ...row } of rows)
        keep('entries', () => store.cache.putEntry(row, sizeOf, notAfterNow(createdAt)).created);
    });
    return { more: next !== null, last: last && { at: last.createdAt, key: last.key } };
  });
  await pages(peer, 'manifests', async (body) => {
    const { rows, next } = fromBackup(handedBackCacheSchemas.manifests, body, 'cache manifests');
    const last = rows.at(-1);
    store.transaction(() => {
      for (const { createdAt, ...row } of rows)
        keep('manifests', () => store.cache.putManifestLine(row, notAfterNow(createdAt)));
    });
    return {
      more: next !== null,
      last: last && {
        at: last.createdAt,
        key: manifestLineCursorKey(last.direct, last.includes),
      },
    };
  });
  return result;
}

/** The backup's stamp, but never later than now (a row from the future would never be evicted). */
function notAfterNow(at: string): string {
  const now = new Date().toISOString();
  return at < now ? at : now;
}

/**
 * At most this many pages of one table: a backup that keeps answering "more" (rows or not)
 * cannot hold the failback for ever (10,000 pages are 5 million entries).
 */
const MAX_PAGES = 10_000;

/** What a page handler took: whether the backup says there is more, and the last row's cursor. */
interface PageTaken {
  more: boolean;
  last: CacheCursor | undefined;
}

/**
 * Reads a table's pages until the last: an empty page, or one the backup says is the last. The
 * next page starts after the last row taken (its stamp and key, not a cursor the backup names),
 * which must be past the page before's.
 */
async function pages(
  peer: Peer,
  table: CacheHistoryTable,
  handle: (body: unknown) => Promise<PageTaken>,
): Promise<void> {
  let after: CacheCursor | null = null;
  for (let page = 0; ; page++) {
    if (page >= MAX_PAGES)
      throw new MusterError(
        'VALIDATION_FAILED',
        `the backup's cache ${table} run past ${MAX_PAGES} pages`,
      );
    let body: unknown;
    try {
      ({ body } = await peer.json(`/api/v1/ha/history/cache/${table}`, {
        query: { afterAt: after?.at, afterKey: after?.key, limit: PAGE[table] },
        timeoutMs: 60_000,
      }));
    } catch (err) {
      // A backup of a version without the cache knows no such route, and made no cache rows.
      if (after === null && err instanceof MusterError && err.code === 'NOT_FOUND') return;
      throw err;
    }
    const { more, last } = await handle(body);
    if (last === undefined) return;
    if (after !== null && (last.at < after.at || (last.at === after.at && last.key <= after.key)))
      throw new MusterError(
        'VALIDATION_FAILED',
        `the backup's cache ${table} pages do not move forward`,
      );
    if (!more) return;
    after = last;
  }
}

/** Fetches the blobs the store lacks from the backup; answers the sizes of those it now has. */
async function fetchBlobs(
  peer: Peer,
  blobs: BlobStore,
  hashes: string[],
): Promise<(sha256: string) => number | undefined> {
  const unique = [...new Set(hashes)];
  await fetchMissingBlobs(peer, blobs, unique);
  const sizes = new Map<string, number>();
  for (const sha256 of unique) {
    const size = await blobs.sizeOf(sha256);
    if (size !== undefined) sizes.set(sha256, size);
  }
  return (sha256) => sizes.get(sha256);
}
