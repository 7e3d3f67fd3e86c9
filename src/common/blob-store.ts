/**
 * The agent's content-addressed store: <root>/<sha256[0..2]>/<sha256>, read-only files written
 * to <root>/.incoming/<unique> first and renamed into place once their hash is verified, so a
 * blob is either absent or complete and correct. Host processes read inputs from it and put
 * outputs into it with the same layout (see protocol/host-messages.ts).
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import {
  chmod,
  mkdir,
  open,
  readdir,
  rename,
  rm,
  stat,
  utimes,
  type FileHandle,
} from 'node:fs/promises';
import { join } from 'node:path';
import { MusterError } from '../protocol/errors.js';

export class BlobStore {
  readonly incomingDir: string;

  constructor(readonly root: string) {
    this.incomingDir = join(root, '.incoming');
  }

  async init(): Promise<void> {
    // Leftovers of a previous run are incomplete by definition.
    await rm(this.incomingDir, { recursive: true, force: true });
    await mkdir(this.incomingDir, { recursive: true });
  }

  pathOf(sha256: string): string {
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await stat(this.pathOf(sha256));
      return true;
    } catch {
      return false;
    }
  }

  async sizeOf(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      return undefined;
    }
  }

  /** The hashes not in the store. Those present are touched, so collection keeps them a while. */
  async missing(hashes: Iterable<string>): Promise<string[]> {
    const missing: string[] = [];
    const now = new Date();
    await Promise.all(
      [...new Set(hashes)].map(async (sha256) => {
        try {
          await utimes(this.pathOf(sha256), now, now);
        } catch {
          missing.push(sha256);
        }
      }),
    );
    return missing;
  }

  // The *Now methods make their system calls on the calling thread: for small blobs, where a
  // round trip through libuv's thread pool for each of them costs more than the calls themselves.

  /** The blob's size, undefined when it is not in the store; see sizeOf. */
  sizeOfNow(sha256: string): number | undefined {
    try {
      return statSync(this.pathOf(sha256), { throwIfNoEntry: false })?.size;
    } catch {
      return undefined;
    }
  }

  /** Whether the blob is in the store, touching it if so (as missing() does). */
  touchNow(sha256: string): boolean {
    const path = this.pathOf(sha256);
    if (!existsSync(path)) return false;
    try {
      const now = new Date();
      utimesSync(path, now, now);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stores a blob held in memory once it hashes to `sha256` (else BLOB_HASH_MISMATCH, and nothing
   * is written): to a new file under .incoming, renamed into place, as a BlobWriter does.
   */
  writeNow(sha256: string, data: Buffer): void {
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== sha256)
      throw new MusterError('BLOB_HASH_MISMATCH', `blob ${sha256}: content hashes to ${actual}`, {
        sha256,
        actual,
      });
    const temp = join(this.incomingDir, `${sha256.slice(0, 8)}-${randomBytes(8).toString('hex')}`);
    try {
      // Created read-only: the descriptor opened here still writes.
      const fd = openSync(temp, 'wx', 0o444);
      try {
        let done = 0;
        while (done < data.length) done += writeSync(fd, data, done, data.length - done);
      } finally {
        closeSync(fd);
      }
      mkdirSync(join(this.root, sha256.slice(0, 2)), { recursive: true });
      // Another upload of the same blob may have won; the content is the same either way.
      renameSync(temp, this.pathOf(sha256));
    } catch (err) {
      rmSync(temp, { force: true });
      throw storageError(err);
    }
  }

  async createWriter(sha256: string, size: number): Promise<BlobWriter> {
    const temp = join(this.incomingDir, `${sha256.slice(0, 8)}-${randomBytes(8).toString('hex')}`);
    let handle: FileHandle;
    try {
      handle = await open(temp, 'wx', 0o600);
    } catch (err) {
      throw storageError(err);
    }
    return new BlobWriter(this, sha256, size, temp, handle);
  }

  read(sha256: string, highWaterMark = 1024 * 1024): NodeJS.ReadableStream {
    return createReadStream(this.pathOf(sha256), { highWaterMark });
  }

  /** Removes blobs not in `keep` and older than `olderThanMs`. Returns how many were removed. */
  async collect(keep: ReadonlySet<string>, olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for (const prefix of await readdir(this.root).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      const dir = join(this.root, prefix);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (keep.has(name)) continue;
        const file = join(dir, name);
        const info = await stat(file).catch(() => undefined);
        if (info === undefined || info.mtimeMs > cutoff) continue;
        await rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Called by BlobWriter once the content is verified. */
  async commit(temp: string, sha256: string): Promise<void> {
    const target = this.pathOf(sha256);
    try {
      await chmod(temp, 0o444);
      await mkdir(join(this.root, sha256.slice(0, 2)), { recursive: true });
      // Another upload of the same blob may have won; the content is the same either way.
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw storageError(err);
    }
  }
}

/** Receives one blob in order, hashing as it goes; verifies size and hash before committing. */
export class BlobWriter {
  private readonly hash: Hash = createHash('sha256');
  private written = 0;
  private chain: Promise<void> = Promise.resolve();
  private failed: MusterError | undefined;
  private done = false;

  constructor(
    private readonly store: BlobStore,
    readonly sha256: string,
    readonly size: number,
    private readonly temp: string,
    private readonly handle: FileHandle,
  ) {}

  get bytesWritten(): number {
    return this.written;
  }

  /** Queues a chunk; throws synchronously on an offset or size violation. */
  write(offset: number, data: Buffer): Promise<void> {
    if (this.done)
      throw new MusterError('UNEXPECTED_BLOB', `blob ${this.sha256} is already complete`);
    const expected = this.written;
    if (offset !== expected) {
      throw new MusterError(
        'MALFORMED_FRAME',
        `blob ${this.sha256}: chunk at ${offset}, expected ${expected}`,
      );
    }
    if (this.written + data.length > this.size) {
      throw new MusterError(
        'BLOB_SIZE_MISMATCH',
        `blob ${this.sha256} is larger than its declared ${this.size} bytes`,
        { sha256: this.sha256, size: this.size },
      );
    }
    this.written += data.length;
    this.hash.update(data);
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await this.handle.write(data, done, data.length - done);
          done += bytesWritten;
        }
      } catch (err) {
        this.failed = storageError(err);
      }
    });
    return this.chain;
  }

  /** Verifies and moves the blob into the store. Throws BLOB_SIZE_MISMATCH / BLOB_HASH_MISMATCH. */
  async finish(): Promise<void> {
    this.done = true;
    await this.chain;
    // eslint-disable-next-line no-restricted-syntax -- every write was awaited (a failed one is this.failed); the checks below decide
    await this.handle.close().catch(() => undefined);
    if (this.failed) {
      await this.discard();
      throw this.failed;
    }
    if (this.written !== this.size) {
      await this.discard();
      throw new MusterError(
        'BLOB_SIZE_MISMATCH',
        `blob ${this.sha256}: got ${this.written} bytes, declared ${this.size}`,
        { sha256: this.sha256 },
      );
    }
    const actual = this.hash.digest('hex');
    if (actual !== this.sha256) {
      await this.discard();
      throw new MusterError(
        'BLOB_HASH_MISMATCH',
        `blob ${this.sha256}: content hashes to ${actual}`,
        {
          sha256: this.sha256,
          actual,
        },
      );
    }
    await this.store.commit(this.temp, this.sha256);
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.chain;
    // eslint-disable-next-line no-restricted-syntax -- the blob is discarded anyway
    await this.handle.close().catch(() => undefined);
    await this.discard();
  }

  private async discard(): Promise<void> {
    await rm(this.temp, { force: true });
  }
}

export function storageError(err: unknown): MusterError {
  if (err instanceof MusterError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  return new MusterError(
    'STORAGE_ERROR',
    `storage: ${(err as Error).message}`,
    { errno: code },
    {
      cause: err,
    },
  );
}
