/**
 * Copies blobs between a primary and its backup: the builds' input files, the tasks' outputs, the
 * extensions' and toolchains' files and the cache entries' outputs and stderr, each downloaded to
 * a temporary file, checked against its SHA-256 and only then put in the store.
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobStore } from '../../common/blob-store.js';
import { hashFile } from '../../protocol/client/bundle.js';
import { MusterError } from '../../protocol/errors.js';
import type { WireRow } from '../store/replication.js';
import type { PeerClient } from './peer-client.js';

const SHA256 = /^[0-9a-f]{64}$/;

/** The column of a replicated row that holds a JSON list of files, by table. */
const FILE_LIST_COLUMNS: ReadonlyMap<string, string> = new Map([
  ['builds', 'files'],
  ['tasks', 'outputs'],
  ['extensions', 'files'],
  ['toolchains', 'files'],
  ['cache_entries', 'outputs'],
]);

/** The blobs a replicated row refers to (the same as ReplicationStore.fileLists reads). */
export function blobsOfRow(table: string, row: WireRow | null): string[] {
  if (row === null) return [];
  const out: string[] = [];
  const column = FILE_LIST_COLUMNS.get(table);
  const value = column === undefined ? undefined : row[column];
  if (typeof value === 'string') out.push(...shaList(value));
  // A cache entry's stderr is a blob of its own column.
  const stderr = table === 'cache_entries' ? row.stderr_sha256 : undefined;
  if (typeof stderr === 'string' && SHA256.test(stderr)) out.push(stderr);
  return out;
}

/** The sha256 fields of a JSON list of files. */
export function shaList(json: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const out: string[] = [];
  for (const file of parsed) {
    const sha = (file as { sha256?: unknown } | null)?.sha256;
    if (typeof sha === 'string' && SHA256.test(sha)) out.push(sha);
  }
  return out;
}

/** Downloads every blob of `hashes` the store lacks; returns how many it fetched. */
export async function fetchMissingBlobs(
  peer: Pick<PeerClient, 'json' | 'url'>,
  blobs: BlobStore,
  hashes: Iterable<string>,
): Promise<number> {
  let fetched = 0;
  for (const sha256 of await blobs.missing(new Set(hashes))) {
    const temp = join(blobs.incomingDir, `peer-${randomUUID()}`);
    try {
      await peer.json(`/api/v1/ha/blobs/${sha256}`, { toFile: temp, timeoutMs: 600_000 });
      const actual = await hashFile(temp);
      if (actual !== sha256) {
        throw new MusterError(
          'BLOB_HASH_MISMATCH',
          `blob ${sha256} from ${peer.url} has the hash ${actual}`,
        );
      }
      await blobs.commit(temp, sha256);
      fetched++;
    } finally {
      await rm(temp, { force: true });
    }
  }
  return fetched;
}
