import { spawn } from 'node:child_process';
import type { OperationContext } from '../../host/extensions.js';
import { coreError, inputObject, invalidInput } from './errors.js';
import { existingDirInside } from './paths.js';

/** After SIGTERM on cancel or timeout, the group gets this long before SIGKILL. */
export const KILL_AFTER_MS = 2000;
/**
 * After the command exited (and its group was killed), how long to wait for its stdout/stderr to
 * reach end of file. Only a process that left the group (setsid) can keep them open this long.
 */
const DRAIN_MS = 2000;

export interface RunInput {
  /** A command line; run by /bin/sh -c unless `shell: false` (then it is a program name). */
  command?: string;
  /** argv: args[0] is the program (looked up in PATH), the rest its arguments. */
  args?: string[];
  /** Default: true with `command`, false with `args` (then the args are quoted for sh). */
  shell?: boolean;
  /** Working directory relative to the work dir; must exist and stay inside it. */
  cwd?: string;
  /** Added to the task's environment. */
  env?: Record<string, string>;
}

export interface RunResult {
  exitCode: number | null;
  signal: string | null;
}

/**
 * core/run: runs one command in its own process group, streams its stdout and stderr, and
 * returns `{ exitCode, signal }` (the host fails the task unless exitCode is 0).
 *
 * No process outlives the task: when the command exits, whatever it left running in its process
 * group (background jobs, `cmd &`) is killed with SIGKILL. On cancel or timeout the group gets
 * SIGTERM, then SIGKILL after {@link KILL_AFTER_MS}. A program that cannot be started with
 * `args` fails the task with OPERATION_FAILED ("spawn … ENOENT"); through the shell it is the
 * shell's exit code 127.
 */
export async function run(input: unknown, ctx: OperationContext): Promise<RunResult> {
  const spec = parseRunInput(input);
  const cwd =
    spec.cwd === undefined ? ctx.workDir : await existingDirInside(ctx.workDir, spec.cwd, 'cwd');
  const env = spec.env === undefined ? ctx.env : { ...ctx.env, ...spec.env };
  const [file, args] = commandLine(spec);
  ctx.signal.throwIfAborted();
  return runProcess(file, args, cwd, env, ctx);
}

export function parseRunInput(input: unknown): RunInput {
  const obj = inputObject(input, 'core/run', ['command', 'args', 'shell', 'cwd', 'env']);
  const { command, args, shell, cwd, env } = obj;
  if ((command === undefined) === (args === undefined)) {
    throw invalidInput('core/run: give exactly one of "command" and "args"');
  }
  if (command !== undefined && (typeof command !== 'string' || command.trim() === '')) {
    throw invalidInput('core/run: "command" must be a non-empty string');
  }
  if (
    args !== undefined &&
    (!Array.isArray(args) ||
      args.length === 0 ||
      args.some((a) => typeof a !== 'string') ||
      args[0] === '')
  ) {
    throw invalidInput('core/run: "args" must be a non-empty array of strings');
  }
  if (shell !== undefined && typeof shell !== 'boolean') {
    throw invalidInput('core/run: "shell" must be a boolean');
  }
  if (cwd !== undefined && typeof cwd !== 'string') {
    throw invalidInput('core/run: "cwd" must be a string');
  }
  if (
    env !== undefined &&
    (typeof env !== 'object' ||
      env === null ||
      Array.isArray(env) ||
      Object.values(env).some((v) => typeof v !== 'string'))
  ) {
    throw invalidInput('core/run: "env" must be an object of strings');
  }
  return obj;
}

function commandLine(spec: RunInput): [file: string, args: string[]] {
  if (spec.command !== undefined) {
    return spec.shell === false ? [spec.command, []] : ['/bin/sh', ['-c', spec.command]];
  }
  const argv = spec.args as [string, ...string[]];
  return spec.shell === true
    ? ['/bin/sh', ['-c', argv.map(shellQuote).join(' ')]]
    : [argv[0], argv.slice(1)];
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function runProcess(
  file: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
  ctx: OperationContext,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd,
      env,
      detached: true, // its own process group, so the whole tree can be signalled
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    if (pid === undefined) {
      child.once('error', (err) => {
        reject(coreError('OPERATION_FAILED', `cannot start ${file}: ${err.message}`));
      });
      return;
    }
    ctx.trackProcess(pid);
    child.stdout.on('data', (chunk: Buffer) => ctx.stdout(chunk));
    child.stderr.on('data', (chunk: Buffer) => ctx.stderr(chunk));
    // After spawn, 'error' only reports a failed kill(); the group kills below cover it.
    child.on('error', () => undefined);

    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;
    let exit: RunResult | undefined;
    let finished = false;
    const onAbort = (): void => {
      killGroup(pid, 'SIGTERM');
      killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), KILL_AFTER_MS);
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });

    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(killTimer);
      clearTimeout(drainTimer);
      ctx.signal.removeEventListener('abort', onAbort);
      ctx.untrackProcess(pid);
      resolve(exit ?? { exitCode: null, signal: null });
    };
    child.once('exit', (exitCode, signal) => {
      exit = { exitCode, signal };
      // Nothing the command started may outlive the task.
      killGroup(pid, 'SIGKILL');
      clearTimeout(killTimer);
      drainTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, DRAIN_MS);
    });
    // 'close' comes after 'exit', once stdout and stderr reached end of file.
    child.once('close', finish);
  });
}
