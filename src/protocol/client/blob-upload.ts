/**
 * Sending blobs to an agent: offer them (a bundle's manifest, or task inputs), then stream the
 * ones the agent says it lacks as binary chunks answering the offer's id, with back-pressure.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { MusterError } from '../errors.js';
import type { AgentMessage, ClientRequest } from '../messages.js';
import type { BlobTransferContext } from './blob-transfer-context.js';
import type { BlobSource } from './bundle.js';

export interface UploadBlob {
  sha256: string;
  size: number;
  source: BlobSource;
}

const CHUNK_BYTES = 1024 * 1024;
const PREFETCH_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Offers blobs (sync.offer or blobs.offer), sends the ones the agent says it needs, and
 * resolves once the agent confirmed and every chunk was sent.
 */
export async function offerAndUpload(
  ctx: BlobTransferContext,
  offer: Extract<ClientRequest, { t: 'sync.offer' | 'blobs.offer' }>,
  lookup: (sha256: string) => UploadBlob | undefined,
  doneType: 'sync.done' | 'blobs.stored',
): Promise<{ final: AgentMessage; sent: { blobs: number; bytes: number } }> {
  const id = ctx.requests.takeId();
  let sending: Promise<{ blobs: number; bytes: number }> = Promise.resolve({
    blobs: 0,
    bytes: 0,
  });
  let final: AgentMessage | undefined;
  await ctx.requests.send(
    id,
    offer,
    (m) => {
      if (m.t === 'sync.need' || m.t === 'blobs.need') {
        sending = sendBlobs(ctx, id, m.missing.map(lookup));
        sending.catch((err: unknown) => ctx.requests.fail(id, asMusterError(err)));
        return false;
      }
      if (m.t !== doneType) return false;
      final = m;
      return true;
    },
    0,
  );
  return { final: final!, sent: await sending };
}

/**
 * Streams blobs as 1 MiB chunks. Small files (up to 16 MiB) are read whole, the next one while
 * the current one is being sent, so disk reads overlap the network instead of alternating.
 */
async function sendBlobs(
  ctx: BlobTransferContext,
  id: number,
  blobs: (UploadBlob | undefined)[],
): Promise<{ blobs: number; bytes: number }> {
  const { conn } = ctx;
  const load = (blob: (typeof blobs)[number]): Promise<Buffer | undefined> | undefined => {
    if (blob === undefined) return undefined;
    if ('data' in blob.source) return Promise.resolve(blob.source.data);
    if (blob.size > PREFETCH_MAX_BYTES) return Promise.resolve(undefined);
    const read = readFile(blob.source.file);
    // eslint-disable-next-line no-restricted-syntax -- awaited below; a failure then is the caller's error
    read.catch(() => undefined);
    return read;
  };
  let bytes = 0;
  let next = load(blobs[0]);
  for (const [i, blob] of blobs.entries()) {
    if (blob === undefined) {
      throw new MusterError(
        'BLOB_NOT_FOUND',
        'the agent asked for a blob this client did not offer',
      );
    }
    const current = next;
    next = load(blobs[i + 1]);
    if (!ctx.requests.isOpen(id)) return { blobs: 0, bytes };
    const send = async (offset: number, data: Buffer, last: boolean): Promise<void> => {
      const header = {
        t: 'blob.chunk',
        re: id,
        sha256: blob.sha256,
        offset,
        size: blob.size,
        last,
      } as const;
      if (!conn.sendBinary(header, data)) await conn.drained();
    };
    const whole = await current;
    if (blob.size === 0) await send(0, Buffer.alloc(0), true);
    if (whole !== undefined) {
      for (let offset = 0; offset < whole.length; offset += CHUNK_BYTES) {
        const chunk = whole.subarray(offset, offset + CHUNK_BYTES);
        await send(offset, chunk, offset + chunk.length >= whole.length);
      }
    } else if ('file' in blob.source) {
      let offset = 0;
      for await (const chunk of createReadStream(blob.source.file, {
        highWaterMark: CHUNK_BYTES,
      })) {
        const data = chunk as Buffer;
        await send(offset, data, offset + data.length >= blob.size);
        offset += data.length;
      }
    }
    bytes += blob.size;
    if (conn.isClosed) throw ctx.closedWith() ?? new MusterError('CONNECTION_CLOSED');
  }
  return { blobs: blobs.length, bytes };
}

function asMusterError(err: unknown): MusterError {
  return err instanceof MusterError ? err : new MusterError('INTERNAL', String(err));
}
