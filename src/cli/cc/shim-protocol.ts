/**
 * What the native launcher (`native/muster-cc.c`) and the compile service say to each other over
 * a Unix socket (design §5). One connection per compiler invocation; frames are the wire's JSON
 * frames (`protocol/framing.ts`: u32 big-endian length, kind byte 1, UTF-8 JSON), at most
 * `SHIM_MAX_FRAME_BYTES`.
 *
 *   shim → service  hello   { v, argv, cwd, env, stderrTty, umask, invokedAs }
 *   service → shim  exec    { path, argv, env? }          the shim execv()s it: done
 *                   run     { path, argv, env?, token }   the shim spawns it, tees stderr, waits
 *                   cpp     { path, argv, env?, token }   same, for the preprocessing pass
 *                                                 (its stderr captured, not shown)
 *                   exit    { code, stderr }              outputs are written; print, exit(code)
 *   shim → service  ran     { token, exitCode, signal, stderr, usec }   after run / cpp
 *
 * After `ran` the service answers again (`exit`, or another `run`: a remote result replaced by a
 * local compile). `env` entries are `NAME=value` and replace the shim's whole environment when
 * given. Byte strings the shim cannot send as UTF-8 make it run the compiler itself; stderr
 * travels as base64 because compilers may print any bytes.
 *
 * The shim never depends on the service to finish a build: EOF, a malformed frame or an
 * unknown message at any point makes it run the real compiler itself (`PATH` scan skipping its
 * own executable and the masquerade directory) and append one line to `FALLBACK_LOG_NAME` in
 * the socket directory, which the service counts under `fallbacks` at its next start.
 */
import { join } from 'node:path';
import { z } from 'zod';

export const SHIM_PROTOCOL_VERSION = 1;
export const SHIM_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/**
 * The most of a child's stderr the shim keeps for `ran` (it still shows all of a `run`'s): its
 * base64 fits one frame with room for the rest. A `ran.stderr` of exactly this many bytes may
 * have been cut, so it is not an exact record (native/muster-cc.c `MAX_CAPTURE`).
 */
export const SHIM_MAX_CAPTURE_BYTES = ((SHIM_MAX_FRAME_BYTES - 64 * 1024) / 4) * 3;
/** Environment variable naming the service's socket (set by `muster build` for its command). */
export const SOCKET_ENV = 'MUSTER_CC_SOCKET';
/** Environment variable naming the masquerade directory, so nothing loops back into the shim. */
export const MASQUERADE_ENV = 'MUSTER_CC_MASQUERADE';
export const SOCKET_NAME = 'cc.sock';
export const FALLBACK_LOG_NAME = 'cc-fallbacks.log';
/**
 * What the shim writes to `FALLBACK_LOG_NAME`, one line per fallback: `<unix-seconds> <reason>`.
 * Before talking: `not-utf8`, `no-cwd`, `too-large` (hello over the frame limit),
 * `socket-path-too-long`, `unsafe-socket-dir`, `no-service` (`MUSTER_CC_SOCKET` does not answer),
 * `service-unavailable` (the per-user service could not be started); while talking: `eof`,
 * `socket-error`, `bad-frame`, `bad-message`, `exec-failed`, `spawn-failed`. A reason written after
 * a `run` child had run ends in `AFTER_RUN_SUFFIX`: the shim then ended as that compile ended
 * rather than compiling again.
 */
export const SHIM_FALLBACK_REASONS = [
  'not-utf8',
  'no-cwd',
  'too-large',
  'socket-path-too-long',
  'unsafe-socket-dir',
  'no-service',
  'service-unavailable',
  'eof',
  'socket-error',
  'bad-frame',
  'bad-message',
  'exec-failed',
  'spawn-failed',
] as const;
export type ShimFallbackReason = (typeof SHIM_FALLBACK_REASONS)[number];
export const AFTER_RUN_SUFFIX = '-after-run';

const byteString = z.string().max(1024 * 1024);

export const helloSchema = z
  .object({
    type: z.literal('hello'),
    v: z.literal(SHIM_PROTOCOL_VERSION),
    /** The whole argv as the shim got it (argv[0] included). */
    argv: z.array(byteString).min(1).max(100_000),
    cwd: z.string().min(1).max(4096),
    /** `NAME=value`, as in environ. */
    env: z.array(byteString).max(100_000),
    stderrTty: z.boolean(),
    umask: z.number().int().min(0).max(0o777),
    /**
     * The compiler the user meant: argv[0]'s base name when the shim was called by a compiler's
     * name (masquerade), else argv[1] (launcher form: `muster-cc gcc -c x.c`). The service tells
     * the forms apart the same way: masquerade when argv[0]'s base name is invokedAs's base
     * name (the compiler's arguments are argv[1…]), else launcher, where argv[1] must be
     * invokedAs (arguments argv[2…]); a hello that is neither is refused.
     */
    invokedAs: z.string().min(1).max(4096),
  })
  .strict();
export type ShimHello = z.infer<typeof helloSchema>;

export const ranSchema = z
  .object({
    type: z.literal('ran'),
    token: z.string().min(1).max(200),
    /** The exit status, or null when a signal ended it. */
    exitCode: z.number().int().min(0).max(255).nullable(),
    signal: z.number().int().min(1).max(128).nullable(),
    /** base64 */
    stderr: z.string().max(SHIM_MAX_FRAME_BYTES),
    /** Wall time of the child, microseconds. */
    usec: z.number().int().min(0),
  })
  .strict();
export type ShimRan = z.infer<typeof ranSchema>;

export const shimMessageSchema = z.discriminatedUnion('type', [helloSchema, ranSchema]);
export type ShimMessage = z.infer<typeof shimMessageSchema>;

export interface ExecMessage {
  readonly type: 'exec';
  /** Absolute. */
  readonly path: string;
  readonly argv: readonly string[];
  readonly env?: readonly string[];
}

export interface RunMessage {
  readonly type: 'run' | 'cpp';
  readonly path: string;
  readonly argv: readonly string[];
  readonly env?: readonly string[];
  readonly token: string;
}

export interface ExitMessage {
  readonly type: 'exit';
  readonly code: number;
  /** base64 */
  readonly stderr: string;
}

export type ServiceMessage = ExecMessage | RunMessage | ExitMessage;

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
