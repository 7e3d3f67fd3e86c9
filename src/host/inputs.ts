import { access, chmod, constants, copyFile, lstat, realpath, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { TaskInputFile } from '../protocol/task-types.js';
import { codedError, errnoCode, isKnownCode } from './errors.js';
import { SafeDirs, checkRelativePath, splitPath } from './paths.js';

const SHA256 = /^[0-9a-f]{64}$/;
const PARALLEL = 16;

/** The path of a blob in the agent's store: `<blobDir>/<sha[0..2]>/<sha>`. */
export function blobPath(blobDir: string, sha256: string): string {
  return join(blobDir, sha256.slice(0, 2), sha256);
}

/**
 * Copies each input from the blob store to `workDir/<path>` and gives it the input's mode
 * (permission bits only: & 0o777). Inputs are copies, never links, so a task that modifies its
 * inputs cannot corrupt the store. A path listed twice is placed once (the last entry wins).
 *
 * Errors (coded): INVALID_PATH for an unsafe path or one that runs into a file, a symlink out of
 * the work dir or a non-file; BLOB_NOT_FOUND for a missing blob (or a malformed hash);
 * INVALID_MESSAGE for a mode that is not a number; STORAGE_ERROR for anything else.
 */
export async function placeInputs(
  workDir: string,
  blobDir: string,
  inputs: readonly TaskInputFile[],
): Promise<void> {
  const byPath = new Map<string, TaskInputFile>();
  for (const input of inputs) {
    checkRelativePath(input.path, 'input path');
    if (typeof input.sha256 !== 'string' || !SHA256.test(input.sha256)) {
      throw codedError('BLOB_NOT_FOUND', `input "${input.path}": malformed sha256`);
    }
    if (typeof input.mode !== 'number' || !Number.isInteger(input.mode) || input.mode < 0) {
      throw codedError('INVALID_MESSAGE', `input "${input.path}": mode must be an integer`);
    }
    byPath.set(input.path, input);
  }
  const root = await realpath(workDir).catch((err: unknown) => {
    throw codedError('STORAGE_ERROR', `work dir ${workDir}: ${String(err)}`, err);
  });
  const dirs = new SafeDirs(root);
  const queue = [...byPath.values()];
  const worker = async (): Promise<void> => {
    for (let input = queue.pop(); input !== undefined; input = queue.pop()) {
      await placeOne(dirs, blobDir, input);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, worker));
}

async function placeOne(dirs: SafeDirs, blobDir: string, input: TaskInputFile): Promise<void> {
  const [dir, name] = splitPath(input.path);
  const target = join(await dirs.dir(dir), name);
  const source = blobPath(blobDir, input.sha256);
  // EXCL: never write through something already there (a symlink above all).
  const flags = constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE;
  try {
    try {
      await copyFile(source, target, flags);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      const info = await lstat(target);
      if (!info.isFile()) {
        throw codedError('INVALID_PATH', `input "${input.path}" is in the way of something else`);
      }
      await unlink(target);
      await copyFile(source, target, flags);
    }
    await chmod(target, input.mode & 0o777);
  } catch (err) {
    if (isKnownCode((err as { code?: unknown }).code)) throw err;
    if (errnoCode(err) === 'ENOENT' && !(await exists(source))) {
      throw codedError('BLOB_NOT_FOUND', `input "${input.path}": blob ${input.sha256} not found`);
    }
    const code = errnoCode(err) === 'EISDIR' ? 'INVALID_PATH' : 'STORAGE_ERROR';
    throw codedError(code, `input "${input.path}": ${String(err)}`, err);
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
