/**
 * What a SIGHUP's new options change that the running daemon cannot take over: the names of
 * the compiled options that differ, as flag-like words for the log (`drainTimeoutMs` →
 * `drain-timeout`, `host`/`port` → `listen`).
 */
import { isDeepStrictEqual } from 'node:util';

export function changedOptions<T extends object>(
  running: T,
  next: T,
  applied: ReadonlySet<keyof T>,
): string[] {
  const names = new Set<string>();
  for (const key of Object.keys(next) as (keyof T)[]) {
    if (applied.has(key) || isDeepStrictEqual(running[key], next[key])) continue;
    names.add(flagWord(String(key)));
  }
  return [...names].sort();
}

function flagWord(key: string): string {
  if (key === 'host' || key === 'port') return 'listen';
  if (key === 'dataDir') return 'data';
  return key
    .replace(/Ms$/, '')
    .replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
    .replace(/^-/, '');
}
