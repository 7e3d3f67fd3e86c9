/**
 * Where replicated rows name blobs, by table: a column holding a JSON list of files (each with
 * a sha256), and a column holding one sha256 (a cache entry's stderr). One map for the sweep's
 * and the backup's list of blobs (ReplicationStore.fileLists) and for the blobs of one
 * replicated row (ha/blob-sync.ts blobsOfRow), so the two never disagree.
 */
export interface BlobColumns {
  /** A JSON list of `{ sha256, … }`. */
  readonly list: string;
  /** One sha256, or NULL. */
  readonly single?: string;
}

export const BLOB_COLUMNS: ReadonlyMap<string, BlobColumns> = new Map([
  ['builds', { list: 'files' }],
  ['tasks', { list: 'outputs' }],
  ['extensions', { list: 'files' }],
  ['toolchains', { list: 'files' }],
  ['cache_entries', { list: 'outputs', single: 'stderr_sha256' }],
]);

/** SQL answering one `list` column per row: every blob list of BLOB_COLUMNS, singles as lists of one. */
export function fileListsSql(): string {
  const parts: string[] = [];
  for (const [table, { list, single }] of BLOB_COLUMNS) {
    parts.push(`SELECT ${list} AS list FROM ${table}`);
    if (single !== undefined)
      parts.push(
        `SELECT json_array(json_object('sha256', ${single})) FROM ${table} WHERE ${single} IS NOT NULL`,
      );
  }
  return parts.join(' UNION ALL ');
}
