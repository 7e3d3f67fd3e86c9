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
import { z } from 'zod';
import { MAX_SOCKET_PATH_BYTES } from './shim-names.js';

export const SHIM_PROTOCOL_VERSION = 1;
export const SHIM_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/**
 * The most of a child's stderr the shim keeps for `ran` (it still shows all of a `run`'s): its
 * base64 fits one frame with room for the rest. A `ran.stderr` of exactly this many bytes may
 * have been cut, so it is not an exact record (native/muster-cc.c `MAX_CAPTURE`).
 */
export const SHIM_MAX_CAPTURE_BYTES = ((SHIM_MAX_FRAME_BYTES - 64 * 1024) / 4) * 3;
export {
  FALLBACK_LOG_NAME,
  MASQUERADE_ENV,
  SOCKET_ENV,
  SOCKET_NAME,
  userSocketDir,
  environFromList,
  environToList,
} from './shim-names.js';
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

/**
 * A `muster build` asks the service to host its build (build-control.ts): the first frame of a
 * control connection instead of a hello.
 */
export const buildOpenSchema = z
  .object({
    type: z.literal('build-open'),
    v: z.literal(SHIM_PROTOCOL_VERSION),
    /** The front end's Muster version: another version's service does not host it. */
    version: z.string().max(64),
    /** The front end's native launcher: another installation's service does not host it. */
    launcher: z.string().max(4096),
    /** The command line, as the build on the coordinator shows it. */
    command: z.string().max(8192),
    cwd: z.string().min(1).max(4096),
    /** The front end's environment, `NAME=value` (its login, cache dir, CC and CXX). */
    env: z.array(byteString).max(100_000),
    placement: z.enum(['auto', 'local', 'remote']),
    noCache: z.boolean(),
    /** The build's private directory (absolute): the shims' fallback log of this build. */
    dir: z.string().min(2).max(4096).startsWith('/'),
    /**
     * The socket the build's compiles are given (`MUSTER_CC_SOCKET`): a link to this service's
     * socket in `dir`, so the shims' fallback log is the build's. Absent: the service's own.
     */
    socket: z.string().min(2).max(MAX_SOCKET_PATH_BYTES).startsWith('/').optional(),
  })
  .strict();
export type BuildOpen = z.infer<typeof buildOpenSchema>;

export const buildCloseSchema = z
  .object({
    type: z.literal('build-close'),
    /** The command's exit code, or null when a signal ended it. */
    exitCode: z.number().int().min(0).max(255).nullable(),
    /**
     * Asks for the summary `muster build` prints, written by the service (the native front end
     * has no formatter of its own): when the build started (ms since the epoch: the time is
     * read at the summary, after the close) and the code it reports (128 + the signal when one
     * ended the command).
     */
    summary: z
      .object({
        startedAt: z.number().int().min(0).max(1e14),
        code: z.number().int().min(0).max(255),
      })
      .strict()
      .optional(),
  })
  .strict();
export type BuildClose = z.infer<typeof buildCloseSchema>;

export const shimMessageSchema = z.discriminatedUnion('type', [
  helloSchema,
  ranSchema,
  buildOpenSchema,
  buildCloseSchema,
]);
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
