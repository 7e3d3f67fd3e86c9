/**
 * Fetching a blob from an agent (a task's outputs): `blob.get`, then binary chunks answering its
 * id, hashed as they come and written to a temp file that is renamed into place only when the
 * hash matches (or gathered in memory).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MusterError } from '../errors.js';
import type { BlobTransferContext } from './blob-transfer-context.js';
import type { PendingRequest } from './request-table.js';

/** Downloads a blob into `file` (verified by hash, written atomically) or into memory. */
export async function downloadBlob(
  ctx: BlobTransferContext,
  sha256: string,
  file?: string,
): Promise<Buffer | undefined> {
  const id = ctx.requests.takeId();
  const hash = createHash('sha256');
  const parts: Buffer[] = [];
  const temp = file === undefined ? undefined : `${file}.${randomBytes(6).toString('hex')}.part`;
  if (file !== undefined) await mkdir(dirname(file), { recursive: true });
  const handle = temp === undefined ? undefined : await open(temp, 'w');
  let writes = Promise.resolve();
  let finished = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const pending: PendingRequest = {
        onMessage: () => false,
        onBlob: (header, data) => {
          hash.update(data);
          if (handle) {
            const chunk = data;
            writes = writes.then(async () => {
              await handle.write(chunk);
            });
          } else parts.push(data);
          if (header.last) {
            finished = true;
            ctx.requests.forget(id);
            resolve();
          }
        },
        reject,
      };
      ctx.requests.expect(id, pending);
      ctx.conn.sendJson({ t: 'blob.get', id, sha256 });
    });
    await writes;
    const actual = hash.digest('hex');
    if (actual !== sha256) {
      throw new MusterError('BLOB_HASH_MISMATCH', `blob ${sha256} arrived as ${actual}`, {
        sha256,
        actual,
      });
    }
    await handle?.close();
    if (temp !== undefined && file !== undefined) await rename(temp, file);
    return file === undefined ? Buffer.concat(parts) : undefined;
  } catch (err) {
    // eslint-disable-next-line no-restricted-syntax -- the error being thrown is the one to report
    await handle?.close().catch(() => undefined);
    if (temp !== undefined) await rm(temp, { force: true });
    throw err;
  } finally {
    if (!finished) ctx.requests.forget(id);
  }
}
