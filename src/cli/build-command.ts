/**
 * `muster build [--json] -- COMMAND…`: runs COMMAND on this machine with its compiles sent
 * through Muster (docs/compile.md). The per-user compile service hosts the build (started when
 * nothing answers; cc/service-build.ts), else a compile service in this process for the
 * command's life (cc/in-process-build.ts); the command's environment sends every compile to it
 * (cc/launch-env.ts). All its compile jobs form one build on the coordinator (a compile session)
 * that the web UI and `muster builds show` follow. Without a coordinator (not logged in,
 * unreachable) the build still runs, every compile here, and the summary says why.
 *
 * The exit code is COMMAND's; when signal N ended it, `muster build` ends by the same signal
 * after closing its build (127: COMMAND was not found, as a shell says). While it runs, SIGINT and SIGQUIT
 * are the command's (a terminal sends them to the whole process group): this process waits for
 * it, like env(1) or time(1) do; SIGTERM and SIGHUP are passed on to it.
 */
import { spawn } from 'node:child_process';
import { lstat, rm } from 'node:fs/promises';
import { constants } from 'node:os';
import { basename, isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { MusterError } from '../protocol/errors.js';
import {
  BUILD_DIR_PREFIX,
  BUILD_SERVICE_ENV,
  parseControlMessage,
  type BuildHost,
  type BuildOutcome,
  type BuildRequest,
  type ControlMessage,
} from './cc/build-control.js';
import { userSocketDir } from './cc/shim-names.js';
import { formatSummary, summaryJson } from './cc/build-summary.js';
import { isPlacement, PLACEMENT_ENV, type Placement } from './cc/placement.js';

interface BuildOptions {
  json?: boolean;
  placement?: string;
  /** false with --no-cache. */
  cache: boolean;
}

export function registerBuildCommand(program: Command): void {
  program
    .command('build')
    .description(
      'run a build command (make, ninja, cmake --build, a script) with its compiles sent through Muster',
    )
    .argument('<command...>', 'the command and its arguments (after --)')
    .option(
      '--json',
      "print the jobs' summary as JSON on stdout at the end (the command's own stdout goes to stderr)",
    )
    .option(
      '--placement <where>',
      `where compiles that miss the cache run: auto (here while this machine has a free core, else on agents of other machines), local, or remote (every compile that can) (default: $${PLACEMENT_ENV} or auto)`,
    )
    .option(
      '--no-cache',
      'neither look compiles up in the caches nor keep their results (here or on the coordinator)',
    )
    .passThroughOptions()
    .action(async (command: string[], opts: BuildOptions) => {
      const code = await runBuild(command, opts);
      // Ended by a signal: re-raised (runBuild), the process ends by it.
      if (code === undefined) return;
      // Nothing of the build is left to wait for (its results reached the coordinator in
      // service.stop()); a compiler still being identified in the background for a command that
      // compiled nothing is not waited for.
      process.exit(code);
    });
}

/** What the native front end hands over when it cannot end a hosted build itself. */
interface FinishState {
  readonly closed: Extract<ControlMessage, { type: 'build-closed' }> | null;
  readonly lost: boolean;
  readonly startedAt: number;
  readonly ended: Ended;
  readonly json: boolean;
}

const finishError = (why: string): MusterError =>
  new MusterError('VALIDATION_FAILED', `build-finish: ${why}`);

function stateObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw finishError('the state is not JSON');
  }
  if (typeof value !== 'object' || value === null) throw finishError('the state is not an object');
  return value as Record<string, unknown>;
}

/**
 * The build's directory, checked to be one `muster build` made (mkdtemp: this user's, mode
 * 0700, `muster-build-…`, not a link): only such a directory is read and removed.
 */
async function buildDir(dir: unknown): Promise<string> {
  if (typeof dir !== 'string' || !isAbsolute(dir) || resolve(dir) !== dir)
    throw finishError('dir is not an absolute, normal path');
  if (!basename(dir).startsWith(BUILD_DIR_PREFIX))
    throw finishError('dir is not a build directory');
  const s = await lstat(dir).catch(() => undefined);
  const uid = process.getuid?.();
  if (s === undefined || !s.isDirectory() || (uid !== undefined && s.uid !== uid))
    throw finishError("dir is not a directory of this user's");
  if ((s.mode & 0o077) !== 0) throw finishError('dir is open to others');
  return dir;
}

function finishState(v: Record<string, unknown>): FinishState {
  const { closed, lost, startedAt, code, signal, json } = v;
  const message = closed === null ? null : parseControlMessage(closed);
  if (closed !== null && message?.type !== 'build-closed')
    throw finishError('closed is not build-closed');
  if (typeof lost !== 'boolean' || typeof json !== 'boolean')
    throw finishError('lost and json are flags');
  if (typeof startedAt !== 'number' || !Number.isSafeInteger(startedAt))
    throw finishError('startedAt is not a time');
  if (typeof code !== 'number' || !Number.isInteger(code) || code < 0 || code > 255)
    throw finishError('code is not an exit code');
  const isSignal = typeof signal === 'number' && Number.isInteger(signal) && signal >= 1;
  if (signal !== null && !(isSignal && signal <= 64))
    throw finishError('signal is not a signal number');
  // By name where Node knows it; a real-time signal by its number.
  const named =
    signal === null
      ? null
      : ((Object.entries(constants.signals).find(([, n]) => n === signal)?.[0] as
          NodeJS.Signals | undefined) ?? signal);
  return {
    closed: message?.type === 'build-closed' ? message : null,
    lost,
    startedAt,
    ended: { code, signal: named },
    json,
  };
}

/**
 * `muster build-finish STATE` (hidden): how the native front end (native/build-front.c) ends a
 * hosted build it cannot end itself — the service closed the build early (it stopped), was
 * lost, or the shims logged fallbacks after its close: the leftover log is counted, the summary
 * printed, the build's directory removed, and this process ends as the command did. STATE is
 * JSON: { dir, closed (the service's build-closed, or null), lost, startedAt (ms since the
 * epoch), code, signal (its number, or null), json }.
 */
export function registerBuildFinishCommand(program: Command): void {
  program
    .command('build-finish', { hidden: true })
    .argument('<state>')
    .action(async (text: string) => {
      const value = stateObject(text);
      const dir = await buildDir(value['dir']);
      const { hostedOutcome } = await import('./cc/service-build.js');
      const userDir = userSocketDir(process.env, process.getuid?.() ?? 0);
      const say = (line: string): void => void process.stderr.write(line);
      let state: FinishState;
      let outcome: BuildOutcome;
      try {
        state = finishState(value);
        outcome = await hostedOutcome(state.closed, { dir, userDir, lost: state.lost }, say);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      const code = endBuild(outcome, state);
      if (code !== undefined) process.exit(code);
    });
}

/**
 * Who hosts the build: the per-user compile service (warm across builds), unless
 * `MUSTER_BUILD_SERVICE=in-process` or it does not (another version, another cache directory,
 * it cannot start): then this process, which loads the compile path only then.
 */
async function hostOf(request: BuildRequest): Promise<BuildHost> {
  const mode = process.env[BUILD_SERVICE_ENV] ?? '';
  if (mode !== '' && mode !== 'per-user' && mode !== 'in-process')
    throw new MusterError(
      'VALIDATION_FAILED',
      `${BUILD_SERVICE_ENV} must be per-user or in-process, not ${JSON.stringify(mode)}`,
    );
  if (mode !== 'in-process') {
    const hosted = await (await import('./cc/service-build.js')).hostInService(request);
    if (typeof hosted !== 'string') return hosted;
    request.say(
      `muster: the per-user compile service does not host this build (${hosted}): hosting it here\n`,
    );
  }
  return (await import('./cc/in-process-build.js')).hostInProcess(request);
}

/** --placement, else $MUSTER_CC_PLACEMENT, else auto. */
function placementOf(given: string | undefined): Placement {
  const text = given ?? process.env[PLACEMENT_ENV];
  if (text === undefined || text === '') return 'auto';
  if (isPlacement(text)) return text;
  throw new MusterError(
    'VALIDATION_FAILED',
    `${given === undefined ? PLACEMENT_ENV : '--placement'} must be auto, local or remote, not ${JSON.stringify(text)}`,
  );
}

/** The command's exit code, or undefined when a signal ended it (then re-raised here). */
async function runBuild(command: string[], opts: BuildOptions): Promise<number | undefined> {
  const [program, ...args] = command;
  if (program === undefined)
    throw new MusterError(
      'VALIDATION_FAILED',
      'give the command to run after --, e.g. muster build -- make -j4',
    );
  const placement = placementOf(opts.placement);
  const started = Date.now();
  const say = (text: string): void => void process.stderr.write(text);
  const host = await hostOf({ command, placement, noCache: !opts.cache, say });
  const ended = await runCommand(program, args, host.env, opts);
  const code = ended.code;
  const outcome = await host.finish(ended.signal === null ? code : null);
  return endBuild(outcome, { startedAt: started, ended, json: opts.json === true });
}

/**
 * Prints the summary (and the JSON document with --json); returns the command's exit code, or
 * undefined when a signal ended it: then the signal is raised again, so a shell script running
 * `muster build` stops at Ctrl-C as it would without Muster (its handlers are gone: the default
 * action applies).
 */
function endBuild(
  { counts, buildId, note }: BuildOutcome,
  { startedAt, ended, json }: { startedAt: number; ended: Ended; json: boolean },
): number | undefined {
  const elapsed = Date.now() - startedAt;
  process.stderr.write(formatSummary(counts, elapsed, buildId, note));
  if (json) process.stdout.write(`${summaryJson(counts, elapsed, buildId, ended.code)}\n`);
  if (ended.signal !== null) {
    process.exitCode = ended.code;
    process.kill(process.pid, ended.signal);
    return undefined;
  }
  return ended.code;
}

interface Ended {
  /** The exit code, or 128 + the signal that ended it. */
  code: number;
  /** The signal that ended it, if one did (a real-time one by its number). */
  signal: NodeJS.Signals | number | null;
}

/** Runs the command to its end. */
function runCommand(
  program: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  opts: BuildOptions,
): Promise<Ended> {
  return new Promise((resolve) => {
    // --json keeps stdout for the summary: the command's own output goes to stderr.
    const child = spawn(program, args, {
      env,
      stdio: ['inherit', opts.json === true ? process.stderr : 'inherit', 'inherit'],
    });
    const ignore = (): void => undefined;
    const forward = (signal: NodeJS.Signals) => (): void => void child.kill(signal);
    const handlers: [NodeJS.Signals, () => void][] = [
      ['SIGINT', ignore],
      ['SIGQUIT', ignore],
      ['SIGTERM', forward('SIGTERM')],
      ['SIGHUP', forward('SIGHUP')],
    ];
    for (const [signal, handler] of handlers) process.on(signal, handler);
    const done = (): void => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    };
    child.once('error', (err) => {
      done();
      // As a shell says it: the build runs (and closes its session) with the shell's codes.
      const notFound = (err as NodeJS.ErrnoException).code === 'ENOENT';
      process.stderr.write(`muster: ${program}: ${notFound ? 'command not found' : err.message}\n`);
      resolve({ code: notFound ? 127 : 126, signal: null });
    });
    child.once('exit', (exitCode, signal) => {
      done();
      if (exitCode !== null || signal === null) resolve({ code: exitCode ?? 1, signal: null });
      else resolve({ code: 128 + (constants.signals[signal] ?? 0), signal });
    });
  });
}
