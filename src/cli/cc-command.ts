/**
 * `muster cc`: the compile service's command (design §5).
 *
 *   muster cc --serve [--detach] [--socket PATH] [--idle-exit 10m]   the per-user service
 *   muster cc --show-stats [--json] | --zero-stats | --explain FILE    its counters, its reasons
 *   muster cc gcc ARGS…                                                a compile
 *
 * `bin/muster` sends `muster cc gcc …` to the native shim, which talks to the service; when it
 * reaches Node anyway (no native shim) the compiler runs here directly, exit code and output
 * unchanged. The shim starts the service with `--serve --detach` when nothing answers.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { pino, type Logger } from 'pino';
import { writeAtomic } from '../common/atomic-file.js';
import { readBootId } from '../common/boot-id.js';
import { parseDuration } from '../common/duration.js';
import { packagePath } from '../protocol/client/package-root.js';
import { MusterError } from '../protocol/errors.js';
import { connect, type ApiClient } from './api-client.js';
import { userCacheDir } from './cc/cache-dir.js';
import { CoordinatorCache, RESULTS_GATHER_MS } from './cc/coordinator-cache.js';
import { directKeysOf } from './cc/direct-keys.js';
import { CoordinatorGuard } from './cc/coordinator-guard.js';
import { coordinatorProbe } from './cc/coordinator-probe.js';
import { CoordinatorJobs } from './cc/coordinator-jobs.js';
import { compilerEnvironment, resolveCompiler } from './cc/compiler-path.js';
import { explain, explainRecord } from './cc/explain.js';
import { watchIdle } from './cc/idle-exit.js';
import { CompileService } from './cc/service.js';
import { installedLauncherPaths } from './cc/launch-env.js';
import { isPlacement, PLACEMENT_ENV } from './cc/placement.js';
import { MASQUERADE_ENV, SOCKET_NAME, userSocketDir } from './cc/shim-protocol.js';
import { openBuildSession } from './cc/build-session.js';
import { detach } from './cc/serve-detach.js';
import { prepareSocketDir, socketAnswers } from './cc/socket-path.js';
import { formatStats, readStats, zeroStats } from './cc/stats.js';
import { WorkingSessions } from './cc/working-sessions.js';
import { printJson } from './print-json.js';
import { onShutdownSignals } from './signals.js';

interface CcOptions {
  serve?: boolean;
  stop?: boolean;
  detach?: boolean;
  socket?: string;
  idleExit: string;
  showStats?: boolean;
  json?: boolean;
  zeroStats?: boolean;
  explain?: string;
  cacheDir?: string;
}

/** How often a service a newer version asked to leave looks whether it may. */
const RETIRE_CHECK_MS = 200;
/**
 * How long `--stop` waits for the service to exit: its builds close first (their uploads, a
 * minute at most, and their close on the coordinator), then its compiles and its own uploads.
 */
const STOP_WAIT_MS = 180_000;

export function registerCcCommand(program: Command): void {
  program
    .command('cc')
    .description(
      'compile through the compile service (muster cc gcc ARGS…), or run it (--serve), show its stats or explain a miss',
    )
    .argument('[compiler-and-args...]', 'a compiler and its arguments (gcc -c x.c)')
    .option('--serve', 'run the compile service (per user; the shim starts it when needed)')
    .option('--detach', 'with --serve: start it in the background and return once it answers')
    .option('--stop', 'stop the per-user compile service (its hosted builds close first)')
    .option(
      '--socket <path>',
      'with --serve or --stop: its socket (default $XDG_RUNTIME_DIR/muster/cc.sock or /tmp/muster-<uid>/cc.sock)',
    )
    .option(
      '--idle-exit <duration>',
      'with --serve: exit after this long without compiles (0: never)',
      '10m',
    )
    .option('--show-stats', 'print the compile counters of this user on this machine')
    .option('--json', 'with --show-stats or --explain: print JSON')
    .option('--zero-stats', 'set the compile counters to zero')
    .option(
      '--explain <file>',
      'why the last compile of FILE (an object or its source) was or was not a cache hit',
    )
    .option(
      '--cache-dir <dir>',
      'the local cache (default $XDG_CACHE_HOME/muster/cc or ~/.cache/muster/cc)',
    )
    .passThroughOptions()
    .allowUnknownOption()
    .action(async (args: string[], opts: CcOptions) => {
      const cacheDir = opts.cacheDir ?? userCacheDir(process.env);
      if (opts.showStats === true) {
        const stats = await readStats(cacheDir);
        if (opts.json === true) printJson(stats);
        else process.stdout.write(formatStats(stats));
        return;
      }
      if (opts.zeroStats === true) {
        await zeroStats(cacheDir);
        process.stdout.write('Compile statistics zeroed\n');
        return;
      }
      if (opts.explain !== undefined) {
        if (opts.json === true) printJson(await explainRecord(cacheDir, opts.explain));
        else process.stdout.write(await explain(cacheDir, opts.explain));
        return;
      }
      const socket =
        opts.socket ?? join(userSocketDir(process.env, process.getuid?.() ?? 0), SOCKET_NAME);
      if (opts.stop === true) {
        await stopService(socket);
        return;
      }
      if (opts.serve === true) {
        const idleMs = parseDuration(opts.idleExit, '--idle-exit');
        if (opts.detach === true) await detach(socket, opts.idleExit, opts.cacheDir);
        else await serve(socket, cacheDir, idleMs);
        return;
      }
      const [compiler, ...rest] = args;
      if (compiler === undefined || compiler.startsWith('-')) {
        throw new MusterError(
          'INVALID_CONFIG',
          'muster cc: name the compiler first (muster cc gcc -c x.c), or give --serve, --show-stats, --zero-stats or --explain FILE',
        );
      }
      process.exitCode = await runCompiler(compiler, rest);
    });
}

/** The native shim of this installation (a compiler that resolves to it is never the real one). */
function shimPath(): string {
  return packagePath('dist', 'native', 'muster-cc');
}

/**
 * The coordinator the user is logged in to, as the service's shared cache and the recorder of
 * its working sessions; nothing (every compile here, no records) when not logged in.
 */
async function coordinatorPorts(log: Logger): Promise<{
  sharedCache?: CoordinatorCache;
  remote?: CoordinatorJobs;
  recorder?: WorkingSessions;
  /** Stopped with the service (its probe). */
  guard?: CoordinatorGuard;
}> {
  let client: ApiClient;
  try {
    client = await connect(process.env, { notify: (text) => log.info(text.trim()) });
  } catch (err) {
    log.info({ err }, 'muster cc: no coordinator: compiles run here, cached on this machine');
    return {};
  }
  const warn = (text: string): void => log.warn(text.trim());
  const recorder = new WorkingSessions(client, { warn, bootId: await readBootId(), cwd: '/' });
  const guard = new CoordinatorGuard({
    probe: coordinatorProbe(client),
    onChange: (paused) =>
      log.info(
        paused
          ? 'muster cc: the coordinator did not answer: compiles run here until it does'
          : `muster cc: the coordinator answers again (${client.url})`,
      ),
  });
  return {
    guard,
    recorder,
    sharedCache: new CoordinatorCache(
      client,
      () => recorder.buildId,
      guard,
      Date.now,
      RESULTS_GATHER_MS,
      directKeysOf(client.configuredUrl),
    ),
    remote: new CoordinatorJobs(client, () => recorder.current(), guard),
  };
}

async function serve(socket: string, cacheDir: string, idleMs: number): Promise<void> {
  const log = pino(
    { level: 'info', base: { service: 'muster-cc', pid: process.pid } },
    pino.destination(2),
  );
  const { guard, ...ports } = await coordinatorPorts(log);
  let outdated: string | undefined;
  // A compile's own MUSTER_CC_PLACEMENT wins: `MUSTER_CC_PLACEMENT=remote make` needs no restart.
  const own = process.env[PLACEMENT_ENV];
  const service = new CompileService({
    cacheDir,
    log,
    shimPath: shimPath(),
    placement: isPlacement(own) ? own : 'auto',
    placementFromEnv: true,
    // `muster build`'s builds: each its own session, with the front end's login.
    openBuild: openBuildSession,
    onOutdated: (version) => {
      outdated ??= version;
    },
    ...ports,
  });
  const pidFile = servicePidFile(socket);
  const stop = async (): Promise<void> => {
    try {
      await service.stop();
    } finally {
      guard?.stop();
    }
    await ports.recorder?.close();
    // Only our own: another service may have started on the socket since.
    const written = await readFile(pidFile, 'utf8').catch(() => '');
    if (written.trim() === String(process.pid)) await rm(pidFile, { force: true });
  };
  try {
    await service.start(socket);
  } catch (err) {
    if (err instanceof MusterError && err.code === 'CONFLICT') {
      // Another one started first (two shims raced to start it): that one serves.
      log.info({ socket }, 'muster cc: a compile service already answers there');
      guard?.stop();
      await ports.recorder?.close();
      return;
    }
    throw err;
  }
  await writeAtomic(pidFile, `${process.pid}\n`, 0o600);
  let exiting = false;
  const exit = (why: string, fields: object): void => {
    if (exiting) return;
    exiting = true;
    log.info(fields, why);
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'muster cc: stopping failed');
        process.exit(1);
      },
    );
  };
  // A second SIGTERM (another `--stop`) waits for the same stop; a second Ctrl-C forces it.
  onShutdownSignals(log, stop, { forceOnlyBy: 'SIGINT' });
  watchIdle(service, idleMs, () => exit('muster cc: idle, exiting', { idleMs }));
  // A build of another Muster version asked (an upgrade): this service ends once nothing is in
  // flight, and that build's next one starts the new version's.
  const retire = setInterval(() => {
    if (outdated !== undefined && service.activeConnections === 0 && service.hostedBuilds === 0)
      exit('muster cc: another Muster version asked for a build: exiting', { version: outdated });
  }, RETIRE_CHECK_MS);
  retire.unref();
}

/** The file the per-user service writes its pid to, next to its socket (`muster cc --stop`). */
function servicePidFile(socket: string): string {
  return `${socket}.pid`;
}

/**
 * `muster cc --stop`: ends the service on the socket (SIGTERM: compiles in flight finish, its
 * hosted builds close) and waits for it to exit.
 */
async function stopService(socket: string): Promise<void> {
  // Only a directory that is ours alone: another user could plant a pid file in a shared /tmp.
  await prepareSocketDir(dirname(socket));
  const text = await readFile(servicePidFile(socket), 'utf8').catch(() => '');
  const pid = Number(text.trim());
  // The pid must still be this socket's compile service: a pid file left by a crash may name
  // another process (or another service, on another socket).
  const cmdline = Number.isSafeInteger(pid) && pid > 1 ? await commandLineOf(pid) : [];
  if (!isServiceOn(cmdline, socket)) {
    if (await socketAnswers(socket))
      throw new MusterError(
        'CONFLICT',
        `a compile service answers on ${socket} but names no pid there (an older version's?): end it by its pid`,
      );
    process.stdout.write(`muster cc: no compile service runs on ${socket}\n`);
    return;
  }
  try {
    process.kill(pid, 'SIGTERM');
  } catch (err) {
    // It ended meanwhile.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
  const deadline = Date.now() + STOP_WAIT_MS;
  while ((await commandLineOf(pid)).includes('--serve')) {
    if (Date.now() > deadline)
      throw new MusterError(
        'INTERNAL',
        `the compile service (pid ${pid}) did not exit within ${STOP_WAIT_MS / 1000} s`,
      );
    await sleep(50);
  }
  process.stdout.write(`muster cc: stopped the compile service (pid ${pid})\n`);
}

/** `muster cc --serve` on `socket` (its `--socket` when it names one). */
function isServiceOn(cmdline: readonly string[], socket: string): boolean {
  if (!cmdline.includes('--serve') || !cmdline.includes('cc')) return false;
  const at = cmdline.indexOf('--socket');
  return at < 0 || cmdline[at + 1] === socket;
}

async function commandLineOf(pid: number): Promise<string[]> {
  const text = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return text.split('\0');
}

/**
 * A compiler run here directly, stdio inherited: its exit code (128 + n for signal n). Found as
 * the service finds it (compiler-path.ts): never the masquerade directory's entry or the launcher
 * itself, which would start this command again for ever, and with the launcher's variables and
 * directory out of its environment.
 */
async function runCompiler(compiler: string, args: readonly string[]): Promise<number> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env))
    if (value !== undefined) env[name] = value;
  const masquerade = env[MASQUERADE_ENV] ?? installedLauncherPaths().masquerade;
  const path = await resolveCompiler(
    compiler,
    process.cwd(),
    env['PATH'] ?? '',
    masquerade,
    shimPath(),
  );
  if (path === null) {
    process.stderr.write(`muster cc: ${compiler}: command not found\n`);
    return 127;
  }
  return new Promise((resolve) => {
    const child = spawn(path, args, {
      stdio: 'inherit',
      // argv[0] is the absolute path, as the service runs it: gcc finds its own programs by it.
      env: compilerEnvironment(env, masquerade),
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      process.stderr.write(
        err.code === 'ENOENT'
          ? `muster cc: ${compiler}: command not found\n`
          : `muster cc: ${compiler}: ${err.message}\n`,
      );
      resolve(err.code === 'ENOENT' ? 127 : 126);
    });
    child.once('exit', (code, signal) => {
      if (signal !== null) {
        const number = (constants.signals as Record<string, number | undefined>)[signal] ?? 15;
        resolve(128 + number);
      } else resolve(code ?? 1);
    });
  });
}
