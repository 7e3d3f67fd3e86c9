import { MusterError } from './errors.js';

/**
 * A safe relative path: forward slashes, no empty, "." or ".." segments, not absolute, no
 * backslashes or NUL, at most 1024 characters. Everything the agent writes under a directory it
 * owns goes through this check first.
 */
export function checkRelativePath(path: string, what = 'path'): string {
  const bad = (why: string): never => {
    throw new MusterError('INVALID_PATH', `${what} "${path}" ${why}`, { path });
  };
  if (typeof path !== 'string' || path.length === 0) bad('is empty');
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

export function isSafeRelativePath(path: string): boolean {
  try {
    checkRelativePath(path);
    return true;
  } catch {
    return false;
  }
}
