import { createHash, randomUUID } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, rename, stat, unlink } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { TaskOutputFile } from '../protocol/task-types.js';
import { codedError, isKnownCode } from './errors.js';
import { GlobSet } from './glob.js';
import { blobPath } from './inputs.js';
import { isInside } from './paths.js';

const PARALLEL = 8;
const READ_CHUNK = 1024 * 1024;

/**
 * Collects the regular files under `workDir` that match any of `patterns` (see glob.ts) into the
 * blob store and describes them, sorted by path.
 *
 * - A pattern that matches nothing is not an error: the task simply has fewer outputs. (A build
 *   plan that needs a file should depend on it; the consumer fails on the missing input.)
 * - Directories are walked without following symlinked directories. A matching symlink is
 *   collected as the file it points to (under the symlink's path) when its real path stays inside
 *   the work dir; when it points outside, the task fails with OUTPUT_ESCAPES. Dangling symlinks
 *   and symlinks to directories are skipped.
 * - Each blob is hashed while it is copied to `<blobDir>/.incoming/<unique>`, then renamed to
 *   `<blobDir>/<sha[0..2]>/<sha>` read-only (0o444), or dropped when the store already has it.
 * - `mode` is the file's permission bits (& 0o777).
 */
export async function collectOutputs(
  workDir: string,
  blobDir: string,
  patterns: readonly string[],
): Promise<TaskOutputFile[]> {
  const globs = new GlobSet(patterns);
  const root = await realpath(workDir);
  const found = new Map<string, string>(); // relative path -> file to read

  const consider = async (rel: string, abs: string, info: Stats | Dirent): Promise<void> => {
    if (info.isFile()) {
      found.set(rel, abs);
    } else if (info.isSymbolicLink()) {
      const real = await realpath(abs).catch(() => undefined);
      if (real === undefined) return; // dangling
      if (!isInside(root, real)) {
        throw codedError('OUTPUT_ESCAPES', `output "${rel}" is a symlink to outside the work dir`);
      }
      if ((await stat(real)).isFile()) found.set(rel, real);
    }
  };

  for (const rel of globs.literals) {
    const abs = await realDirsPath(root, rel);
    const info = abs === undefined ? undefined : await lstat(abs).catch(() => undefined);
    if (abs !== undefined && info !== undefined) await consider(rel, abs, info);
  }
  for (const base of globs.walkBases) {
    const abs = base === '' ? root : await realDirsPath(root, base);
    const info = abs === undefined ? undefined : await lstat(abs).catch(() => undefined);
    if (abs === undefined || info?.isDirectory() !== true) continue;
    await walk(abs, base, async (rel, entryAbs, entry) => {
      if (globs.match(rel)) await consider(rel, entryAbs, entry);
    });
  }

  const paths = [...found.keys()].sort();
  if (paths.length === 0) return [];
  await mkdir(join(blobDir, '.incoming'), { recursive: true });
  const results: TaskOutputFile[] = new Array<TaskOutputFile>(paths.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < paths.length; i = next++) {
      const rel = paths[i] as string;
      results[i] = { path: rel, ...(await storeBlob(found.get(rel) as string, blobDir, rel)) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, paths.length) }, worker));
  return results;
}

/**
 * `root/rel`, or undefined when a directory on the way is missing, not a directory, or a symlink
 * (the walk does not follow directory symlinks, so neither do literal patterns).
 */
async function realDirsPath(root: string, rel: string): Promise<string | undefined> {
  const segments = rel.split('/');
  let path = root;
  for (let i = 0; i < segments.length - 1; i++) {
    path += sep + (segments[i] as string);
    const info = await lstat(path).catch(() => undefined);
    if (info?.isDirectory() !== true) return undefined;
  }
  return path + sep + (segments[segments.length - 1] as string);
}

type Visit = (rel: string, abs: string, entry: Dirent) => Promise<void>;

/** Visits every non-directory entry below `dir`, depth first; never follows directory symlinks. */
async function walk(dir: string, rel: string, visit: Visit): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const entryRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
    const entryAbs = dir + sep + entry.name;
    if (entry.isDirectory()) {
      await walk(entryAbs, entryRel, visit);
    } else {
      await visit(entryRel, entryAbs, entry);
    }
  }
}

/** Copies `source` into the blob store while hashing it; returns what the result lists. */
async function storeBlob(
  source: string,
  blobDir: string,
  rel: string,
): Promise<Omit<TaskOutputFile, 'path'>> {
  const temp = join(blobDir, '.incoming', `${process.pid}-${randomUUID()}`);
  let renamed = false;
  try {
    const input = await open(source, 'r');
    let size = 0;
    let mode: number;
    const hash = createHash('sha256');
    try {
      const info = await input.stat();
      mode = info.mode & 0o777;
      // Created read-only: the fd we write through was opened before the mode applies.
      const output = await open(temp, 'wx', 0o444);
      try {
        const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(READ_CHUNK, info.size + 1)));
        for (;;) {
          const { bytesRead } = await input.read(buffer, 0, buffer.length, null);
          if (bytesRead === 0) break;
          const chunk = buffer.subarray(0, bytesRead);
          hash.update(chunk);
          await output.write(chunk);
          size += bytesRead;
        }
      } finally {
        await output.close();
      }
    } finally {
      await input.close();
    }
    const sha256 = hash.digest('hex');
    const final = blobPath(blobDir, sha256);
    if (
      !(await lstat(final).then(
        () => true,
        () => false,
      ))
    ) {
      await mkdir(join(blobDir, sha256.slice(0, 2)), { recursive: true });
      await rename(temp, final);
      renamed = true;
    }
    return { sha256, size, mode };
  } catch (err) {
    if (isKnownCode((err as { code?: unknown }).code)) throw err;
    throw codedError('STORAGE_ERROR', `output "${rel}": ${String(err)}`, err);
  } finally {
    // eslint-disable-next-line no-restricted-syntax -- a temp file left (or never made) is in the task's own dir; the error thrown above is the one to report
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
}
