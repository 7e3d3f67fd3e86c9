/**
 * The scheduler's pure judgements (scheduler/agent-result.ts, scheduler/build-outcome.ts): which
 * result of an agent is accepted, the words a task's error keeps, and how a build ended. The
 * scheduler's behaviour around them is in scheduler.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PlanTask } from '../../src/api/plan/types.js';
import { acceptResult, resultDetail } from '../../src/coordinator/scheduler/agent-result.js';
import { buildOutcome } from '../../src/coordinator/scheduler/build-outcome.js';
import type { TaskRow } from '../../src/coordinator/store/types.js';

const plan: PlanTask = {
  name: 'compile',
  extension: 'core',
  operation: 'run',
  input: { command: 'true' },
  inputs: [],
  outputs: ['out/**'],
  needs: [],
  env: {},
  timeoutMs: undefined,
  retries: 0,
  requires: [],
};

const output = (path: string) => ({ path, sha256: 'a'.repeat(64), size: 1, mode: 0o644 });

const task = (name: string, status: TaskRow['status']): TaskRow => ({
  buildId: 1,
  name,
  status,
  attempts: 1,
  exitCode: null,
  agent: 'a1',
  startedAt: null,
  finishedAt: null,
  outputs: [],
  error: null,
  label: null,
  cache: null,
  placement: null,
  fallback: null,
});

describe('an agent result', () => {
  it('is accepted as reported when its outputs are declared (or it did not succeed)', () => {
    const ok = { status: 'succeeded' as const, durationMs: 5, outputs: [output('out/a.o')] };
    assert.deepEqual(acceptResult(plan, ok), { result: ok });
    const failed = { status: 'failed' as const, durationMs: 5, exitCode: 2 };
    assert.deepEqual(acceptResult(plan, failed), { result: failed });
  });

  it('fails without outputs when it names an undeclared one, its code in the message', () => {
    const { result, refused } = acceptResult(plan, {
      status: 'succeeded',
      durationMs: 5,
      outputs: [output('out/a.o'), output('secret.txt')],
    });
    assert.equal(refused?.code, 'OUTPUT_UNDECLARED');
    assert.equal(result.status, 'failed');
    assert.equal(result.outputs, undefined);
    assert.equal(result.error?.code, 'OUTPUT_UNDECLARED');
    assert.match(
      result.error?.message ?? '',
      /"secret\.txt" .*none of its outputs is kept \[OUTPUT_UNDECLARED\]$/,
    );
  });

  it('is told in words: the error, the exit code, or the signal', () => {
    const error = { code: 'TASK_TIMEOUT', message: 'timed out after 1 s' };
    assert.equal(resultDetail({ status: 'failed', durationMs: 1, error }), 'timed out after 1 s');
    assert.equal(
      resultDetail({ status: 'failed', durationMs: 1, exitCode: 3 }),
      'exited with code 3',
    );
    assert.equal(
      resultDetail({ status: 'failed', durationMs: 1, exitCode: null, signal: 'SIGKILL' }),
      'ended by signal SIGKILL',
    );
    assert.equal(resultDetail({ status: 'failed', durationMs: 1 }), 'ended by signal unknown');
    assert.equal(resultDetail({ status: 'succeeded', durationMs: 1 }), null);
    assert.equal(
      resultDetail({ status: 'cancelled', durationMs: 1, error }),
      'timed out after 1 s',
    );
  });
});

describe('a build outcome', () => {
  it('succeeds when every task did', () => {
    assert.deepEqual(buildOutcome([task('a', 'succeeded'), task('b', 'succeeded')], false), {
      status: 'succeeded',
      error: null,
    });
  });

  it('fails naming the failed tasks, or saying not every task succeeded', () => {
    assert.deepEqual(
      buildOutcome([task('a', 'failed'), task('b', 'skipped'), task('c', 'failed')], false),
      { status: 'failed', error: 'a, c failed' },
    );
    assert.deepEqual(buildOutcome([task('a', 'succeeded'), task('b', 'cancelled')], false), {
      status: 'failed',
      error: 'not every task succeeded',
    });
  });

  it('is cancelled when the build was, whatever its tasks did', () => {
    assert.deepEqual(buildOutcome([task('a', 'failed'), task('b', 'succeeded')], true), {
      status: 'cancelled',
      error: 'cancelled',
    });
  });
});
