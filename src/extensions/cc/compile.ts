/**
 * cc/compile: one remote compile of a directives-only text with a shipped toolchain, hermetic
 * (design §2): `<toolchain>/<driver> <args> -nostdinc -fdebug-prefix-map=<dir>=<client dir>…`
 * in a scrubbed environment (`PATH=<toolchain>/bin`, `LD_LIBRARY_PATH=<toolchain>/lib/shared`,
 * `TMPDIR` in the work dir, and only the client's locale, time and colour variables), so
 * nothing of the agent's own compiler, headers or environment reaches the object.
 *
 * The compiler's exit code and output are the result: exit 0 succeeds, anything else fails the
 * task (a compile error is a failed task, as a failed command is for core/run) with the
 * diagnostics in the task's log and, up to {@link MAX_CAPTURED} bytes, in the result's value,
 * where the compile service looks: it accepts a remote result only when the compiler exited 0
 * and printed nothing, and compiles anything else again locally for exact diagnostics.
 */
import { spawn } from 'node:child_process';
import { lstat, mkdtemp, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { OperationContext } from '../../host/extensions.js';
import { ccError } from './errors.js';
import { parseCompileInput, type CompileInput, type CompileOutput } from './input.js';
import { isInside, makeDirInside } from './paths.js';
import { agentGlibc, locateToolchain, type GlibcVersion } from './toolchains.js';

/** After SIGTERM on cancel or timeout, the compiler's group gets this long before SIGKILL. */
export const KILL_AFTER_MS = 2000;
/** After the compiler exited, how long its stdout/stderr may stay open (a setsid child). */
const DRAIN_MS = 2000;
/** Bytes of stdout and of stderr kept in the result's value (all of it goes to the log). */
export const MAX_CAPTURED = 64 * 1024;

export interface CompileOptions {
  /** The directory that holds `<id>/` and `<id>.json` per toolchain. */
  toolchainsRoot: string;
  /** This agent's glibc (tests stand in for another agent). */
  glibc?: GlibcVersion;
}

export interface CompileResult {
  exitCode: number | null;
  signal: string | null;
  /** What the compiler printed, as UTF-8, cut at MAX_CAPTURED bytes. */
  stdout: string;
  stderr: string;
  /** How many bytes it printed in all (more than kept when cut). */
  stdoutBytes: number;
  stderrBytes: number;
  /** With exit code 0: the outputs it wrote, relative to the work dir. */
  outputs: (CompileOutput & { size: number })[];
}

/** The operation, for a bundle whose toolchains are under `options.toolchainsRoot`. */
export function compileOperation(
  options: CompileOptions,
): (input: unknown, ctx: OperationContext) => Promise<CompileResult> {
  return async (input, ctx) => {
    const spec = parseCompileInput(input);
    const toolchain = await locateToolchain(
      options.toolchainsRoot,
      spec.toolchain,
      spec.driver,
      options.glibc ?? agentGlibc,
    );
    const work = await realpath(ctx.workDir);
    const cwd = await makeDirInside(work, spec.cwd);
    for (const output of spec.outputs) {
      const slash = output.path.lastIndexOf('/');
      await makeDirInside(work, slash < 0 ? '' : output.path.slice(0, slash));
    }
    const argv = await compilerArgs(spec, work);
    const tmp = await mkdtemp(join(work, '.cc-tmp-'));
    const env: Record<string, string> = {
      ...spec.env,
      PATH: join(toolchain.root, 'bin'),
      LD_LIBRARY_PATH: join(toolchain.root, 'lib', 'shared'),
      TMPDIR: tmp,
    };
    ctx.signal.throwIfAborted();
    let ran: Omit<CompileResult, 'outputs'>;
    try {
      ran = await runCompiler(toolchain.driver, argv, cwd, env, ctx);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    const outputs = ran.exitCode === 0 ? await writtenOutputs(work, spec.outputs) : [];
    return { ...ran, outputs };
  };
}

/**
 * The command line: the client's arguments (places in the work dir made absolute), then
 * `-nostdinc` (the text includes nothing; no header of the agent's may be read), then the debug
 * prefix maps, last, so gcc tries them before any of the user's own.
 */
async function compilerArgs(spec: CompileInput, work: string): Promise<string[]> {
  const args = spec.args.map((arg) => (typeof arg === 'string' ? arg : join(work, arg.workPath)));
  const maps: string[] = [];
  for (const map of spec.debugPrefixMaps) {
    const dir = await makeDirInside(work, map.dir);
    maps.push(`-fdebug-prefix-map=${dir}${map.suffix ?? ''}=${map.to}`);
  }
  return [...args, '-nostdinc', ...maps];
}

/** The declared outputs as written: regular files inside the work dir, with their sizes. */
async function writtenOutputs(
  work: string,
  outputs: readonly CompileOutput[],
): Promise<CompileResult['outputs']> {
  const written: CompileResult['outputs'] = [];
  for (const output of outputs) {
    const path = join(work, output.path);
    const info = await lstat(path).catch(() => undefined);
    if (info === undefined || !info.isFile()) {
      throw ccError(
        'OPERATION_FAILED',
        `the compiler exited 0 but wrote no ${output.name} at ${output.path}`,
      );
    }
    if (!isInside(work, await realpath(path))) {
      throw ccError('INVALID_PATH', `the ${output.name} ${output.path} leads outside`);
    }
    written.push({ ...output, size: info.size });
  }
  return written;
}

/** Keeps the first MAX_CAPTURED bytes of a stream and counts the rest. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  bytes = 0;

  add(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.kept >= MAX_CAPTURED) return;
    const part = chunk.subarray(0, MAX_CAPTURED - this.kept);
    this.chunks.push(part);
    this.kept += part.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Runs the compiler in its own process group (as core/run runs a command): its output goes to
 * the task's log and is kept for the value; on cancel or timeout the group gets SIGTERM, then
 * SIGKILL; when it exits, whatever it left in its group is killed.
 */
function runCompiler(
  file: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
  ctx: OperationContext,
): Promise<Omit<CompileResult, 'outputs'>> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    if (pid === undefined) {
      child.once('error', (err) => {
        reject(ccError('OPERATION_FAILED', `cannot start ${file}: ${err.message}`));
      });
      return;
    }
    ctx.trackProcess(pid);
    const out = new Capture();
    const err = new Capture();
    child.stdout.on('data', (chunk: Buffer) => {
      out.add(chunk);
      ctx.stdout(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err.add(chunk);
      ctx.stderr(chunk);
    });
    // After spawn, 'error' only reports a failed kill(); the group kills below cover it.
    child.on('error', () => undefined);

    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;
    let exit: { exitCode: number | null; signal: string | null } | undefined;
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
      resolve({
        exitCode: exit?.exitCode ?? null,
        signal: exit?.signal ?? null,
        stdout: out.text(),
        stderr: err.text(),
        stdoutBytes: out.bytes,
        stderrBytes: err.bytes,
      });
    };
    child.once('exit', (exitCode, signal) => {
      exit = { exitCode, signal };
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
