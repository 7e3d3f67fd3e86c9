/**
 * Blobs a peer uploads on one connection. After an offer (sync.offer, blobs.offer) the agent
 * answers with what it lacks and opens an upload under the offer's id; binary chunks then carry
 * those blobs, each written through the blob store's writer (checked against its hash and size,
 * a temp file renamed into place). A bad chunk fails its upload with a coded error, and the rest
 * of that upload's chunks are dropped quietly. Reading from the peer pauses while too much
 * received data waits to be written to disk.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { BlobStore, BlobWriter } from '../common/blob-store.js';
import { MusterError, toMusterError } from '../protocol/errors.js';
import { blobChunkHeaderSchema } from '../protocol/messages.js';
import { invalid, requestIdOf } from './wire-errors.js';

/** What an upload brought, once every blob it asked for is stored. */
export interface UploadReceived {
  blobs: number;
  bytes: number;
}

interface Upload {
  expected: Map<string, number>;
  writers: Map<string, Promise<BlobWriter>>;
  remaining: number;
  receivedBytes: number;
  failed: boolean;
  unpin: () => void;
  complete: () => Promise<void>;
}

/** Pause reading from a peer while this much received data waits to be written to disk. */
const MAX_PENDING_WRITE_BYTES = 32 * 1024 * 1024;

export class UploadReceiver {
  private readonly uploads = new Map<number, Upload>();
  private pendingWriteBytes = 0;

  constructor(
    private readonly blobs: BlobStore,
    /** The peer's socket: paused and resumed for back-pressure on the disk. */
    private readonly socket: Duplex,
    private readonly log: Logger,
    private readonly sendError: (re: number | undefined, err: MusterError) => void,
  ) {}

  /**
   * Expects the `missing` blobs (of `sizes`) as chunks answering request `id`; `complete` runs
   * when all are stored, and `unpin` once the upload is over, stored or failed.
   */
  begin(
    id: number,
    missing: string[],
    sizes: Map<string, number>,
    unpin: () => void,
    complete: (received: UploadReceived) => Promise<void>,
  ): void {
    if (this.uploads.has(id)) {
      unpin();
      throw new MusterError('INVALID_MESSAGE', `request id ${id} is already in use by an upload`);
    }
    const upload: Upload = {
      expected: new Map(missing.map((sha) => [sha, sizes.get(sha) ?? 0])),
      writers: new Map(),
      remaining: missing.length,
      receivedBytes: 0,
      failed: false,
      unpin,
      complete: () => complete({ blobs: upload.expected.size, bytes: upload.receivedBytes }),
    };
    this.uploads.set(id, upload);
  }

  /** A binary frame from the peer (after the handshake). */
  onChunk(rawHeader: unknown, data: Buffer): void {
    const parsed = blobChunkHeaderSchema.safeParse(rawHeader);
    if (!parsed.success) {
      this.sendError(
        requestIdOf((rawHeader as { re?: unknown } | null)?.re),
        invalid('blob.chunk', parsed.error),
      );
      return;
    }
    const header = parsed.data;
    const upload = this.uploads.get(header.re);
    if (upload === undefined) {
      this.sendError(
        header.re,
        new MusterError('UNEXPECTED_BLOB', `no upload in progress with id ${header.re}`),
      );
      return;
    }
    if (upload.failed) return;
    const size = upload.expected.get(header.sha256);
    if (size === undefined) {
      this.fail(
        header.re,
        upload,
        new MusterError('UNEXPECTED_BLOB', `blob ${header.sha256} was not asked for`, {
          sha256: header.sha256,
        }),
      );
      return;
    }
    if (header.size !== size) {
      this.fail(
        header.re,
        upload,
        new MusterError(
          'BLOB_SIZE_MISMATCH',
          `blob ${header.sha256} declared ${size} bytes, chunk says ${header.size}`,
          {
            sha256: header.sha256,
          },
        ),
      );
      return;
    }
    void this.write(header.re, upload, header.sha256, size, header.offset, data, header.last);
  }

  /** The connection closed: every upload still open is abandoned, its temp files removed. */
  abandonAll(): void {
    for (const upload of this.uploads.values()) {
      abortWriters(upload);
      upload.unpin();
    }
    this.uploads.clear();
  }

  private async write(
    re: number,
    upload: Upload,
    sha256: string,
    size: number,
    offset: number,
    data: Buffer,
    last: boolean,
  ): Promise<void> {
    try {
      let pending = upload.writers.get(sha256);
      if (pending === undefined) {
        if (offset !== 0)
          throw new MusterError('MALFORMED_FRAME', `blob ${sha256}: first chunk at ${offset}`);
        // Stored synchronously, so the next chunk of this blob finds the same writer.
        pending = this.blobs.createWriter(sha256, size);
        upload.writers.set(sha256, pending);
      }
      this.trackPending(data.length);
      let writer: BlobWriter;
      try {
        writer = await pending;
      } finally {
        this.trackPending(-data.length);
      }
      this.trackPending(data.length);
      const written = writer.write(offset, data);
      await written.finally(() => this.trackPending(-data.length));
      upload.receivedBytes += data.length;
      if (!last) return;
      await writer.finish();
      upload.remaining--;
      if (upload.remaining === 0 && !upload.failed) {
        this.uploads.delete(re);
        try {
          await upload.complete();
        } finally {
          upload.unpin();
        }
      }
    } catch (err) {
      this.fail(re, upload, toMusterError(err, 'STORAGE_ERROR'));
    }
  }

  private fail(re: number, upload: Upload, err: MusterError): void {
    if (upload.failed) return;
    upload.failed = true;
    this.log.warn({ code: err.code, details: err.details }, err.message);
    abortWriters(upload);
    upload.unpin();
    // Keep the failed upload registered so its remaining chunks are dropped quietly.
    this.sendError(re, err);
  }

  private trackPending(delta: number): void {
    this.pendingWriteBytes += delta;
    const socket = this.socket;
    if (this.pendingWriteBytes > MAX_PENDING_WRITE_BYTES && !socket.isPaused()) socket.pause();
    else if (this.pendingWriteBytes <= MAX_PENDING_WRITE_BYTES / 2 && socket.isPaused())
      socket.resume();
  }
}

function abortWriters(upload: Upload): void {
  for (const pending of upload.writers.values()) {
    // eslint-disable-next-line no-restricted-syntax -- the upload failed already and says why; abort only removes its temp file
    pending.then((w) => w.abort()).catch(() => undefined);
  }
}
