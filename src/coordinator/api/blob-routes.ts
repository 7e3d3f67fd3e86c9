/**
 * Blobs by content hash: which ones the coordinator lacks, upload (streamed to disk, verified by
 * size and SHA-256 before it enters the store), download.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { MusterError } from '../../protocol/errors.js';
import { sha256Hex } from '../../protocol/manifest.js';
import { requireBuilder, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { missingBlobsBody } from '../../api/requests.js';
import type { MissingBlobsView } from '../../api/views/blobs.js';

/**
 * The largest refused upload whose body is read before the answer; a larger one is answered at
 * once and the connection closed while the client may still be sending (it sees a reset).
 */
export const REFUSED_BODY_DRAIN_BYTES = 16 * 1024 * 1024;

/**
 * Reads and drops what is left of a request's body (its Content-Length bounds it); returns at
 * its end, or when the connection closes (a client that stops sending is cut by the body
 * deadline).
 */
function drained(raw: IncomingMessage): Promise<void> {
  if (raw.complete || raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      raw.off('end', done);
      raw.off('close', done);
      resolve();
    };
    raw.once('end', done);
    raw.once('close', done);
    raw.resume();
  });
}

export function registerBlobRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) =>
    done(null, payload),
  );

  app.post('/api/v1/blobs/missing', async (request): Promise<MissingBlobsView> => {
    requireUser(request);
    const body = parse(missingBlobsBody, request.body, 'hash list');
    return { missing: await ctx.blobs.missing(body.hashes) };
  });

  // Only users who may run builds upload (viewers get 403), within the quota on uploads that no
  // build or extension uses yet (see blob-sweeper.ts). A refused upload that announced at most
  // REFUSED_BODY_DRAIN_BYTES is read first: a client still sending when the connection closed
  // would get a reset instead of the answer. A larger one (or one of unknown length) is answered
  // at once: reading it would cost more than the client's retry.
  app.put<{ Params: { sha256: string } }>('/api/v1/blobs/:sha256', async (request, reply) => {
    try {
      return await putBlob(request, reply);
    } catch (err) {
      const announced = Number(request.headers['content-length']);
      if (Number.isInteger(announced) && announced > 0 && announced <= REFUSED_BODY_DRAIN_BYTES)
        await drained(request.raw);
      throw err;
    }
  });
  const putBlob = async (
    request: FastifyRequest<{ Params: { sha256: string } }>,
    reply: FastifyReply,
  ): Promise<FastifyReply> => {
    const user = requireBuilder(request, ctx);
    const sha256 = parse(sha256Hex, request.params.sha256, 'sha256');
    // Only application/octet-stream leaves the body a stream; another type was parsed (JSON,
    // text) into something that is not the blob's bytes.
    const body = request.body as Readable | undefined;
    if (typeof body?.pipe !== 'function') {
      throw new MusterError(
        'VALIDATION_FAILED',
        'send the blob as Content-Type: application/octet-stream',
      );
    }
    const length = Number(request.headers['content-length']);
    if (!Number.isInteger(length) || length < 0) {
      throw new MusterError('VALIDATION_FAILED', 'send the blob with a Content-Length');
    }
    if (length > ctx.options.maxUploadBytes) {
      throw new MusterError(
        'PAYLOAD_TOO_LARGE',
        `a blob may be at most ${ctx.options.maxUploadBytes} bytes`,
      );
    }
    const stored = await receiveBlob(ctx, user.name, sha256, length, body);
    if (!stored) body.resume();
    return reply.code(204).send();
  };

  app.get<{ Params: { sha256: string } }>('/api/v1/blobs/:sha256', async (request, reply) => {
    requireUser(request);
    return sendBlob(ctx, reply, request.params.sha256);
  });
}

/**
 * Stores one upload of `length` bytes that must hash to `sha256` (the writer checks both before
 * it enters the store), within `user`'s quota on unreferenced uploads. False when the store has
 * it already (then `chunks` is not read; the blob is touched, as POST /blobs/missing does, so a
 * sweep keeps it a while longer).
 */
export async function receiveBlob(
  ctx: ApiContext,
  user: string,
  sha256: string,
  length: number,
  chunks: AsyncIterable<unknown> | Iterable<unknown>,
): Promise<boolean> {
  if ((await ctx.blobs.missing([sha256])).length === 0) return false;
  const done = ctx.uploads.reserve(user, length);
  const writer = await ctx.blobs.createWriter(sha256, length).catch((err: unknown) => {
    done(undefined);
    throw err;
  });
  try {
    let offset = 0;
    for await (const chunk of chunks) {
      const data = chunk as Buffer;
      await writer.write(offset, data);
      offset += data.length;
    }
    await writer.finish();
  } catch (err) {
    done(undefined);
    await writer.abort();
    throw err;
  }
  done(sha256);
  ctx.metrics.blobBytesReceived.inc(length);
  return true;
}

/**
 * receiveBlob for a small blob held in memory (POST /cache/results' inline ones): the same checks
 * and quota, its system calls made at once instead of through the thread pool.
 */
export function receiveBlobNow(
  ctx: ApiContext,
  user: string,
  sha256: string,
  data: Buffer,
): boolean {
  if (ctx.blobs.touchNow(sha256)) return false;
  const done = ctx.uploads.reserve(user, data.length);
  try {
    ctx.blobs.writeNow(sha256, data);
  } catch (err) {
    done(undefined);
    throw err;
  }
  done(sha256);
  ctx.metrics.blobBytesReceived.inc(data.length);
  return true;
}

/** Streams the blob named by a (checked) hash from the path, or NOT_FOUND. */
export async function sendBlob(
  ctx: ApiContext,
  reply: FastifyReply,
  param: string,
): Promise<FastifyReply> {
  const sha256 = parse(sha256Hex, param, 'sha256');
  const size = await ctx.blobs.sizeOf(sha256);
  if (size === undefined) throw new MusterError('NOT_FOUND', `no blob ${sha256}`);
  return reply
    .header('content-type', 'application/octet-stream')
    .header('content-length', size)
    .send(ctx.blobs.read(sha256));
}
