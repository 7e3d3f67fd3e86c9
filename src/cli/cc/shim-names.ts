/**
 * The names the native shim and the compile service agree on, without the protocol's schemas
 * (shim-protocol.ts): what `muster build`'s front end needs loads nothing more.
 */
import { join } from 'node:path';

/** Environment variable naming the service's socket (set by `muster build` for its command). */
export const SOCKET_ENV = 'MUSTER_CC_SOCKET';
/** Environment variable naming the masquerade directory, so nothing loops back into the shim. */
export const MASQUERADE_ENV = 'MUSTER_CC_MASQUERADE';
export const SOCKET_NAME = 'cc.sock';
export const FALLBACK_LOG_NAME = 'cc-fallbacks.log';
/** sun_path holds 108 bytes with the NUL: the longest path a Unix socket is reached by. */
export const MAX_SOCKET_PATH_BYTES = 107;

/**
 * The per-user directory of the `muster cc --serve` socket: `$XDG_RUNTIME_DIR/muster`, else
 * `/tmp/muster-<uid>`. The shim computes the same (native/muster-cc.c `socket_dir`).
 */
export function userSocketDir(
  env: Readonly<Record<string, string | undefined>>,
  uid: number,
): string {
  const runtime = env['XDG_RUNTIME_DIR'];
  if (runtime !== undefined && runtime.startsWith('/')) return join(runtime, 'muster');
  return `/tmp/muster-${uid}`;
}

/** `NAME=value` list → record; the first occurrence of a name wins, as getenv(3) reads it. */
export function environFromList(list: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of list) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    if (!Object.hasOwn(env, name)) env[name] = entry.slice(eq + 1);
  }
  return env;
}

export function environToList(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.entries(env)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([name, value]) => `${name}=${value}`);
}

const REASON = /^[a-z][a-z0-9-]{0,39}$/;

/** A reason as counted: the shim's or a port's words when they look like one, else `other`. */
export function reasonName(text: string): string {
  return REASON.test(text) ? text : 'other';
}

/** A fallback log line's reason (`<unix-seconds> <reason>`), as the stats count it. */
export function fallbackLineReason(line: string): string {
  return reasonName(line.trim().split(/\s+/)[1] ?? 'shim');
}
