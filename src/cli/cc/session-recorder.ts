/**
 * The compile session's records (ports.ts `JobRecorder`): jobs that ran on this machine or came
 * from the cache are sent to the session's open build in batches (every `flushMs`, at most
 * `MAX_BATCH` per request), and an empty batch every `heartbeatMs` tells the coordinator the
 * client is still there (it closes sessions it has not heard from). A coordinator that cannot be
 * reached keeps the records queued, at most `maxQueued` (the oldest are dropped and counted:
 * the build's summary still has every job, its task list then misses some). Recording never
 * fails a compile.
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
 * nothing more is sent to that session.
 */
const FINAL_CODES: ReadonlySet<string> = new Set([
  'COMPILE_SESSION_CLOSED',
  'NOT_FOUND',
  'FORBIDDEN',
  'UNAUTHORIZED',
  'VALIDATION_FAILED',
]);

export interface SessionRecorderOptions {
  flushMs?: number;
  heartbeatMs?: number;
  maxQueued?: number;
  /** Where a failure to reach the coordinator is said (once per kind of failure). */
  warn?: (text: string) => void;
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
  private warned = new Set<string>();

  constructor(
    private readonly api: RecorderApi,
    readonly buildId: number,
    private readonly options: SessionRecorderOptions = {},
  ) {
    this.flushMs = options.flushMs ?? FLUSH_MS;
    this.heartbeatMs = options.heartbeatMs ?? 30_000;
    this.maxQueued = options.maxQueued ?? 10_000;
    this.timer = setInterval(() => void this.tick(), this.flushMs);
    this.timer.unref();
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
        await this.api.recordCompileJobs(this.buildId, batch);
      } catch (err) {
        this.warnOnce(err);
        const code = (err as { code?: unknown }).code;
        if (typeof code === 'string' && FINAL_CODES.has(code)) {
          this.refused = true;
          this.queue = [];
          if (this.timer !== undefined) clearInterval(this.timer);
          this.timer = undefined;
        }
        return;
      }
      this.lastSent = Date.now();
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
      `muster: could not record compile jobs in build ${this.buildId}: ${text}\n`,
    );
  }

  /** Flushes the records and closes the session; idempotent (the second call does nothing). */
  async close(exitCode: number | null, summary: CompileSummary): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.sending;
    if (this.refused) return;
    if (this.queue.length > 0) await this.send();
    if (this.refused) return;
    const body: CloseCompileSession = { exitCode, summary };
    await this.api.closeCompileSession(this.buildId, body);
  }
}
