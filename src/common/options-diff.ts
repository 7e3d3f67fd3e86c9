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

/** Compiled options whose flag is not their name made kebab-case. */
const FLAGS: Readonly<Record<string, string>> = {
  host: 'listen',
  port: 'listen',
  dataDir: 'data',
  metrics: 'metrics-listen',
  tls: 'tls-cert',
  uploadQuotaBytes: 'upload-quota',
  uploadQuotaPerUserBytes: 'upload-quota-per-user',
  peerCaFile: 'peer-ca',
};

function flagWord(key: string): string {
  const flag = FLAGS[key];
  if (flag !== undefined) return flag;
  return key
    .replace(/Ms$/, '')
    .replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
    .replace(/^-/, '');
}
