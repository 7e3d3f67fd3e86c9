/**
 * The agent's upload receiver, without a peer: chunks of the blobs an offer asked for are
 * stored and complete the upload once; a chunk nobody asked for, a wrong size or corrupt content
 * fails the upload with its code, keeps nothing, and the rest of its chunks are dropped quietly.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { BlobStore } from '../../src/common/blob-store.js';
import { UploadReceiver, type UploadReceived } from '../../src/agent/upload-receiver.js';
import type { MusterError } from '../../src/protocol/errors.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

let dir = '';
let blobs: BlobStore;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'muster-upload-receiver-'));
  blobs = new BlobStore(join(dir, 'blobs'));
  await blobs.init();
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function receiver(): {
  uploads: UploadReceiver;
  errors: { re: number | undefined; code: string }[];
  nextError: () => Promise<{ re: number | undefined; code: string }>;
} {
  const errors: { re: number | undefined; code: string }[] = [];
  let waiting: ((e: { re: number | undefined; code: string }) => void) | undefined;
  const uploads = new UploadReceiver(
    blobs,
    new PassThrough(),
    pino({ level: 'silent' }),
    (re: number | undefined, err: MusterError) => {
      const entry = { re, code: err.code };
      errors.push(entry);
      waiting?.(entry);
    },
  );
  const nextError = (): Promise<{ re: number | undefined; code: string }> =>
    new Promise((resolve) => (waiting = resolve));
  return { uploads, errors, nextError };
}

/** A chunk header for part of `blob` (the whole blob, so its sha256 is the blob's). */
function chunk(re: number, blob: Buffer, offset: number, size: number, last: boolean): object {
  return { t: 'blob.chunk', re, sha256: sha256(blob), offset, size, last };
}

describe('upload receiver', () => {
  it('stores the blobs asked for, then completes once and unpins', async () => {
    const { uploads, errors } = receiver();
    const a = randomBytes(100);
    const b = randomBytes(10);
    let unpinned = 0;
    const completed = new Promise<UploadReceived>((resolve) =>
      uploads.begin(
        1,
        [sha256(a), sha256(b)],
        new Map([
          [sha256(a), a.length],
          [sha256(b), b.length],
        ]),
        () => unpinned++,
        async (received) => resolve(received),
      ),
    );
    uploads.onChunk(chunk(1, a, 0, 100, false), a.subarray(0, 60));
    uploads.onChunk(chunk(1, a, 60, 100, true), a.subarray(60));
    uploads.onChunk(chunk(1, b, 0, 10, true), b);
    assert.deepEqual(await completed, { blobs: 2, bytes: 110 });
    assert.deepEqual(await readFile(blobs.pathOf(sha256(a))), a);
    assert.deepEqual(await readFile(blobs.pathOf(sha256(b))), b);
    assert.equal(unpinned, 1);
    assert.deepEqual(errors, []);
  });

  it('answers a chunk of no upload with UNEXPECTED_BLOB', async () => {
    const { uploads, nextError } = receiver();
    const data = randomBytes(4);
    const error = nextError();
    uploads.onChunk(chunk(9, data, 0, 4, true), data);
    assert.deepEqual(await error, { re: 9, code: 'UNEXPECTED_BLOB' });
  });

  it('answers a header that breaks the schema with INVALID_MESSAGE', async () => {
    const { uploads, nextError } = receiver();
    const error = nextError();
    uploads.onChunk({ t: 'blob.chunk', re: 3 }, Buffer.from('x'));
    assert.deepEqual(await error, { re: 3, code: 'INVALID_MESSAGE' });
  });

  it('fails the upload on a blob not asked for or a wrong size, once', async () => {
    const { uploads, errors, nextError } = receiver();
    const wanted = randomBytes(8);
    const other = randomBytes(8);
    let unpinned = 0;
    uploads.begin(
      2,
      [sha256(wanted)],
      new Map([[sha256(wanted), 8]]),
      () => unpinned++,
      () => assert.fail('a failed upload does not complete'),
    );
    const error = nextError();
    uploads.onChunk(chunk(2, other, 0, 8, true), other);
    assert.deepEqual(await error, { re: 2, code: 'UNEXPECTED_BLOB' });
    assert.equal(unpinned, 1);
    uploads.onChunk(chunk(2, wanted, 0, 8, true), wanted);
    await new Promise((r) => setImmediate(r));
    assert.equal(errors.length, 1, 'the rest of a failed upload is dropped quietly');

    const sized = receiver();
    sized.uploads.begin(
      3,
      [sha256(wanted)],
      new Map([[sha256(wanted), 8]]),
      () => undefined,
      () => assert.fail('a failed upload does not complete'),
    );
    const sizeError = sized.nextError();
    sized.uploads.onChunk(chunk(3, wanted, 0, 64, true), wanted);
    assert.deepEqual(await sizeError, { re: 3, code: 'BLOB_SIZE_MISMATCH' });
  });

  it('fails on content that does not hash to its sha256 and keeps nothing', async () => {
    const { uploads, nextError } = receiver();
    const claimed = randomBytes(16);
    uploads.begin(
      4,
      [sha256(claimed)],
      new Map([[sha256(claimed), 16]]),
      () => undefined,
      () => assert.fail('a corrupt upload does not complete'),
    );
    const error = nextError();
    uploads.onChunk(chunk(4, claimed, 0, 16, true), randomBytes(16));
    assert.deepEqual(await error, { re: 4, code: 'BLOB_HASH_MISMATCH' });
    assert.equal(await blobs.has(sha256(claimed)), false);
  });

  it('refuses a second upload under an id in use, and unpins it', () => {
    const { uploads } = receiver();
    const data = randomBytes(4);
    const sizes = new Map([[sha256(data), 4]]);
    uploads.begin(
      5,
      [sha256(data)],
      sizes,
      () => undefined,
      async () => undefined,
    );
    let unpinned = false;
    assert.throws(
      () =>
        uploads.begin(
          5,
          [sha256(data)],
          sizes,
          () => (unpinned = true),
          async () => undefined,
        ),
      (err: MusterError) => err.code === 'INVALID_MESSAGE',
    );
    assert.equal(unpinned, true);
    uploads.abandonAll();
  });
});
