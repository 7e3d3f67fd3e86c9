/**
 * Reading and writing files strictly inside one directory (the plan's), whatever symlinks a
 * repository or a previous run left there. `muster run` reads inputs through {@link openInside}
 * and writes outputs through {@link writeInside}; docs/plans.md and docs/security.md have the rules.
 *
 * Checks by path can be raced (a link swapped between the check and the use), so the check that
 * counts is made on what was opened: the kernel's path of the open file descriptor
 * (/proc/self/fd on Linux). Where that is unavailable, the path checks still apply.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  lstat,
  mkdir,
  open,
  readlink,
  realpath,
  rename,
  rm,
  type FileHandle,
} from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { MusterError } from '../protocol/errors.js';

/** True when `path` is `root` or below it (both absolute, resolved). */
export function isInside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** The path the kernel has for an open file, or undefined where it cannot tell. */
async function openedPath(handle: FileHandle): Promise<string | undefined> {
  return readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
}

/**
 * The first symlink along `rel` (under `root`) whose target lies outside `realRoot`, as
 * `{ link, target, resolved }` for the message; undefined when every link along it stays inside.
 */
export async function findEscapingLink(
  root: string,
  realRoot: string,
  rel: string,
): Promise<{ link: string; target: string; resolved: string } | undefined> {
  const segments = rel.split('/');
  for (let i = 1; i <= segments.length; i++) {
    const link = segments.slice(0, i).join('/');
    const abs = join(root, ...segments.slice(0, i));
    const info = await lstat(abs).catch(() => undefined);
    if (!info?.isSymbolicLink()) continue;
    const target = await readlink(abs).catch(() => '');
    // A dangling link is judged by where it points: its target may appear later.
    const resolved =
      (await realpath(abs).catch(() => undefined)) ??
      resolve(await realpath(dirname(abs)).catch(() => dirname(abs)), target);
    if (!isInside(realRoot, resolved)) return { link, target, resolved };
  }
  return undefined;
}

/** The INPUT_ESCAPES error for input pattern `input`, which reaches outside through `escape`. */
export function inputEscapes(
  input: string,
  escape: { link: string; target: string; resolved: string },
  root: string,
): MusterError {
  return new MusterError(
    'INPUT_ESCAPES',
    `input "${input}": symlink "${escape.link}" -> "${escape.target}" leads outside ${root} (to ${escape.resolved}); nothing was uploaded`,
    { input, link: escape.link, target: escape.target },
  );
}

/**
 * Opens `root/rel` for reading (with its real path), only when its real path is inside `realRoot` (symlinks inside
 * are followed; INPUT_ESCAPES otherwise, naming the link). The file opened is the real path with
 * O_NOFOLLOW, then checked again by its descriptor's path, so a link swapped in between cannot
 * redirect the read.
 */
export async function openInside(
  root: string,
  realRoot: string,
  rel: string,
): Promise<{ handle: FileHandle; real: string }> {
  const abs = join(root, ...rel.split('/'));
  const refuse = async (): Promise<never> => {
    const escape = await findEscapingLink(root, realRoot, rel);
    throw escape
      ? inputEscapes(rel, escape, root)
      : new MusterError('INPUT_ESCAPES', `input "${rel}" resolves outside ${root}`, {
          path: rel,
        });
  };
  let real: string;
  try {
    real = await realpath(abs);
  } catch (err) {
    throw new MusterError('INVALID_CONFIG', `cannot read ${abs}: ${(err as Error).message}`, {
      path: rel,
    });
  }
  if (!isInside(realRoot, real)) return refuse();
  let handle: FileHandle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    throw new MusterError('INVALID_CONFIG', `cannot read ${abs}: ${(err as Error).message}`, {
      path: rel,
    });
  }
  const opened = await openedPath(handle);
  if (opened !== undefined && !isInside(realRoot, opened)) {
    await handle.close();
    return refuse();
  }
  return { handle, real };
}

/**
 * Writes `data` at `realRoot/rel` without following any symlink on the way: each directory is
 * created or checked one segment at a time (a symlink there: OUTPUT_THROUGH_SYMLINK), the data
 * goes to a new temporary file in the verified directory (O_EXCL | O_NOFOLLOW, its descriptor's
 * path checked), which is then renamed over the name. A symlink at the name itself is replaced
 * by the file, never written through. `realRoot` must be a real path.
 */
export async function writeInside(
  realRoot: string,
  rel: string,
  data: Buffer,
  mode: number,
): Promise<void> {
  const segments = rel.split('/');
  const name = segments.pop() as string;
  let dir = realRoot;
  for (const [i, segment] of segments.entries()) {
    dir = join(dir, segment);
    const here = segments.slice(0, i + 1).join('/');
    await mkdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw storageError(rel, err);
    });
    const info = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
      throw storageError(rel, err);
    });
    if (info.isSymbolicLink()) {
      const target = await readlink(dir).catch(() => '?');
      throw new MusterError(
        'OUTPUT_THROUGH_SYMLINK',
        `output "${rel}": "${here}" is a symlink (-> "${target}") in ${realRoot}; muster run does not write through it`,
        { path: rel, link: here, target },
      );
    }
    if (!info.isDirectory()) {
      throw new MusterError('STORAGE_ERROR', `cannot write ${rel}: "${here}" is not a directory`, {
        path: rel,
      });
    }
  }
  const temp = join(dir, `.muster-${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const handle = await open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      mode & 0o777,
    );
    created = true;
    try {
      const opened = await openedPath(handle);
      if (opened !== undefined && opened !== temp) {
        throw new MusterError(
          'OUTPUT_THROUGH_SYMLINK',
          `output "${rel}": its directory changed into a link to ${relative(realRoot, opened)} while it was written`,
          { path: rel },
        );
      }
      await handle.writeFile(data);
      await handle.chmod(mode & 0o777);
    } finally {
      await handle.close();
    }
    await rename(temp, join(dir, name));
    created = false;
  } catch (err) {
    if (err instanceof MusterError) throw err;
    throw storageError(rel, err as NodeJS.ErrnoException);
  } finally {
    if (created) await rm(temp, { force: true });
  }
}

function storageError(rel: string, err: NodeJS.ErrnoException): MusterError {
  return new MusterError(
    'STORAGE_ERROR',
    `cannot write ${rel}: ${err.message}`,
    { path: rel },
    { cause: err },
  );
}
