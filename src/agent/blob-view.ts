/**
 * An instance's own view of the blob store, for a host that runs as the instance's task user
 * (task-users.ts). The shared store (<temp>/blobs) is root's alone (0700), so no task can list
 * it or read another instance's inputs; instead the host's MUSTER_BLOB_DIR is
 * <instance>/blobs, laid out like the store:
 *
 *   - the agent hard-links each input of a task there before the host places it (root-owned,
 *     read-only inodes: the host can read them, not change them);
 *   - the host writes each output there (.incoming/<unique>, renamed to <aa>/<sha256>), and the
 *     agent copies it into the shared store, verifying its hash, before the task counts as done.
 *     A task therefore cannot put anything into the shared store under a hash it does not have.
 *
 * The view and its 256 prefix dirs and .incoming are root:<task group>, mode 1770, made before
 * the host first runs: the task user may add entries but (sticky bit) never rename or remove the
 * agent's, so no path the agent writes through can be swapped for a symlink. What the agent reads
 * there it opens with O_NOFOLLOW and takes only if it is a regular file.
 */
import { constants } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { MusterError } from '../protocol/errors.js';
import { type BlobStore, storageError } from '../common/blob-store.js';
import type { TaskOutputFile, TaskResult } from '../protocol/task-types.js';

const VIEW_MODE = 0o1770;
const SHA256 = /^[0-9a-f]{64}$/;
const CHUNK = 1024 * 1024;
export const VIEW_SUBDIRS: readonly string[] = [
  '.incoming',
  ...Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0')),
];

export class BlobView {
  constructor(private readonly blobs: BlobStore) {}

  /** Makes (or checks) the view and its subdirs: root:gid 1770, each one a real directory. */
  async prepare(viewDir: string, gid: number): Promise<void> {
    await prepareDir(viewDir, gid);
    await Promise.all(VIEW_SUBDIRS.map((name) => prepareDir(join(viewDir, name), gid)));
  }

  /** Hard-links (or copies) these blobs of the store into the view. */
  async link(viewDir: string, hashes: Iterable<string>): Promise<void> {
    for (const sha256 of new Set(hashes)) {
      if (!SHA256.test(sha256)) continue; // the host refuses it with BLOB_NOT_FOUND
      const source = this.blobs.pathOf(sha256);
      const target = join(viewDir, sha256.slice(0, 2), sha256);
      try {
        await linkOnce(source, target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !(await this.blobs.has(sha256))) {
          throw new MusterError('BLOB_NOT_FOUND', `input blob ${sha256} is not on the agent`);
        }
        throw storageError(err);
      }
    }
  }

  /**
   * Copies a succeeded task's outputs from the view into the store, each verified against the
   * hash and size the host reported; a task whose outputs cannot be verified fails. Never rejects.
   */
  async importOutputs(viewDir: string, result: TaskResult): Promise<TaskResult> {
    try {
      for (const output of result.outputs ?? []) await this.importOne(viewDir, output);
      return result;
    } catch (err) {
      const e = err instanceof MusterError ? err : storageError(err);
      const { outputs: _dropped, ...rest } = result;
      return { ...rest, status: 'failed', error: { code: e.code, message: e.message } };
    }
  }

  /**
   * Removes every entry of the view (an instance with no running task needs none of them).
   * Directories the task user made are handed to `removeTree`, which runs as that user.
   */
  async clear(viewDir: string, removeTree: (path: string) => Promise<void>): Promise<number> {
    let removed = 0;
    for (const sub of VIEW_SUBDIRS) {
      const dir = join(viewDir, sub);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const path = join(dir, name);
        const info = await lstat(path).catch(() => undefined);
        if (info === undefined) continue;
        // eslint-disable-next-line no-restricted-syntax -- a leftover is the task user's file in its own view dir; the next clear tries again
        await (info.isDirectory() ? removeTree(path) : unlink(path)).catch(() => undefined);
        removed++;
      }
    }
    return removed;
  }

  private async importOne(viewDir: string, output: TaskOutputFile): Promise<void> {
    const { sha256, size } = output;
    if (typeof sha256 !== 'string' || !SHA256.test(sha256))
      throw new MusterError('BLOB_HASH_MISMATCH', `output "${output.path}": malformed sha256`);
    if (await this.blobs.has(sha256)) return;
    const path = join(viewDir, sha256.slice(0, 2), sha256);
    const handle = await open(
      path,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    ).catch((err: NodeJS.ErrnoException) => {
      throw new MusterError(
        'BLOB_NOT_FOUND',
        `output "${output.path}": the host did not store blob ${sha256} (${err.code ?? err.message})`,
      );
    });
    try {
      const info = await handle.stat();
      if (!info.isFile()) {
        throw new MusterError('BLOB_NOT_FOUND', `output "${output.path}": not a regular file`);
      }
      if (info.size !== size) {
        throw new MusterError(
          'BLOB_SIZE_MISMATCH',
          `output "${output.path}": ${info.size} bytes stored, ${size} reported`,
        );
      }
      const writer = await this.blobs.createWriter(sha256, size);
      try {
        const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(CHUNK, size)));
        let offset = 0;
        while (offset < size) {
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
          if (bytesRead === 0) break;
          await writer.write(offset, buffer.subarray(0, bytesRead));
          offset += bytesRead;
        }
        await writer.finish();
      } catch (err) {
        await writer.abort();
        throw err;
      }
    } finally {
      await handle.close();
    }
  }
}

/**
 * Makes `target` the store's inode. Two tasks of an instance may link one input at once, so an
 * existing link to the same inode is success; anything else there (the task user's) goes first:
 * unlink never follows a symlink.
 */
async function linkOnce(source: string, target: string): Promise<void> {
  const stored = await lstat(source);
  for (let attempt = 0; attempt < 3; attempt++) {
    const present = await lstat(target).catch(() => undefined);
    if (present?.ino === stored.ino && present.dev === stored.dev) return;
    // eslint-disable-next-line no-restricted-syntax -- what stays in the way makes link() below fail, which is handled there
    if (present) await unlink(target).catch(() => undefined);
    try {
      await link(source, target);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EXDEV' || code === 'EPERM') {
        await copyExclusive(source, target).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw e;
        });
        return;
      }
      if (code !== 'EEXIST') throw err;
    }
  }
  throw new MusterError('STORAGE_ERROR', `cannot link ${target}: something keeps taking its place`);
}

async function prepareDir(dir: string, gid: number): Promise<void> {
  await mkdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const info = await lstat(dir);
  // Made by the task user while the view was incomplete: refuse rather than follow it.
  if (!info.isDirectory() || info.uid !== 0) {
    throw new MusterError(
      'TASK_USER_FAILED',
      `${dir} is not a directory of the agent's; remove it while the agent is stopped`,
    );
  }
  if (info.gid !== gid) await chown(dir, 0, gid);
  if ((info.mode & 0o7777) !== VIEW_MODE) await chmod(dir, VIEW_MODE);
}

/** Copies without following or replacing anything at the target (O_EXCL), read-only. */
async function copyExclusive(source: string, target: string): Promise<void> {
  const input = await open(source, 'r');
  try {
    const output = await open(target, 'wx', 0o444);
    try {
      const buffer = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const { bytesRead } = await input.read(buffer, 0, CHUNK, null);
        if (bytesRead === 0) break;
        await output.write(buffer.subarray(0, bytesRead));
      }
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}
