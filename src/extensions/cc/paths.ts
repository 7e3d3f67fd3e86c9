import { lstat, mkdir, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { ccError } from './errors.js';

/**
 * A safe relative path: forward slashes, no empty, "." or ".." segments, not absolute, no
 * backslash or NUL. (The rule of the host's and core's path checks; an extension ships alone,
 * so it has its own copy.)
 */
export function checkRelativePath(path: unknown, what: string): string {
  const bad = (why: string): never => {
    throw ccError('INVALID_PATH', `${what} ${JSON.stringify(path)} ${why}`);
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

/**
 * Creates directory `relDir` ('' = the root) under `realRoot` one segment at a time, so a
 * symlink on the way is followed only when it stays inside; returns its real path.
 */
export async function makeDirInside(realRoot: string, relDir: string): Promise<string> {
  let current = realRoot;
  if (relDir === '') return current;
  for (const segment of relDir.split('/')) {
    const next = join(current, segment);
    try {
      await mkdir(next);
      current = next;
      continue;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EEXIST') {
        throw ccError('INVALID_PATH', `cannot create directory "${relDir}": ${String(err)}`);
      }
    }
    const info = await lstat(next);
    if (info.isDirectory()) {
      current = next;
    } else if (info.isSymbolicLink()) {
      const real = await realpath(next).catch(() => '');
      if (real === '' || !isInside(realRoot, real) || !(await stat(real)).isDirectory()) {
        throw ccError('INVALID_PATH', `"${relDir}" goes through a symlink that leads outside`);
      }
      current = real;
    } else {
      throw ccError('INVALID_PATH', `"${relDir}" runs into a file`);
    }
  }
  return current;
}
