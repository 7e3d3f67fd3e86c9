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
import { SHA256_PATTERN } from '../../protocol/manifest.js';
import { BLOB_COLUMNS } from '../store/blob-columns.js';
import type { WireRow } from '../store/replication.js';
import type { PeerClient } from './peer-client.js';

/** The blobs a replicated row refers to (store/blob-columns.ts: what fileLists reads too). */
export function blobsOfRow(table: string, row: WireRow | null): string[] {
  const columns = BLOB_COLUMNS.get(table);
  if (row === null || columns === undefined) return [];
  const out: string[] = [];
  const list = row[columns.list];
  if (typeof list === 'string') out.push(...shaList(list));
  const single = columns.single === undefined ? undefined : row[columns.single];
  if (typeof single === 'string' && SHA256_PATTERN.test(single)) out.push(single);
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
    if (typeof sha === 'string' && SHA256_PATTERN.test(sha)) out.push(sha);
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
