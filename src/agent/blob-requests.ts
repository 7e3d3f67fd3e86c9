/**
 * A connection's blob requests besides bundle sync: `blobs.offer` (task inputs in: answered with
 * what the agent lacks, then received by the UploadReceiver) and `blob.get` (task outputs out:
 * 1 MiB binary chunks with back-pressure, the blob pinned while it is read).
 */
import type { BlobStore } from '../common/blob-store.js';
import type { FramedConnection } from '../protocol/connection.js';
import { MusterError } from '../protocol/errors.js';
import type { AgentWireMessage, ClientMessage } from '../protocol/messages.js';
import type { Pins } from './pins.js';
import type { UploadReceiver } from './upload-receiver.js';

const BLOB_CHUNK_BYTES = 1024 * 1024;

export interface BlobRequestContext {
  blobs: BlobStore;
  /** Blobs being received or read: not collected meanwhile. */
  pins: Pins;
}

export async function offerBlobs(
  ctx: BlobRequestContext,
  conn: FramedConnection<AgentWireMessage>,
  uploads: UploadReceiver,
  message: Extract<ClientMessage, { t: 'blobs.offer' }>,
): Promise<void> {
  const sizes = new Map(message.blobs.map((b) => [b.sha256, b.size]));
  const unpin = ctx.pins.pin(sizes.keys());
  try {
    const missing = await ctx.blobs.missing(sizes.keys());
    if (missing.length === 0) {
      unpin();
      conn.sendJson({ t: 'blobs.stored', re: message.id });
      return;
    }
    conn.sendJson({ t: 'blobs.need', re: message.id, missing });
    uploads.begin(message.id, missing, sizes, unpin, () => {
      conn.sendJson({ t: 'blobs.stored', re: message.id });
      return Promise.resolve();
    });
  } catch (err) {
    unpin();
    throw err;
  }
}

export async function serveBlob(
  ctx: BlobRequestContext,
  conn: FramedConnection<AgentWireMessage>,
  id: number,
  sha256: string,
): Promise<void> {
  const size = await ctx.blobs.sizeOf(sha256);
  if (size === undefined)
    throw new MusterError('BLOB_NOT_FOUND', `blob ${sha256} is not on this agent`, { sha256 });
  const unpin = ctx.pins.pin([sha256]);
  try {
    let offset = 0;
    if (size === 0) {
      conn.sendBinary(
        { t: 'blob.chunk', re: id, sha256, offset: 0, size, last: true },
        Buffer.alloc(0),
      );
      return;
    }
    for await (const chunk of ctx.blobs.read(sha256, BLOB_CHUNK_BYTES)) {
      const data = chunk as Buffer;
      const last = offset + data.length >= size;
      if (!conn.sendBinary({ t: 'blob.chunk', re: id, sha256, offset, size, last }, data)) {
        await conn.drained();
      }
      if (conn.isClosed) return;
      offset += data.length;
    }
  } finally {
    unpin();
  }
}
