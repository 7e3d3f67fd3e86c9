/**
 * Runs parsePlan() in a worker thread (see parse-off-thread.ts): the plan text comes in as
 * workerData, one message goes back, and the thread ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toMusterError } from '../../protocol/errors.js';
import { parsePlan } from '../../api/plan/parse.js';
import type { ParseJob, ParseOutcome } from './parse-off-thread.js';

const job = workerData as ParseJob;
let outcome: ParseOutcome;
try {
  outcome = {
    ok: true,
    plan: parsePlan(job.text, job.sourceName === undefined ? {} : { sourceName: job.sourceName }),
  };
} catch (err) {
  const error = toMusterError(err);
  outcome = {
    ok: false,
    error: {
      code: error.code,
      message: error.message,
      ...(error.details === undefined ? {} : { details: error.details }),
    },
  };
}
parentPort?.postMessage(outcome);
