/**
 * The compile session's records (ports.ts `JobRecorder`): jobs that ran on this machine or came
 * from the cache are sent to the session's open build in batches (every `flushMs`, at most
 * `MAX_BATCH` per request), and an empty batch every `heartbeatMs` tells the coordinator the
 * client is still there (it closes sessions it has not heard from). A coordinator that cannot be
 * reached keeps the records queued, at most `maxQueued` (the oldest are dropped and counted:
 * the build's summary still has every job, its task list then misses some). Recording never
 * fails a compile.
 *
 * The session is named by its key (the build's uid), not its id: a failback may give a build
 * the backup opened another id on the primary. A coordinator that does not know the session
 * (NOT_FOUND) may only not know it yet — a primary still taking its backup's history back, a
 * backup whose copy had not reached the session when the primary died — so the records stay
 * queued and are sent again, and the close waits a while for it (CLOSE_WAIT_MS).
 */
import type {
  CloseCompileSession,
  CompileRecord,
  CompileSummary,
} from '../../api/requests-types.js';
import type { ApiClient } from '../api-client.js';
import type { JobRecorder } from './ports.js';

const MAX_BATCH = 1000;
/**
 * How often queued records are sent: each request costs the coordinator (and this process) a
 * request's work besides the rows, and a second is as fresh as the build's own 'build' event,
 * which comes at most once a second.
 */
const FLUSH_MS = 1000;
/**
 * Answers that will not change by sending again: the session was closed (cancelled, or silent
 * too long), is not this user's, or the records are refused. The records are dropped and
 * nothing more is sent to that session. (Not NOT_FOUND: see the top of this file.)
 */
const FINAL_CODES: ReadonlySet<string> = new Set([
  'COMPILE_SESSION_CLOSED',
  'FORBIDDEN',
  'UNAUTHORIZED',
  'VALIDATION_FAILED',
]);
/**
 * How long the close waits for a coordinator to know the session (every CLOSE_RETRY_MS): a
 * failback takes a build's history back within seconds of the backup standing by.
 */
const CLOSE_WAIT_MS = 20_000;
const CLOSE_RETRY_MS = 500;

/** The open session's build and what requests name it by (compileSessionPath). */
export interface SessionRef {
  buildId: number;
  key: string;
}

export interface SessionRecorderOptions {
  flushMs?: number;
  heartbeatMs?: number;
  maxQueued?: number;
  /** Where a failure to reach the coordinator is said (once per kind of failure). */
  warn?: (text: string) => void;
  /** How long the close waits for a coordinator to know the session (default CLOSE_WAIT_MS). */
  closeWaitMs?: number;
  closeRetryMs?: number;
}

type RecorderApi = Pick<ApiClient, 'recordCompileJobs' | 'closeCompileSession'>;

export class SessionRecorder implements JobRecorder {
  private queue: CompileRecord[] = [];
  private dropped = 0;
  private readonly flushMs: number;
  private readonly heartbeatMs: number;
  private readonly maxQueued: number;
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> | undefined;
  private lastSent = Date.now();
  private closed = false;
  private refused = false;
  /** The last send's answer was NOT_FOUND (the coordinator does not know the session yet). */
  private unknown = false;
  private warned = new Set<string>();
  /** The build's id as the close answered it (a failback may have renumbered the build). */
  private closedAs: number | undefined;

  constructor(
    private readonly api: RecorderApi,
    private readonly session: SessionRef,
    private readonly options: SessionRecorderOptions = {},
  ) {
    this.flushMs = options.flushMs ?? FLUSH_MS;
    this.heartbeatMs = options.heartbeatMs ?? 30_000;
    this.maxQueued = options.maxQueued ?? 10_000;
    this.timer = setInterval(() => void this.tick(), this.flushMs);
    this.timer.unref();
  }

  /** The session's build: its id when opened, or as the close answered it. */
  get buildId(): number {
    return this.closedAs ?? this.session.buildId;
  }

  /** What requests name the session by. */
  get key(): string {
    return this.session.key;
  }

  /** The coordinator refused this session's records for good (closed, cancelled…). */
  get ended(): boolean {
    return this.refused;
  }

  /** Records dropped because the coordinator could not be reached for too long. */
  get droppedRecords(): number {
    return this.dropped;
  }

  record(record: CompileRecord): void {
    if (this.closed || this.refused) return;
    this.queue.push(record);
    if (this.queue.length > this.maxQueued) {
      this.queue.splice(0, this.queue.length - this.maxQueued);
      this.dropped += 1;
    }
  }

  private async tick(): Promise<void> {
    if (this.sending !== undefined || this.refused) return;
    if (this.queue.length === 0 && Date.now() - this.lastSent < this.heartbeatMs) return;
    this.sending = this.send().finally(() => (this.sending = undefined));
    await this.sending;
  }

  /** Sends what is queued (or a heartbeat); failures leave the records queued. */
  private async send(): Promise<void> {
    do {
      const batch = this.queue.slice(0, MAX_BATCH);
      try {
        await this.api.recordCompileJobs(this.session.key, batch);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        this.unknown = code === 'NOT_FOUND';
        // Said if it lasts: the close reports a session no coordinator came to know.
        if (!this.unknown) this.warnOnce(err);
        if (typeof code === 'string' && FINAL_CODES.has(code)) {
          this.refused = true;
          this.queue = [];
          if (this.timer !== undefined) clearInterval(this.timer);
          this.timer = undefined;
        }
        return;
      }
      this.lastSent = Date.now();
      this.unknown = false;
      this.queue.splice(0, batch.length);
    } while (this.queue.length > 0);
  }

  private warnOnce(err: unknown): void {
    const text = err instanceof Error ? err.message : String(err);
    const kind = (err as { code?: unknown }).code;
    const key = typeof kind === 'string' ? kind : text;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.options.warn?.(
      `muster: could not record compile jobs in build ${this.session.buildId}: ${text}\n`,
    );
  }

  /**
   * Flushes the records and closes the session; idempotent (the second call does nothing). A
   * coordinator that does not know the session is asked again for up to closeWaitMs, the
   * records first; other failures are thrown at once, as before.
   */
  async close(exitCode: number | null, summary: CompileSummary): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.sending;
    const body: CloseCompileSession = { exitCode, summary };
    const deadline = Date.now() + (this.options.closeWaitMs ?? CLOSE_WAIT_MS);
    const pause = (): Promise<void> =>
      new Promise((resolve) => setTimeout(resolve, this.options.closeRetryMs ?? CLOSE_RETRY_MS));
    for (;;) {
      if (this.refused) return;
      if (this.queue.length > 0) await this.send();
      if (this.refused) return;
      if (this.queue.length > 0 && this.unknown && Date.now() < deadline) {
        await pause();
        continue;
      }
      try {
        const { id } = await this.api.closeCompileSession(this.session.key, body);
        if (Number.isSafeInteger(id) && id > 0) this.closedAs = id;
        return;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code !== 'NOT_FOUND' || Date.now() >= deadline) throw err;
        this.unknown = true;
      }
      await pause();
    }
  }
}
