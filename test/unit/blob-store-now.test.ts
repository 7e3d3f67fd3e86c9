/**
 * The blob store's direct writes (BlobStore.writeNow, touchNow, sizeOfNow: POST /cache/results'
 * inline blobs): content that hashes to its name enters the store read-only and complete;
 * content that does not is refused and leaves nothing, not even in .incoming.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobStore } from '../../src/common/blob-store.js';
import { MusterError } from '../../src/protocol/errors.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

let dir = '';
let blobs: BlobStore;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'muster-blob-store-now-'));
  blobs = new BlobStore(join(dir, 'blobs'));
  await blobs.init();
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('blob store: direct writes', () => {
  it('stores content under its hash, read-only, and finds it again', async () => {
    const data = Buffer.from('an object file, small enough to ride inline');
    const hash = sha256(data);
    assert.equal(blobs.sizeOfNow(hash), undefined);
    assert.equal(blobs.touchNow(hash), false);
    blobs.writeNow(hash, data);
    assert.deepEqual(await readFile(blobs.pathOf(hash)), data);
    assert.equal((await stat(blobs.pathOf(hash))).mode & 0o777, 0o444);
    assert.equal(blobs.sizeOfNow(hash), data.length);
    assert.equal(await blobs.sizeOf(hash), data.length);
    // Written twice (two uploads of the same blob): the same content stays.
    blobs.writeNow(hash, data);
    assert.deepEqual(await readFile(blobs.pathOf(hash)), data);
    assert.deepEqual(await readdir(blobs.incomingDir), []);
  });

  it('touches a blob it has, so that a sweep keeps it a while longer', async () => {
    const data = Buffer.from('touched');
    const hash = sha256(data);
    blobs.writeNow(hash, data);
    const old = new Date(Date.now() - 86_400_000);
    await utimes(blobs.pathOf(hash), old, old);
    assert.equal(blobs.touchNow(hash), true);
    assert.ok((await stat(blobs.pathOf(hash))).mtimeMs > old.getTime() + 60_000);
  });

  it('refuses content that does not hash to its name and keeps nothing', async () => {
    const data = Buffer.from('the real bytes');
    const hash = sha256(data);
    assert.throws(
      () => blobs.writeNow(hash, Buffer.from('other bytes')),
      (err: unknown) => err instanceof MusterError && err.code === 'BLOB_HASH_MISMATCH',
    );
    assert.equal(blobs.sizeOfNow(hash), undefined);
    assert.deepEqual(await readdir(blobs.incomingDir), []);
    // An empty blob is a blob too.
    const empty = Buffer.alloc(0);
    blobs.writeNow(sha256(empty), empty);
    assert.equal(blobs.sizeOfNow(sha256(empty)), 0);
  });
});
