/**
 * What a followed build looks like on screen. On a terminal: one progress line, redrawn in place
 * and cleared before anything else is printed above it. Elsewhere (pipes, CI logs): plain lines
 * with a clock time. Log text is printed per task as whole lines, prefixed `task | `.
 */
import type { BuildView, LogChunkView, TaskView } from '../api/views/builds.js';
import { clockTime, elapsedMs, formatDuration } from '../api/format.js';

export interface BuildDisplayOptions {
  /** A terminal: draw the progress line. */
  tty: boolean;
  /** Print task transitions and progress at all (false for `builds logs --follow`). */
  progress: boolean;
  /** Prefix log lines with the task name (false when following one task). */
  prefix: boolean;
  /** Only this task's logs. */
  task?: string | undefined;
}

const BAR_WIDTH = 20;
const ENDED: ReadonlySet<string> = new Set(['succeeded', 'failed', 'cancelled', 'skipped']);
const CLEAR_LINE = '\r\x1b[2K';

export class BuildDisplay {
  private readonly partial = new Map<string, string>();
  private tasks: TaskView[] = [];
  private barShown = false;
  private startedAt = Date.now();
  private ticker: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream & { columns?: number },
    private readonly options: BuildDisplayOptions,
  ) {
    if (options.tty && options.progress) {
      // Keep the elapsed time moving; never keeps the process alive.
      this.ticker = setInterval(() => this.redraw(), 1000);
      this.ticker.unref();
    }
  }

  /** The build's tasks as they are now, for the progress line. */
  setTasks(tasks: TaskView[], startedAt?: string | null): void {
    if (startedAt) {
      const at = Date.parse(startedAt);
      if (Number.isFinite(at)) this.startedAt = at;
    }
    this.tasks = tasks;
    this.redraw();
  }

  /** A task changed: prints the transition worth telling (started, finished, retried). */
  taskChanged(previous: TaskView | undefined, task: TaskView): void {
    if (!this.options.progress) {
      if (ENDED.has(task.status)) this.flushTask(task.name);
      return;
    }
    const line = describeTransition(previous, task, this.options.tty);
    if (ENDED.has(task.status)) this.flushTask(task.name);
    if (line !== undefined) this.line(`[${clockTime()}] ${line}`);
  }

  /** A log chunk, in id order. Whole lines are printed; the rest waits for its newline. */
  log(chunk: LogChunkView): void {
    if (this.options.task !== undefined && chunk.task !== this.options.task) return;
    const key = `${chunk.task}\0${chunk.stream}`;
    const text = (this.partial.get(key) ?? '') + chunk.text;
    const lines = text.split(/\r?\n/);
    const rest = lines.pop() ?? '';
    if (rest === '') this.partial.delete(key);
    else this.partial.set(key, rest);
    if (lines.length > 0) this.lines(lines.map((l) => this.logLine(chunk.task, l)));
  }

  /** A line of its own (notes, warnings). */
  note(text: string): void {
    this.line(text);
  }

  /** Prints what is left of every partial line and removes the progress line. */
  finish(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    for (const key of [...this.partial.keys()]) this.flushKey(key);
    this.clearBar();
  }

  private flushTask(task: string): void {
    for (const key of [...this.partial.keys()]) {
      if (key.startsWith(`${task}\0`)) this.flushKey(key);
    }
  }

  private flushKey(key: string): void {
    const rest = this.partial.get(key);
    this.partial.delete(key);
    if (rest !== undefined && rest !== '') this.line(this.logLine(key.split('\0')[0] ?? '', rest));
  }

  private logLine(task: string, text: string): string {
    return this.options.prefix ? `${task} | ${text}` : text;
  }

  private line(text: string): void {
    this.lines([text]);
  }

  private lines(lines: string[]): void {
    this.clearBar();
    this.out.write(lines.map((l) => `${l}\n`).join(''));
    this.redraw();
  }

  private clearBar(): void {
    if (this.barShown) this.out.write(CLEAR_LINE);
    this.barShown = false;
  }

  private redraw(): void {
    if (!this.options.tty || !this.options.progress || this.ticker === undefined) return;
    if (this.tasks.length === 0) return;
    let text = progressLine(this.tasks, Date.now() - this.startedAt);
    // 0 when the terminal does not say (e.g. under script(1)).
    const columns = this.out.columns || 80;
    if ([...text].length >= columns) text = [...text].slice(0, Math.max(0, columns - 1)).join('');
    this.out.write(`${CLEAR_LINE}${text}`);
    this.barShown = true;
  }
}

/** `[########------------] 4/10 done, 2 running, 1 failed  12 s` */
export function progressLine(tasks: readonly TaskView[], elapsedMs: number): string {
  let done = 0;
  let running = 0;
  let failed = 0;
  for (const task of tasks) {
    if (task.status === 'succeeded' || task.status === 'skipped') done++;
    else if (task.status === 'failed' || task.status === 'cancelled') failed++;
    else if (task.status === 'running') running++;
  }
  const total = tasks.length;
  const filled = total === 0 ? 0 : Math.round(((done + failed) / total) * BAR_WIDTH);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
  const failedText = failed > 0 ? `, ${failed} failed` : '';
  return `${bar} ${done}/${total} done, ${running} running${failedText}  ${formatDuration(elapsedMs)}`;
}

/** The line for a task's change, or undefined when it is not worth a line. */
export function describeTransition(
  previous: TaskView | undefined,
  task: TaskView,
  tty: boolean,
): string | undefined {
  if (previous?.status === task.status && previous.attempts === task.attempts) return undefined;
  const on = task.agent ? ` on ${task.agent}` : '';
  const duration = task.durationMs ?? elapsedMs(task.startedAt, task.finishedAt);
  const took = duration === undefined ? '' : formatDuration(duration);
  switch (task.status) {
    case 'running': {
      if (tty) return undefined;
      const attempt = task.attempts > 1 ? ` (attempt ${task.attempts})` : '';
      return `task ${task.name} started${on}${attempt}`;
    }
    case 'succeeded':
      return `task ${task.name} succeeded${on}${took ? ` (${took})` : ''}`;
    case 'failed': {
      const why = [
        task.exitCode !== null ? `exit code ${task.exitCode}` : undefined,
        took || undefined,
      ].filter((x) => x !== undefined);
      // "exited with code 2" says nothing the exit code does not.
      const redundant =
        task.exitCode !== null && new RegExp(`\\bcode ${task.exitCode}\\b`).test(task.error ?? '');
      const error = task.error && !redundant ? `: ${task.error}` : '';
      return `task ${task.name} failed${on}${why.length > 0 ? ` (${why.join(', ')})` : ''}${error}`;
    }
    case 'cancelled':
      return `task ${task.name} cancelled`;
    case 'skipped':
      return `task ${task.name} skipped${task.error ? `: ${task.error}` : ''}`;
    case 'pending':
    case 'queued':
      // Back in the queue after running: the attempt was lost or failed and will be retried.
      if (previous?.status === 'running') {
        return `task ${task.name} will be retried${task.error ? `: ${task.error}` : ''}`;
      }
      return undefined;
    default:
      return undefined;
  }
}

/** `Build 12 failed in 3.2 s: 1 failed (link), 3 succeeded, 1 skipped` */
export function summaryLine(build: BuildView): string {
  const counts = new Map<string, string[]>();
  for (const task of build.tasks)
    counts.set(task.status, [...(counts.get(task.status) ?? []), task.name]);
  const parts: string[] = [];
  for (const status of [
    'failed',
    'cancelled',
    'succeeded',
    'skipped',
    'running',
    'queued',
    'pending',
  ]) {
    const names = counts.get(status);
    if (!names) continue;
    const listed = status === 'failed' || status === 'cancelled' ? ` (${names.join(', ')})` : '';
    parts.push(`${names.length} ${status}${listed}`);
  }
  const took = elapsedMs(build.startedAt ?? build.createdAt, build.finishedAt);
  return `Build ${build.id} ${build.status}${took === undefined ? '' : ` in ${formatDuration(took)}`}: ${parts.join(', ') || 'no tasks'}\n`;
}
