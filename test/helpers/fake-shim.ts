/**
 * A stand-in for the native shim (native/muster-cc.c) in TypeScript, for the compile service's
 * tests: it speaks src/cli/cc/shim-protocol.ts exactly (hello; then exec → runs the program and
 * is done; run/cpp → runs it capturing stderr (shown for run only), answers ran; exit → done), with child_process
 * where the real one uses posix_spawn/execve. Every wait is bounded.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { encodeJsonFrame, FrameDecoder } from '../../src/protocol/framing.js';
import {
  environFromList,
  environToList,
  SHIM_MAX_FRAME_BYTES,
  SHIM_PROTOCOL_VERSION,
  type ShimHello,
} from '../../src/cli/cc/shim-protocol.js';

export interface ShimOutcome {
  /** How it ended: the service said exit, or exec (the program ran), or the connection closed. */
  readonly how: 'exit' | 'exec' | 'closed';
  readonly code: number | null;
  /** What the shim would have written to its fd 2 (runs' stderr teed — not cpp's —, then exit's). */
  readonly stderr: Buffer;
  /** The messages the service sent, in order (type and, for run/exec, argv). */
  readonly messages: { type: string; argv?: string[]; env?: string[]; path?: string }[];
}

interface Ran {
  code: number | null;
  signal: number | null;
  stderr: Buffer;
  usec: number;
}

function runProgram(
  path: string,
  argv: readonly string[],
  env: readonly string[] | undefined,
  cwd: string,
  timeoutMs: number,
): Promise<Ran> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(path, argv.slice(1), {
      argv0: argv[0] ?? path,
      cwd,
      env: env === undefined ? process.env : environFromList(env),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const chunks: Buffer[] = [];
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal: signal === null ? null : signalNumber(signal),
        stderr: Buffer.concat(chunks),
        usec: Number((process.hrtime.bigint() - started) / 1000n),
      });
    });
  });
}

function signalNumber(name: NodeJS.Signals): number {
  return { SIGKILL: 9, SIGTERM: 15, SIGSEGV: 11, SIGINT: 2 }[name as string] ?? 15;
}

export interface FakeShimOptions {
  readonly socket: string;
  /** The whole argv (argv[0] included), as the shim got it. */
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly invokedAs?: string;
  readonly stderrTty?: boolean;
  readonly umask?: number;
  readonly timeoutMs?: number;
}

/** Runs one compiler invocation through the service, as the shim would. */
export async function fakeShim(options: FakeShimOptions): Promise<ShimOutcome> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const hello: ShimHello = {
    type: 'hello',
    v: SHIM_PROTOCOL_VERSION,
    argv: [...options.argv],
    cwd: options.cwd,
    env: environToList(options.env ?? process.env),
    stderrTty: options.stderrTty ?? false,
    umask: options.umask ?? 0o022,
    invokedAs: options.invokedAs ?? options.argv[0] ?? '',
  };
  const socket = connect(options.socket);
  const messages: ShimOutcome['messages'] = [];
  const stderr: Buffer[] = [];
  const decoder = new FrameDecoder(SHIM_MAX_FRAME_BYTES);
  const queue: unknown[] = [];
  let wake: (() => void) | null = null;
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) if (frame.kind === 'json') queue.push(frame.value);
    wake?.();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
    wake?.();
  });
  const deadline = Date.now() + timeoutMs;
  const next = async (): Promise<Record<string, unknown> | null> => {
    while (queue.length === 0 && !closed) {
      if (Date.now() > deadline) throw new Error('fake shim: the service did not answer in time');
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
      wake = null;
    }
    return (queue.shift() as Record<string, unknown> | undefined) ?? null;
  };
  try {
    socket.write(encodeJsonFrame(hello));
    for (;;) {
      const m = await next();
      if (m === null) return { how: 'closed', code: null, stderr: Buffer.concat(stderr), messages };
      const type = String(m['type']);
      const argv = m['argv'] as string[] | undefined;
      const env = m['env'] as string[] | undefined;
      const path = m['path'] as string | undefined;
      messages.push({
        type,
        ...(argv ? { argv } : {}),
        ...(env ? { env } : {}),
        ...(path ? { path } : {}),
      });
      if (type === 'exit') {
        stderr.push(Buffer.from(String(m['stderr']), 'base64'));
        return { how: 'exit', code: Number(m['code']), stderr: Buffer.concat(stderr), messages };
      }
      if (type === 'exec') {
        const ran = await runProgram(path ?? '', argv ?? [], env, options.cwd, timeoutMs);
        stderr.push(ran.stderr);
        return { how: 'exec', code: ran.code, stderr: Buffer.concat(stderr), messages };
      }
      if (type === 'run' || type === 'cpp') {
        const ran = await runProgram(path ?? '', argv ?? [], env, options.cwd, timeoutMs);
        // A cpp pass's stderr is only reported to the service, never shown (as the shim does).
        if (type === 'run') stderr.push(ran.stderr);
        socket.write(
          encodeJsonFrame({
            type: 'ran',
            token: m['token'],
            exitCode: ran.code,
            signal: ran.signal,
            stderr: ran.stderr.toString('base64'),
            usec: ran.usec,
          }),
        );
        continue;
      }
      throw new Error(`fake shim: unknown message ${type}`);
    }
  } finally {
    socket.destroy();
  }
}

/** Sends raw bytes and reports whether the service closed the connection (bounded). */
export function sendRaw(
  path: string,
  bytes: Buffer,
  timeoutMs = 10_000,
): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const socket: Socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('open');
    }, timeoutMs);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    socket.write(bytes);
  });
}
