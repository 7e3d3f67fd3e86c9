/**
 * `muster build [--json] -- COMMAND…`: runs COMMAND on this machine with its compiles sent
 * through Muster (docs/compile.md). A compile service runs in this process for the command's
 * life, on a socket in a private directory; the command's environment sends every compile to it
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
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, constants, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { readBootId } from '../common/boot-id.js';
import { compileSessionPath } from '../api/compile-session-key.js';
import type { CompileSessionView } from '../api/views/compile.js';
import { MusterError } from '../protocol/errors.js';
import { connect, type ApiClient } from './api-client.js';
import { formatPoolHint, formatSummary, poolHint, type BuildCounts } from './cc/build-summary.js';
import { userCacheDir } from './cc/cache-dir.js';
import { CoordinatorCache, RESULTS_GATHER_MS } from './cc/coordinator-cache.js';
import { CoordinatorGuard } from './cc/coordinator-guard.js';
import { CoordinatorJobs } from './cc/coordinator-jobs.js';
import { coordinatorProbe } from './cc/coordinator-probe.js';
import { installedLauncherPaths, launchEnvironment } from './cc/launch-env.js';
import { isPlacement, PLACEMENT_ENV, type Placement } from './cc/placement.js';
import { CompileService, type CoordinatorPorts } from './cc/service.js';
import { stderrLogOnDemand } from './cc/service-log.js';
import { SessionRecorder } from './cc/session-recorder.js';
import { FALLBACK_LOG_NAME } from './cc/shim-protocol.js';
import type { CompileStats } from './cc/stats.js';
import { printJson } from './print-json.js';

interface BuildOptions {
  json?: boolean;
  placement?: string;
  /** false with --no-cache. */
  cache: boolean;
}

/** A fallback reason for every compile when there is no coordinator (stats, records). */
const NO_COORDINATOR = 'no-coordinator';
const SESSION_TIMEOUT_MS = 5_000;

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

interface Session {
  client: ApiClient;
  buildId: number;
  /** What requests name the session by (its key: the build id can change at a failback). */
  key: string;
  capacity: CompileSessionView['capacity'];
}

/** Opens the compile session; undefined (and why) when there is no coordinator to open it on. */
async function openSession(line: string, say: (text: string) => void): Promise<Session | string> {
  try {
    const client = await connect(process.env, { notify: say });
    const bootId = await readBootId();
    // The command waits for this: a coordinator that does not answer within seconds is none.
    const session = await client.createCompileSession(
      {
        command: line.slice(0, 8192),
        cwd: process.cwd(),
        host: hostname().slice(0, 255) || 'localhost',
        ...(bootId === undefined ? {} : { bootId }),
      },
      SESSION_TIMEOUT_MS,
    );
    say(formatPoolHint(poolHint(session.capacity, availableParallelism()), session.buildId));
    return {
      client,
      buildId: session.buildId,
      key: compileSessionPath(session),
      capacity: session.capacity,
    };
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * The compilers a build most likely runs, identified while the command starts: the compiler
 * `$CC` and `$CXX` name when set (`gcc` of `muster cc gcc -O2`), else `cc` (make's default CC).
 */
export function prewarmedCompilers(env: NodeJS.ProcessEnv): string[] {
  const named = [env['CC'], env['CXX']].flatMap((value) => {
    const words = (value ?? '').trim().split(/\s+/);
    if (/(^|\/)muster$/.test(words[0] ?? '') && words[1] === 'cc') words.splice(0, 2);
    else if (/(^|\/)muster-cc$/.test(words[0] ?? '')) words.splice(0, 1);
    const program = words[0] ?? '';
    return program === '' || program.startsWith('-') ? [] : [program];
  });
  return named.length > 0 ? [...new Set(named)] : ['cc'];
}

function countsOf(stats: Readonly<CompileStats>, shimFallbacks: number): BuildCounts {
  return {
    jobs: stats.compiles + stats.passthrough + shimFallbacks,
    compiles: stats.compiles,
    remote: stats.remote,
    local: stats.local,
    cacheHits: stats.cacheHits,
    cacheMisses: stats.cacheMisses,
    fallbacks: stats.fallbacks,
    errors: stats.errors,
    reruns: stats.reruns,
    fallbackReasons: { ...stats.fallbackReasons },
  };
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
  // The command starts while the session opens: its compiles wait for it (the service holds
  // them), not make's start-up. The session's line is said when it is open.
  const opening = openSession(command.join(' '), say).then((session) => {
    if (typeof session === 'string')
      say(`muster: no coordinator (${session}): every compile runs on this machine\n`);
    return session;
  });
  const log = stderrLogOnDemand(process.env['MUSTER_CC_LOG'] ?? 'warn');
  // One guard: a coordinator that stops answering is left alone by the cache and the jobs alike,
  // until it (or its backup) answers the guard's probe.
  let guard: CoordinatorGuard | undefined;
  let recorder: SessionRecorder | undefined;
  const ports = opening.then((session): CoordinatorPorts => {
    if (typeof session === 'string') return { offlineReason: NO_COORDINATOR };
    guard = new CoordinatorGuard({
      probe: coordinatorProbe(session.client),
      // Said once each way on the build's stderr: the compiles the pause turns away log nothing.
      onChange: (paused) =>
        say(
          paused
            ? 'muster: the coordinator did not answer: compiles run here until it does\n'
            : `muster: the coordinator answers again (${session.client.url})\n`,
        ),
    });
    recorder = new SessionRecorder(
      session.client,
      { buildId: session.buildId, key: session.key },
      { warn: say },
    );
    return {
      sharedCache: new CoordinatorCache(
        session.client,
        () => session.buildId,
        guard,
        Date.now,
        RESULTS_GATHER_MS,
      ),
      remote: new CoordinatorJobs(
        session.client,
        () =>
          Promise.resolve({
            buildId: session.buildId,
            key: session.key,
            capacity: session.capacity,
          }),
        guard,
      ),
      recorder,
    };
  });

  const paths = installedLauncherPaths();
  const dir = await mkdtemp(join(tmpdir(), 'muster-build-'));
  const socket = join(dir, 'cc.sock');
  const service = new CompileService({
    cacheDir: userCacheDir(process.env),
    masqueradeDir: paths.masquerade,
    shimPath: paths.launcher,
    placement,
    noCache: !opts.cache,
    // The results go to the coordinator before this build returns (a slow one gets a minute).
    backgroundMs: 60_000,
    log,
    coordinator: ports,
    prewarm: prewarmedCompilers(process.env),
  });
  let ended: Ended;
  let shimFallbacks: number;
  try {
    let env: NodeJS.ProcessEnv = launchEnvironment(process.env, paths, socket);
    try {
      await service.start(socket);
    } catch (err) {
      // Never break a build: without the service the command runs as it would without Muster.
      say(
        `muster: the compile service could not start (${err instanceof Error ? err.message : String(err)}): running the command without it\n`,
      );
      env = process.env;
    }
    ended = await runCommand(program, args, env, opts);
    shimFallbacks = await service.stats.foldFallbackLog(join(dir, FALLBACK_LOG_NAME));
  } finally {
    try {
      await service.stop();
    } finally {
      guard?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }
  const code = ended.code;
  const counts = countsOf(service.stats.totals, shimFallbacks);
  const session = await opening;
  const online = typeof session === 'string' ? undefined : session;
  await ports;
  if (recorder !== undefined && online !== undefined) {
    const summary = {
      jobs: counts.compiles,
      remote: counts.remote,
      local: counts.local,
      cacheHits: counts.cacheHits,
      fallbacks: counts.fallbacks,
    };
    await recorder
      .close(ended.signal === null ? code : null, summary)
      .catch((err: unknown) =>
        say(
          `muster: could not close build ${online.buildId}: ${err instanceof Error ? err.message : String(err)}\n`,
        ),
      );
  }
  const elapsed = Date.now() - started;
  // The id the close answered: a failback may have given the build another one meanwhile.
  const buildId = online === undefined ? undefined : (recorder?.buildId ?? online.buildId);
  say(formatSummary(counts, elapsed, buildId, online === undefined ? 'no coordinator' : undefined));
  if (opts.json === true)
    printJson({ buildId: buildId ?? null, exitCode: code, ...counts, durationMs: elapsed });
  // Ended by a signal: end the same way, so a shell script running `muster build` stops at
  // Ctrl-C as it would without Muster (its handlers are gone: the default action applies).
  if (ended.signal !== null) {
    process.exitCode = code;
    process.kill(process.pid, ended.signal);
    return undefined;
  }
  return code;
}

interface Ended {
  /** The exit code, or 128 + the signal that ended it. */
  code: number;
  /** The signal that ended it, if one did. */
  signal: NodeJS.Signals | null;
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
