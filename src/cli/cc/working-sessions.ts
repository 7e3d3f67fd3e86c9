/**
 * The compile jobs of `muster cc` outside `muster build` (the per-user service): they join one
 * build per working session (issue 13). The session is opened on the coordinator with the first
 * job, and closed after `idleMs` without jobs; the next job opens a new one. Its exit code is 1
 * when one of its compiles failed, else 0 (there is no command whose code it could take).
 *
 * A coordinator that cannot be reached costs nothing: the jobs of that moment are not recorded
 * (the compiles themselves never wait for this), and opening is tried again after `retryMs`.
 */
import { hostname } from 'node:os';
import type { CompileRecord, CompileSummary } from '../../api/requests-types.js';
import { compileSessionPath } from '../../api/compile-session-key.js';
import type { CompileSessionView } from '../../api/views/compile.js';
import type { ApiClient } from '../api-client.js';
import type { JobRecorder, RemoteSession } from './ports.js';
import { SessionRecorder, type SessionRecorderOptions } from './session-recorder.js';

type SessionsApi = Pick<
  ApiClient,
  'createCompileSession' | 'recordCompileJobs' | 'closeCompileSession'
>;

export interface WorkingSessionsOptions extends SessionRecorderOptions {
  idleMs?: number;
  retryMs?: number;
  bootId?: string | undefined;
  cwd?: string;
}

interface Open {
  recorder: SessionRecorder;
  capacity: CompileSessionView['capacity'];
  summary: CompileSummary;
  failed: boolean;
}

export class WorkingSessions implements JobRecorder {
  private open: Open | undefined;
  private opening: Promise<Open | undefined> | undefined;
  private waiting: CompileRecord[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private retryAfter = 0;
  private stopped = false;
  private readonly idleMs: number;
  private readonly retryMs: number;

  constructor(
    private readonly api: SessionsApi,
    private readonly options: WorkingSessionsOptions = {},
  ) {
    this.idleMs = options.idleMs ?? 60_000;
    this.retryMs = options.retryMs ?? 60_000;
  }

  /** The build the current session records into, if one is open. */
  get buildId(): number | undefined {
    return this.open?.recorder.buildId;
  }

  /**
   * The open session, for remote jobs (they are its tasks): opened now when there is none, unless
   * opening failed a moment ago; null then.
   */
  async current(): Promise<RemoteSession | null> {
    if (this.stopped) return null;
    this.armIdle();
    if (this.open?.recorder.ended === true) this.open = undefined;
    let open = this.open;
    if (open === undefined) {
      if (Date.now() < this.retryAfter) return null;
      this.opening ??= this.start().finally(() => (this.opening = undefined));
      open = await this.opening;
    }
    return open === undefined
      ? null
      : { buildId: open.recorder.buildId, key: open.recorder.key, capacity: open.capacity };
  }

  /** A remote job of the current session ran (its task is its row): counted in the summary. */
  noteRemote(): void {
    if (this.open === undefined) return;
    this.open.summary.jobs += 1;
    this.open.summary.remote += 1;
  }

  record(record: CompileRecord): void {
    if (this.stopped) return;
    this.armIdle();
    // A session the coordinator ended (cancelled in the web UI, silent too long) is left;
    // the next job opens another.
    if (this.open?.recorder.ended === true) this.open = undefined;
    if (this.open !== undefined) {
      this.add(this.open, record);
      return;
    }
    if (Date.now() < this.retryAfter) return;
    this.waiting.push(record);
    if (this.waiting.length > 10_000) this.waiting.shift();
    this.opening ??= this.start().finally(() => (this.opening = undefined));
  }

  private add(open: Open, record: CompileRecord): void {
    open.recorder.record(record);
    open.summary.jobs += 1;
    if (record.placement === 'cache') open.summary.cacheHits += 1;
    else open.summary.local += 1;
    if (record.fallback !== undefined) open.summary.fallbacks += 1;
    if (record.exitCode !== 0) open.failed = true;
  }

  private async start(): Promise<Open | undefined> {
    try {
      const session = await this.api.createCompileSession({
        command: 'muster cc (working session)',
        cwd: this.options.cwd ?? process.cwd(),
        host: hostname().slice(0, 255) || 'localhost',
        ...(this.options.bootId === undefined ? {} : { bootId: this.options.bootId }),
      });
      const open: Open = {
        recorder: new SessionRecorder(
          this.api,
          { buildId: session.buildId, key: compileSessionPath(session) },
          this.options,
        ),
        capacity: session.capacity,
        summary: { jobs: 0, remote: 0, local: 0, cacheHits: 0, fallbacks: 0 },
        failed: false,
      };
      if (this.stopped) {
        await this.finish(open);
        return undefined;
      }
      this.open = open;
      for (const record of this.waiting.splice(0)) this.add(open, record);
      return open;
    } catch (err) {
      this.waiting = [];
      this.retryAfter = Date.now() + this.retryMs;
      this.options.warn?.(
        `muster cc: could not open a working session: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      return undefined;
    }
  }

  private armIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => void this.closeCurrent(), this.idleMs);
    this.idleTimer.unref();
  }

  private async finish(open: Open): Promise<void> {
    await open.recorder.close(open.failed ? 1 : 0, open.summary).catch((err: unknown) => {
      this.options.warn?.(
        `muster cc: could not close build ${open.recorder.buildId}: ${err instanceof Error ? err.message : String(err)}\n`,
      );
    });
  }

  private async closeCurrent(): Promise<void> {
    await this.opening;
    const open = this.open;
    this.open = undefined;
    if (open !== undefined) await this.finish(open);
  }

  /** Closes the session now (the service stops); nothing is recorded after. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    await this.closeCurrent();
  }
}
