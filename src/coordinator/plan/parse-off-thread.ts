/**
 * parsePlan() for the API: small plans are parsed inline, large ones in a worker thread, so a
 * big (or hostile) plan cannot hold up every other request while it is checked. A worker gets a
 * fresh heap with a ceiling and a time limit; at most a few run at once and the rest queue.
 */
import { pathToFileURL } from 'node:url';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { packagePath } from '../../protocol/client/package-root.js';
import { MusterError, type ErrorCode } from '../../protocol/errors.js';
import { parsePlan } from '../../api/plan/parse.js';
import type { Plan } from '../../api/plan/types.js';

export const OFF_THREAD_LIMITS = {
  /**
   * Plans of at least this many UTF-8 bytes are parsed in a worker. Starting one costs tens of
   * milliseconds; parsing 64 KiB of plan inline costs hundreds on a busy 2-core machine.
   */
  minBytes: 64 * 1024,
  /** Heap ceiling of a parse worker (a 1 MiB plan needs well under 200 MB). */
  maxHeapMb: 512,
  /** A parse that has not finished by then is stopped (a 1 MiB plan takes a few seconds). */
  timeoutMs: 60_000,
  /** Workers parsing at once; more wait their turn. */
  concurrency: Math.max(1, availableParallelism() - 1),
} as const;

/** What the worker receives (workerData). */
export interface ParseJob {
  text: string;
  sourceName: string | undefined;
}

/** What the worker sends back: the plan, or the error parsePlan threw. */
export type ParseOutcome =
  | { ok: true; plan: Plan }
  | {
      ok: false;
      error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
    };

export interface ParsePlanOffThreadOptions {
  sourceName?: string;
  /** Overrides OFF_THREAD_LIMITS.minBytes (0: always a worker); for tests. */
  minBytes?: number;
}

/** The worker's own file in the compiled tree (the bundled CLI has no file of it). */
const workerUrl = pathToFileURL(
  packagePath('dist', 'src', 'coordinator', 'plan', 'parse-worker.js'),
);
let running = 0;
const waiting: (() => void)[] = [];

/** Like parsePlan(), without blocking the event loop for large plans. */
export async function parsePlanOffThread(
  text: string,
  options: ParsePlanOffThreadOptions = {},
): Promise<Plan> {
  const sourceOption = options.sourceName === undefined ? {} : { sourceName: options.sourceName };
  const minBytes = options.minBytes ?? OFF_THREAD_LIMITS.minBytes;
  // Not text, or over the size limit: parsePlan refuses it at once, no worker needed.
  if (typeof text !== 'string' || text.length < minBytes) return parsePlan(text, sourceOption);
  if (Buffer.byteLength(text, 'utf8') < minBytes) return parsePlan(text, sourceOption);
  await acquire();
  try {
    return await runWorker({ text, sourceName: options.sourceName });
  } finally {
    release();
  }
}

function acquire(): Promise<void> {
  if (running < OFF_THREAD_LIMITS.concurrency) {
    running++;
    return Promise.resolve();
  }
  return new Promise((resolve) => waiting.push(resolve));
}

function release(): void {
  const next = waiting.shift();
  // The slot passes straight to the next in line.
  if (next) next();
  else running--;
}

/** A PLAN_INVALID error with one problem, formatted as parsePlan formats its problems. */
function planProblem(problem: string): MusterError {
  return new MusterError('PLAN_INVALID', `The plan has 1 problem:\n  - ${problem}`, {
    problems: [problem],
  });
}

function runWorker(job: ParseJob): Promise<Plan> {
  return new Promise<Plan>((resolve, reject) => {
    const worker = new Worker(workerUrl, {
      workerData: job,
      resourceLimits: { maxOldGenerationSizeMb: OFF_THREAD_LIMITS.maxHeapMb },
    });
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
      void worker.terminate();
    };
    const timer = setTimeout(
      () =>
        settle(() =>
          reject(
            planProblem(
              `checking the plan took longer than ${OFF_THREAD_LIMITS.timeoutMs / 1000} s; the limit is ${OFF_THREAD_LIMITS.timeoutMs / 1000} s`,
            ),
          ),
        ),
      OFF_THREAD_LIMITS.timeoutMs,
    );
    worker.once('message', (outcome: ParseOutcome) =>
      settle(() => {
        if (outcome.ok) resolve(outcome.plan);
        else
          reject(new MusterError(outcome.error.code, outcome.error.message, outcome.error.details));
      }),
    );
    worker.once('error', (err: Error & { code?: string }) =>
      settle(() =>
        reject(
          err.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? planProblem(
                `checking the plan needed more than ${OFF_THREAD_LIMITS.maxHeapMb} MB of memory; the limit is ${OFF_THREAD_LIMITS.maxHeapMb} MB`,
              )
            : new MusterError('INTERNAL', 'the plan could not be checked', undefined, {
                cause: err,
              }),
        ),
      ),
    );
    worker.once('exit', (code) =>
      settle(() =>
        reject(new MusterError('INTERNAL', `the plan checker exited with code ${code}`)),
      ),
    );
  });
}
