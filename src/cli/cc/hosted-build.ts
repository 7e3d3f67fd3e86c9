/**
 * One build the per-user compile service hosts for a `muster build` (build-control.ts): its own
 * compile session on the coordinator (ports opened with the front end's environment, not the
 * service's), its own counters (also counted in the service's), its own background work, its
 * placement and --no-cache, and the service's warm memories (toolchains, header hashes, the
 * local tier) shared with every other build.
 *
 *   open ──build-close──▶ closing ──▶ closed       (build-closed sent with its counts)
 *     └──control connection dropped──▶ closing ──▶ closed   (closed on the coordinator as failed)
 *
 * Closing: the results kept meanwhile are stored at once, the build's uploads are waited for
 * (bounded), the shims' fallback log in the build's directory is counted, and the build is
 * closed on the coordinator with the counts.
 */
import { randomBytes } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { endsWithin } from '../../common/bounded-wait.js';
import {
  countsOf,
  formatSummary,
  hostedNote,
  summaryJson,
  type BuildCounts,
} from './build-summary.js';
import { warnUnlessPaused } from './coordinator-guard.js';
import { portsOf, type JobContext } from './job-context.js';
import type { ServiceLog } from './service-log.js';
import type { ControlChannel } from './shim-connection.js';
import { FALLBACK_LOG_NAME, type BuildClose, type BuildOpen } from './shim-protocol.js';
import { StatsCounter } from './stats.js';
import type { CoordinatorPorts } from './ports.js';

/** A build's side on the coordinator (build-session.ts opens it). */
export interface BuildPorts {
  /** The ports, once the session is open (no coordinator: `offlineReason`). */
  readonly ports: Promise<CoordinatorPorts>;
  /**
   * Closes the build on the coordinator with the command's exit code (null: a signal ended it)
   * and the jobs' counts. The id is the build's at its close (a failback may have renumbered
   * it); undefined without a coordinator.
   */
  close(exitCode: number | null, counts: BuildCounts): Promise<{ buildId: number | undefined }>;
}

/** Opens a build's session with its own environment; `say` reaches the build's stderr. */
export type OpenBuild = (
  request: { readonly command: string; readonly cwd: string; readonly env: NodeJS.ProcessEnv },
  say: (text: string) => void,
) => BuildPorts;

/** The longest line a build is sent to show. */
const MAX_SAY = 8 * 1024;

export type HostedBuildState = 'open' | 'closing' | 'closed';

export interface HostedBuildOptions {
  readonly open: BuildOpen;
  readonly env: NodeJS.ProcessEnv;
  /** The service's context: what every build shares. */
  readonly base: JobContext;
  readonly openBuild: OpenBuild;
  readonly channel: ControlChannel;
  /** Work the service's stop waits for too. */
  readonly serviceBackground: (what: string, work: Promise<unknown>) => void;
  /** How long the close waits for the build's uploads. */
  readonly backgroundMs: number;
}

export class HostedBuild {
  readonly tag = randomBytes(18).toString('base64url');
  readonly stats: StatsCounter;
  /** The build's context, once its ports are known. */
  readonly context: Promise<JobContext>;
  #state: HostedBuildState = 'open';
  #closing: Promise<void> | null = null;
  readonly #options: HostedBuildOptions;
  readonly #session: BuildPorts;
  readonly #background = new Set<Promise<unknown>>();
  readonly #log: ServiceLog;
  readonly #say: (text: string) => void;

  constructor(options: HostedBuildOptions) {
    this.#options = options;
    const { base, open, channel } = options;
    // Bounded: the front end refuses a message over 64 KiB (a long error message).
    const say = (text: string): void =>
      channel.send({
        type: 'say',
        text: text.length > MAX_SAY ? `${text.slice(0, MAX_SAY)}…\n` : text,
      });
    this.#say = say;
    this.#log = tellingLog(base.log, say);
    this.stats = new StatsCounter('', { parent: base.stats });
    this.#session = options.openBuild(
      { command: open.command, cwd: open.cwd, env: options.env },
      say,
    );
    const context: JobContext = {
      ...base,
      stats: this.stats,
      placement: open.placement,
      placementFromEnv: false,
      noCache: open.noCache,
      log: this.#log,
      background: (what, work) => this.#track(what, work),
    };
    this.context = this.#session.ports.then(
      (ports) => ({ ...context, ...portsOf(ports) }),
      (err: unknown) => {
        this.#log.warn({ err }, 'muster cc: no coordinator');
        return { ...context, offlineReason: 'no-coordinator' };
      },
    );
  }

  get state(): HostedBuildState {
    return this.#state;
  }

  /** The service's log, whose warnings the build's stderr shows too. */
  get log(): ServiceLog {
    return this.#log;
  }

  /** Says a line on the build's stderr. */
  tell(text: string): void {
    this.#say(text);
  }

  /**
   * Closes the build (once): with the front end's `build-close` (the command's exit code, and
   * whether it wants the summary written), or as ended by a signal (`undefined`: the front end
   * went away, or the service stops).
   */
  close(close: BuildClose | undefined): Promise<void> {
    this.#closing ??= this.#close(close);
    return this.#closing;
  }

  #track(what: string, work: Promise<unknown>): void {
    const tracked = work.then(
      () => undefined,
      (err: unknown) => warnUnlessPaused(this.#log, err, `muster cc: ${what} failed`),
    );
    this.#options.serviceBackground(what, tracked);
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
  }

  async #settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.all([...this.#background]);
  }

  async #close(close: BuildClose | undefined): Promise<void> {
    const exitCode = close?.exitCode;
    this.#state = 'closing';
    const { channel, base } = this.#options;
    const context = await this.context;
    // The results this build kept meanwhile go now, and its uploads leave without waiting for
    // company: the front end waits for them, as it does when it hosts the build itself.
    base.stores.hurry();
    context.sharedCache?.flushNow?.();
    if (!(await endsWithin(this.#settled(), this.#options.backgroundMs)))
      this.#log.warn(
        { pending: this.#background.size },
        'muster cc: the build ended before every result reached the shared cache',
      );
    // Its compiles' --explain records, for a `muster cc --explain` run right after it.
    try {
      context.tier.flush();
    } catch (err) {
      this.#log.warn({ err }, 'muster cc: writing the explain records failed');
    }
    const shimFallbacks = await this.#foldFallbacks();
    const counts = countsOf(this.stats.totals, shimFallbacks);
    // A front end that went away (killed): closed as a command a signal ended.
    const { buildId } = await this.#session
      .close(exitCode ?? null, counts)
      .catch((err: unknown) => {
        this.#log.warn({ err }, 'muster cc: closing the build failed');
        return { buildId: undefined };
      });
    const closed = {
      counts,
      buildId: buildId ?? null,
      offline: context.offlineReason !== undefined,
      // Closed before the front end asked (the service stops): its later compiles ran alone.
      early: close === undefined,
    };
    const asked = close?.summary;
    const elapsedMs = asked === undefined ? 0 : Math.max(0, Date.now() - asked.startedAt);
    channel.end({
      type: 'build-closed',
      ...closed,
      ...(asked === undefined
        ? {}
        : {
            summary: formatSummary(counts, elapsedMs, buildId, hostedNote(closed)),
            json: summaryJson(counts, elapsedMs, buildId, asked.code),
          }),
    });
    this.#state = 'closed';
  }

  /** The shims' fallbacks of this build, from the log in its own directory (when it is ours). */
  async #foldFallbacks(): Promise<number> {
    const dir = this.#options.open.dir;
    try {
      const s = await lstat(dir);
      const mine = s.uid === (process.getuid?.() ?? s.uid);
      if (!s.isDirectory() || !mine || (s.mode & 0o077) !== 0) return 0;
      return await this.stats.foldFallbackLog(join(dir, FALLBACK_LOG_NAME));
    } catch (err) {
      this.#log.debug({ err }, 'muster cc: no fallback log of the build');
      return 0;
    }
  }
}

/** The service's log, whose warnings and errors the build's stderr shows too. */
function tellingLog(log: ServiceLog, say: (text: string) => void): ServiceLog {
  const telling =
    (level: 'warn' | 'error') =>
    (...args: unknown[]): void => {
      Reflect.apply(log[level], log, args);
      const [first, second] = args;
      const message = typeof first === 'string' ? first : typeof second === 'string' ? second : '';
      const err =
        typeof first === 'object' && first !== null ? (first as { err?: unknown }).err : undefined;
      const why = err instanceof Error ? `: ${err.message}` : '';
      if (message !== '') say(`${message}${why}\n`);
    };
  return {
    debug: (...args: unknown[]): void => void Reflect.apply(log.debug, log, args),
    info: (...args: unknown[]): void => void Reflect.apply(log.info, log, args),
    warn: telling('warn'),
    error: telling('error'),
  };
}
