import { lstat, mkdir, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { codedError, errnoCode } from './errors.js';

/**
 * A safe relative path: forward slashes, no empty, "." or ".." segments, not absolute, no
 * backslash or NUL, at most 1024 characters. Same rule as src/protocol/paths.ts (which the host
 * cannot import at run time). Throws INVALID_PATH.
 */
export function checkRelativePath(path: unknown, what = 'path'): string {
  const bad = (why: string): never => {
    throw codedError('INVALID_PATH', `${what} ${JSON.stringify(path)} ${why}`);
  };
  if (typeof path !== 'string' || path.length === 0) return bad('is empty or not a string');
  if (path.length > 1024) bad('is longer than 1024 characters');
  if (path.includes('\0')) bad('contains a NUL byte');
  if (path.includes('\\')) bad('contains a backslash');
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) bad('is absolute');
  for (const segment of path.split('/')) {
    if (segment === '') bad('has an empty segment');
    if (segment === '.' || segment === '..') bad(`has a "${segment}" segment`);
  }
  return path;
}

/** True when `path` is `root` or below it (both absolute and already resolved). */
export function isInside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** Splits a checked relative path into its directory ('' for the root) and its last segment. */
export function splitPath(rel: string): [dir: string, name: string] {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? ['', rel] : [rel.slice(0, slash), rel.slice(slash + 1)];
}

/**
 * Creates directories under one root one segment at a time, so that `mkdir -p` can never follow a
 * symlink out of the root: a symlink on the way is accepted only when its real path stays inside.
 * Results are cached, so files placed side by side cost one mkdir per new directory.
 */
export class SafeDirs {
  private readonly made = new Map<string, Promise<string>>();

  /** `realRoot` must be a real path (no symlinks). */
  constructor(readonly realRoot: string) {}

  /** The real path of directory `relDir` ('' is the root), created when missing. */
  dir(relDir: string): Promise<string> {
    if (relDir === '') return Promise.resolve(this.realRoot);
    let made = this.made.get(relDir);
    if (made === undefined) {
      made = this.make(relDir);
      this.made.set(relDir, made);
    }
    return made;
  }

  private async make(relDir: string): Promise<string> {
    const [parentRel, name] = splitPath(relDir);
    const full = join(await this.dir(parentRel), name);
    try {
      await mkdir(full);
      return full;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') {
        throw codedError('INVALID_PATH', `cannot create directory "${relDir}": ${String(err)}`);
      }
    }
    const info = await lstat(full);
    if (info.isDirectory()) return full;
    if (info.isSymbolicLink()) {
      const real = await realpath(full).catch(() => '');
      if (real !== '' && isInside(this.realRoot, real) && (await stat(real)).isDirectory()) {
        return real;
      }
      throw codedError('INVALID_PATH', `"${relDir}" is a symlink that leads outside the work dir`);
    }
    throw codedError('INVALID_PATH', `"${relDir}" exists and is not a directory`);
  }
}
