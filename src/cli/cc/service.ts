/**
 * The compile service (design §5): the Node end of the native shim, on a Unix socket. It is
 * started by `muster cc --serve` (a per-user daemon) and in-process by `muster build`.
 *
 * Lifecycle:
 *
 *   created ──start()──▶ starting ──▶ running ──stop()──▶ stopping ──▶ stopped
 *                            └── start fails ──────────────────────────▲
 *
 * `stop()` is idempotent and ordered: stop accepting; tell the hosted builds; let the shims'
 * connections in flight finish for up to `drainMs`, then close the rest (their shims fall back,
 * or exit with their compiler's status); close the hosted builds (their uploads and their close
 * on the coordinator, bounded), then their control connections; wait (bounded) for background
 * work (uploads, explain records); count the shim's
 * fallback log; flush the stats; remove the socket file (when it is still ours) and the temp
 * directory.
 */
import { realpathSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { endsWithin } from '../../common/bounded-wait.js';
import { MUSTER_VERSION } from '../../common/version.js';
import { BUILD_ENV } from './build-control.js';
import { userCacheDir } from './cache-dir.js';
import { answerHello, ShimProtocolError } from './compile-job.js';
import { CompilerPaths } from './compiler-path.js';
import { warnUnlessPaused } from './coordinator-guard.js';
import { DEFERRED_DEFAULTS, DeferredStores } from './deferred-stores.js';
import { withAbsolutePaths } from './env-paths.js';
import { ExplainLog } from './explain.js';
import { FileHashes, type FileHashesDeps } from './file-hashes.js';
import { HostedBuild, type OpenBuild } from './hosted-build.js';
import { portsOf, type JobContext } from './job-context.js';
import { installedLauncherPaths, launchEnvironment, prewarmedCompilers } from './launch-env.js';
import { LocalTier } from './local-tier.js';
import { withLockFile } from './lock-file.js';
import { localCoresBusy, type Placement } from './placement.js';
import type { CoordinatorPorts } from './ports.js';
import type { ServiceLog } from './service-log.js';
import { ShimConnection, type ByteBudget, type ControlChannel } from './shim-connection.js';
import {
  environFromList,
  environToList,
  FALLBACK_LOG_NAME,
  type BuildClose,
  type BuildOpen,
  type ShimHello,
} from './shim-protocol.js';
import { clearStaleSocket, prepareSocketDir } from './socket-path.js';
import { StatsCounter } from './stats.js';
import { SystemHeaders } from './system-headers.js';
import { TOOLCHAIN_IDS_DIR, ToolchainIds, type Discover } from './toolchain-ids.js';
import { resolveProgram } from './toolchain.js';

export type { CoordinatorPorts } from './ports.js';

export type ServiceState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface CompileServiceOptions extends CoordinatorPorts {
  /** The local tier and the stats (`~/.cache/muster/cc`). */
  readonly cacheDir: string;
  /** Where compiles that miss the cache run (placement.ts; default auto). */
  readonly placement?: Placement;
  /** A compile's own MUSTER_CC_PLACEMENT overrides `placement` (the per-user service). */
  readonly placementFromEnv?: boolean;
  /** How long a remote job may wait for an agent slot (default: by placement). */
  readonly maxQueueMs?: number;
  /** No cache lookups and no stores (`muster build --no-cache`). */
  readonly noCache?: boolean;
  /** This machine's cores, for auto placement (default: availableParallelism()). */
  readonly localCores?: number;
  /**
   * The ports, when they are still being opened (`muster build` starts its command while its
   * compile session opens): each compile waits for them; the options' own ports then are
   * unused. Rejected: no coordinator (`offlineReason` 'no-coordinator').
   */
  readonly coordinator?: Promise<CoordinatorPorts>;
  /**
   * Compilers (names looked up on this process's PATH) whose toolchains are identified at once,
   * before a compile asks (~0.5 s for a gcc this user's cache has not met yet).
   */
  readonly prewarm?: readonly string[];
  /** The masquerade directory (also read from each hello's `MUSTER_CC_MASQUERADE`). */
  readonly masqueradeDir?: string;
  /** The native shim: a compiler whose realpath is this is the shim itself, never the real one. */
  readonly shimPath?: string;
  readonly log: ServiceLog;
  /** Bound on the local tier's blobs (default 5 GiB). */
  readonly maxCacheBytes?: number;
  readonly maxConnections?: number;
  /** Bytes in incomplete frames over all connections. */
  readonly maxBufferedBytes?: number;
  /** How long stop() lets connections in flight finish. */
  readonly drainMs?: number;
  /**
   * How long stop() waits for work the shims did not wait for (uploads to the shared cache,
   * explain records); what is left then is logged and dropped. `muster build` waits longer than
   * the default: its results should reach the coordinator before it returns.
   */
  readonly backgroundMs?: number;
  readonly helloTimeoutMs?: number;
  readonly statsFlushDelayMs?: number;
  /**
   * Hosts `muster build`'s builds (build-control.ts): opens a build's session with the front
   * end's environment. Without it control connections are refused (the front end then hosts
   * its build itself).
   */
  readonly openBuild?: OpenBuild;
  /** A build of another Muster version asked to be hosted (its version): an upgrade happened. */
  readonly onOutdated?: (version: string) => void;
  /** How long a hosted build's close waits for its uploads (default 60 s, as `muster build`). */
  readonly hostedBackgroundMs?: number;
  /** Tests give a fake (discoverToolchain runs the driver and ldd). */
  readonly discoverToolchain?: Discover;
  /** Tests give a clock (the 2 s "too new" rule would keep every fresh test file out). */
  readonly fileHashes?: FileHashesDeps;
  /**
   * Bounds of the kept results' queue (default 64 results, 64 MiB; 0 and 0: every compile waits
   * for its own store, as before stores were deferred).
   */
  readonly deferredStores?: { readonly maxItems: number; readonly maxBytes: number };
}

const DEFAULTS = {
  maxConnections: 256,
  maxBufferedBytes: 256 * 1024 * 1024,
  drainMs: 10_000,
  helloTimeoutMs: 30_000,
  backgroundMs: 10_000,
  hostedBackgroundMs: 60_000,
};
/** Beyond a hosted build's uploads: its close on the coordinator (retried for a while). */
const HOSTED_CLOSE_MARGIN_MS = 30_000;

/**
 * Whether a front end's launcher is this service's: the same path, or the same file (the native
 * front end names its own, symlinks resolved; Node's package path may go through one).
 */
function sameInstallation(launcher: string, own: string | undefined): boolean {
  if (own === undefined) return false;
  if (launcher === own) return true;
  try {
    return realpathSync(launcher) === realpathSync(own);
  } catch {
    return false;
  }
}

/** `BUILD_ENV=` in a hello's environment: the hosted build the compile belongs to. */
const BUILD_ENTRY = `${BUILD_ENV}=`;

export class CompileService {
  readonly #options: CompileServiceOptions;
  readonly #log: ServiceLog;
  #state: ServiceState = 'created';
  #server: Server | null = null;
  #socketPath: string | null = null;
  #socketIno: number | null = null;
  #tempDir: string | null = null;
  #starting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;
  readonly #connections = new Set<ShimConnection>();
  readonly #background = new Set<Promise<unknown>>();
  #stores: DeferredStores | null = null;
  readonly #budget: ByteBudget;
  readonly #stats: StatsCounter;
  #lastActivity = Date.now();
  /** The jobs' context, with the coordinator's ports once they are known. */
  #ready: Promise<JobContext> | null = null;
  /** The options' `coordinator`, never rejecting (no coordinator: offline). */
  readonly #ports: Promise<CoordinatorPorts> | null;
  /** What every job shares, without ports (hosted builds add their own). */
  #base: JobContext | null = null;
  /** The builds hosted now, by tag. */
  readonly #builds = new Map<string, HostedBuild>();

  constructor(options: CompileServiceOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#budget = { used: 0, max: options.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes };
    this.#ports =
      options.coordinator?.catch((err: unknown): CoordinatorPorts => {
        this.#log.warn({ err }, 'muster cc: no coordinator');
        return { offlineReason: 'no-coordinator' };
      }) ?? null;
    this.#stats = new StatsCounter(options.cacheDir, {
      ...(options.statsFlushDelayMs === undefined
        ? {}
        : { flushDelayMs: options.statsFlushDelayMs }),
      onError: (err) => this.#log.warn({ err }, 'muster cc: writing the stats failed'),
    });
  }

  get state(): ServiceState {
    return this.#state;
  }

  get socketPath(): string | null {
    return this.#socketPath;
  }

  get stats(): StatsCounter {
    return this.#stats;
  }

  get activeConnections(): number {
    return this.#connections.size;
  }

  /** Milliseconds since the last connection ended, or 0 while one is open. */
  idleMs(now: number = Date.now()): number {
    return this.#connections.size > 0 || this.#builds.size > 0 ? 0 : now - this.#lastActivity;
  }

  start(socketPath: string): Promise<void> {
    if (this.#state !== 'created') {
      return Promise.reject(new Error(`the compile service is ${this.#state}, not created`));
    }
    this.#state = 'starting';
    this.#starting = this.#start(socketPath).then(
      () => {
        if (this.#state === 'starting') this.#state = 'running';
      },
      async (err: unknown) => {
        await this.#cleanUp();
        this.#state = 'stopped';
        throw err;
      },
    );
    return this.#starting;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #start(socketPath: string): Promise<void> {
    const o = this.#options;
    await mkdir(o.cacheDir, { recursive: true, mode: 0o700 });
    this.#tempDir = await mkdtemp(join(tmpdir(), 'muster-cc-'));
    const localSlots = { running: 0, cores: o.localCores ?? availableParallelism() };
    this.#stores = new DeferredStores({
      busy: () => localCoresBusy(localSlots.running, localSlots.cores),
      ...DEFERRED_DEFAULTS,
      ...o.deferredStores,
    });
    const tier = new LocalTier({
      dir: o.cacheDir,
      ...(o.maxCacheBytes === undefined ? {} : { maxBytes: o.maxCacheBytes }),
    });
    const context: JobContext = {
      tier,
      stats: this.#stats,
      hashes: new FileHashes(o.fileHashes),
      compilers: new CompilerPaths(),
      toolchains: new ToolchainIds(o.discoverToolchain, join(o.cacheDir, TOOLCHAIN_IDS_DIR)),
      systemHeaders: new SystemHeaders(),
      explainLog: new ExplainLog(tier),
      sharedCache: o.sharedCache,
      recorder: o.recorder,
      remote: o.remote,
      placement: o.placement ?? 'auto',
      placementFromEnv: o.placementFromEnv ?? false,
      maxQueueMs: o.maxQueueMs,
      noCache: o.noCache ?? false,
      localSlots,
      stores: this.#stores,
      offlineReason: o.offlineReason,
      masqueradeDir: o.masqueradeDir,
      shimPath: o.shimPath,
      tempDir: this.#tempDir,
      log: this.#log,
      background: (what, work) => this.#addBackground(what, work),
    };
    this.#base = context;
    this.#ready =
      this.#ports === null
        ? Promise.resolve(context)
        : this.#ports.then((ports) => ({ ...context, ...portsOf(ports) }));
    for (const compiler of o.prewarm ?? [])
      this.#prewarm(context, compiler, process.env['PATH'] ?? '');
    const dir = dirname(socketPath);
    await prepareSocketDir(dir);
    const server = createServer({ allowHalfOpen: false, pauseOnConnect: false }, (socket) =>
      this.#accept(socket),
    );
    server.maxConnections = o.maxConnections ?? DEFAULTS.maxConnections;
    server.on('error', (err) => this.#log.error({ err }, 'muster cc: the socket failed'));
    await withLockFile(`${socketPath}.lock`, async () => {
      await clearStaleSocket(socketPath);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    });
    this.#server = server;
    this.#socketPath = socketPath;
    await chmod(socketPath, 0o600);
    this.#socketIno = (await stat(socketPath)).ino;
    const folded = await this.#stats.foldFallbackLog(join(dir, FALLBACK_LOG_NAME));
    if (folded > 0) this.#log.info({ folded }, 'muster cc: counted the shims’ fallbacks');
    this.#log.info({ socket: socketPath }, 'muster cc: compile service listening');
  }

  /**
   * Identifies `compiler`'s toolchain in the background (a compile then finds it known). Not
   * work stop() waits for: a command that compiles nothing need not wait for it.
   */
  #prewarm(context: JobContext, compiler: string, searchPath: string): void {
    resolveProgram(compiler, searchPath)
      .then(
        (path) => context.toolchains.of(path, searchPath),
        () => null, // Not on PATH: nothing to identify.
      )
      .catch((err: unknown) => this.#log.debug({ err }, `muster cc: identifying ${compiler}`));
  }

  #accept(socket: Socket): void {
    const ready = this.#ready;
    // Also while starting: the socket exists from listen() on, and a launcher that waited for
    // it (a service started on demand) connects at once; its hello waits for `ready`.
    const open = this.#state === 'running' || this.#state === 'starting';
    if (!open || ready === null) {
      socket.destroy();
      return;
    }
    this.#lastActivity = Date.now();
    const connection = new ShimConnection(socket, {
      budget: this.#budget,
      helloTimeoutMs: this.#options.helloTimeoutMs ?? DEFAULTS.helloTimeoutMs,
      answer: async (exchange) => {
        const build = this.#buildOf(exchange.hello);
        // Its counts are taken: the shim compiles and logs it, and `muster build` counts it.
        if (build !== undefined && build.state !== 'open')
          throw new ShimProtocolError('the build is closing');
        try {
          return await answerHello(await (build?.context ?? ready), exchange);
        } catch (err) {
          if (!(err instanceof ShimProtocolError) && exchangeStillOpen(connection)) {
            (build?.log ?? this.#log).warn(
              { err },
              'muster cc: a job failed in the service; the shim compiles',
            );
            (build?.stats ?? this.#stats).fallback('service-error');
          }
          throw err;
        }
      },
      onRefused: (reason) => this.#log.warn({ reason }, 'muster cc: closed a shim connection'),
      control: (open, channel) => this.#host(open, channel),
    });
    this.#connections.add(connection);
    void connection.closed.then(() => {
      this.#connections.delete(connection);
      this.#lastActivity = Date.now();
    });
  }

  /** The hosted build a compile names in its environment, if it is one of ours. */
  #buildOf(hello: ShimHello): HostedBuild | undefined {
    if (this.#builds.size === 0) return undefined;
    for (const entry of hello.env)
      if (entry.startsWith(BUILD_ENTRY)) return this.#builds.get(entry.slice(BUILD_ENTRY.length));
    return undefined;
  }

  /** Why this service does not host the build `open` asks for, or null when it does. */
  #refusal(open: BuildOpen, env: NodeJS.ProcessEnv): string | null {
    const o = this.#options;
    if (o.openBuild === undefined) return 'this compile service does not host builds';
    // Also while starting: the socket answers from listen() on (`muster build` started it).
    const up = this.#state === 'running' || this.#state === 'starting';
    if (!up || this.#base === null) return `the service is ${this.#state}`;
    if (!sameInstallation(open.launcher, o.shimPath))
      return 'the service is of another installation';
    if (open.version !== MUSTER_VERSION) {
      // This installation was upgraded (or downgraded) under the running service.
      o.onOutdated?.(open.version);
      return `the service is Muster ${MUSTER_VERSION}, not ${open.version}`;
    }
    if (userCacheDir(env) !== o.cacheDir) return `the service's cache is ${o.cacheDir}`;
    // Node reads it once, at the service's start: another build's certificates are not there.
    const certs = env['NODE_EXTRA_CA_CERTS'];
    if (certs !== process.env['NODE_EXTRA_CA_CERTS'])
      return 'the service trusts other certificates (NODE_EXTRA_CA_CERTS)';
    return null;
  }

  /** The builds hosted now (`muster cc --serve` retires only once there are none). */
  get hostedBuilds(): number {
    return this.#builds.size;
  }

  /** A control connection's build: hosted here until its close, or refused. */
  #host(open: BuildOpen, channel: ControlChannel): (close: BuildClose) => void {
    const env = withAbsolutePaths(environFromList(open.env), open.cwd);
    const refusal = this.#refusal(open, env);
    const base = this.#base;
    const openBuild = this.#options.openBuild;
    if (refusal !== null || base === null || openBuild === undefined) {
      this.#log.info({ reason: refusal }, 'muster cc: refused to host a build');
      channel.end({ type: 'build-refused', reason: refusal ?? 'not running' });
      return () => undefined;
    }
    const build = new HostedBuild({
      open,
      env,
      base,
      openBuild,
      channel,
      serviceBackground: (what, work) => this.#addBackground(what, work),
      backgroundMs: this.#options.hostedBackgroundMs ?? DEFAULTS.hostedBackgroundMs,
    });
    this.#builds.set(build.tag, build);
    this.#log.info({ build: build.tag, cwd: open.cwd }, 'muster cc: hosting a build');
    // The command's environment: the front end's own (not made absolute: the command runs where
    // it was started), with the launcher in place and the tag that routes its compiles here.
    const command = launchEnvironment(
      environFromList(open.env),
      installedLauncherPaths(),
      open.socket ?? this.#socketPath ?? '',
    );
    command[BUILD_ENV] = build.tag;
    channel.send({ type: 'build-accepted', tag: build.tag, env: environToList(command) });
    for (const compiler of prewarmedCompilers(env))
      this.#prewarm(base, compiler, env['PATH'] ?? '');
    // A front end that went away before its close: the build ends as failed.
    void channel.closed.then(() => {
      if (build.state === 'open') void this.#closeBuild(build, undefined);
    });
    return (message) => void this.#closeBuild(build, message);
  }

  /**
   * Closes a hosted build (once), work stop() waits for; it leaves the map when closed. Without
   * the front end's `build-close` (it went away, or the service stops): closed first.
   */
  #closeBuild(build: HostedBuild, close: BuildClose | undefined): Promise<void> {
    const closing = build.close(close).finally(() => this.#builds.delete(build.tag));
    this.#addBackground('closing a build', closing);
    return closing;
  }

  #addBackground(what: string, work: Promise<unknown>): void {
    const tracked = work.then(
      () => undefined,
      (err: unknown) => warnUnlessPaused(this.#log, err, `muster cc: ${what} failed`),
    );
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
  }

  /**
   * Resolves once no background work is left (kept results, uploads, explain records), also
   * what that work adds meanwhile. Tests wait for it before they look at the cache.
   */
  async settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.all([...this.#background]);
  }

  async #stop(): Promise<void> {
    if (this.#starting !== null) {
      // A start in flight finishes (or fails: start() rejects to its caller, who hears why)
      // first, so what it opened is closed below.
      // eslint-disable-next-line no-restricted-syntax -- the failure is the start's caller's
      await this.#starting.catch(() => undefined);
    }
    if (this.#state === 'stopped') return;
    this.#state = 'stopping';
    const server = this.#server;
    const closed =
      server === null ? Promise.resolve() : new Promise<void>((r) => server.close(() => r()));
    // The builds hosted now are told; the compiles in flight finish (bounded), theirs counted
    // in their build; then the builds close (their results reach the coordinator, bounded).
    // The rest of their compiles run in their shims (`no-service`), counted by `muster build`.
    const builds = [...this.#builds.values()];
    for (const build of builds)
      build.tell('muster: the compile service is stopping: the rest of this build compiles here\n');
    const drainMs = this.#options.drainMs ?? DEFAULTS.drainMs;
    const compiles = [...this.#connections].filter((c) => !c.isControl);
    await endsWithin(Promise.all(compiles.map((c) => c.closed)), drainMs);
    for (const c of compiles) c.abort();
    const hostedMs = this.#options.hostedBackgroundMs ?? DEFAULTS.hostedBackgroundMs;
    await endsWithin(
      Promise.all(builds.map((build) => this.#closeBuild(build, undefined))),
      hostedMs + HOSTED_CLOSE_MARGIN_MS,
    );
    await endsWithin(Promise.all([...this.#connections].map((c) => c.closed)), drainMs);
    for (const c of this.#connections) c.abort();
    await closed;
    // Every result from now on goes to the coordinator at once: nothing waits for company.
    void this.#ready?.then(
      (context) => context.sharedCache?.flushNow?.(),
      (err: unknown) => this.#log.debug({ err }, 'muster cc: no coordinator ports to flush'),
    );
    this.#stores?.drain();
    const left = await endsWithin(
      this.settled(),
      this.#options.backgroundMs ?? DEFAULTS.backgroundMs,
    );
    if (!left)
      this.#log.warn(
        { pending: this.#background.size },
        'muster cc: stopped before every result reached the shared cache',
      );
    await this.#cleanUp();
    this.#state = 'stopped';
    this.#log.info('muster cc: compile service stopped');
  }

  async #cleanUp(): Promise<void> {
    const path = this.#socketPath;
    if (path !== null) {
      await this.#stats
        .foldFallbackLog(join(dirname(path), FALLBACK_LOG_NAME))
        .catch((err: unknown) => this.#log.warn({ err }, 'muster cc: reading the fallback log'));
      // Only our own socket: another service may have replaced a stale one meanwhile.
      const s = await stat(path).catch(() => null);
      if (s !== null && s.ino === this.#socketIno) await rm(path, { force: true });
    }
    await this.#stats
      .flush()
      .catch((err: unknown) => this.#log.warn({ err }, 'muster cc: writing the stats failed'));
    this.#stats.close();
    this.#base?.tier.close();
    if (this.#tempDir !== null) await rm(this.#tempDir, { recursive: true, force: true });
  }
}

function exchangeStillOpen(connection: ShimConnection): boolean {
  return connection.state !== 'done';
}
