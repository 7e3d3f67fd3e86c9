/**
 * Plans built to cost the coordinator time: tens of thousands of duplicate keys (the check used
 * to be quadratic), more YAML nodes than the cap, and large plans checked in a worker thread
 * while the event loop keeps turning. No assertion is about elapsed time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePlan } from '../../src/api/plan/parse.js';
import { PLAN_LIMITS } from '../../src/api/plan/limits.js';
import {
  OFF_THREAD_LIMITS,
  parsePlanOffThread,
} from '../../src/coordinator/plan/parse-off-thread.js';
import { MusterError } from '../../src/protocol/errors.js';

/** 40,000 repeats of one key in one task: 440 KB, under the size limit. */
function duplicateKeyPlan(repeats = 40_000): string {
  return `tasks:\n  a:\n    run: x\n${'    run: x\n'.repeat(repeats)}`;
}

function problemsOf(err: unknown): string[] {
  assert.ok(err instanceof MusterError, String(err));
  assert.equal(err.code, 'PLAN_INVALID', err.message);
  const problems = err.details?.problems;
  assert.ok(Array.isArray(problems));
  return problems as string[];
}

function syncProblems(text: string): string[] {
  try {
    parsePlan(text);
  } catch (err) {
    return problemsOf(err);
  }
  assert.fail('the plan was accepted');
}

describe('plan limits', () => {
  it('reports 40,000 duplicate keys, each with its line and the first one', () => {
    const problems = syncProblems(duplicateKeyPlan());
    assert.equal(problems.length, 40_000);
    assert.equal(problems[0], 'tasks.a: duplicate key "run" (first at line 3) (line 4)');
    assert.equal(problems.at(-1), 'tasks.a: duplicate key "run" (first at line 3) (line 40003)');
  });

  it('reports duplicate task names in the mapping form as task names', () => {
    const text = `tasks:\n${'  a: {run: x}\n'.repeat(3)}`;
    assert.deepEqual(syncProblems(text), [
      'tasks: duplicate task name "a" (first at line 2) (line 3)',
      'tasks: duplicate task name "a" (first at line 2) (line 4)',
    ]);
  });

  it('refuses a plan of more YAML nodes than the limit, naming it', () => {
    // A flow list of one-character items: 2 bytes a node, 500 KB for 250,001 of them.
    const items = Array<string>(PLAN_LIMITS.maxNodes).fill('1').join(',');
    const text = `tasks:\n  a:\n    uses: ext/op\n    with: [${items}]\n`;
    assert.ok(Buffer.byteLength(text) < PLAN_LIMITS.maxBytes);
    assert.deepEqual(syncProblems(text), [
      `the plan has more than ${PLAN_LIMITS.maxNodes} YAML nodes (mappings, lists, keys and values); the limit is ${PLAN_LIMITS.maxNodes}`,
    ]);
  });

  it('accepts a plan just under the node limit', () => {
    // 9 nodes besides the items: root, tasks and its mapping, a and its mapping, uses and its
    // value, with and its list.
    const items = Array<string>(PLAN_LIMITS.maxNodes - 9)
      .fill('1')
      .join(',');
    const plan = parsePlan(`tasks:\n  a:\n    uses: ext/op\n    with: [${items}]\n`);
    assert.equal((plan.tasks[0]?.input as unknown[]).length, PLAN_LIMITS.maxNodes - 9);
  });

  it('counts nodes without recursion: deep nesting meets the YAML error, not a stack overflow here', () => {
    const depth = 5_000;
    const text = `tasks:\n  a:\n    uses: ext/op\n    with: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
    assert.equal(syncProblems(text).length, 1);
  });
});

describe('plans checked off the event loop', () => {
  it('gives the same plan as parsePlan, inline or in a worker', async () => {
    const text = [
      'name: same',
      'tasks:',
      '  compile: {run: cc -c a.c, inputs: [a.c], outputs: [a.o], timeout: 1m}',
      '  link:',
      '    run: [cc, a.o]',
      '    needs: compile',
      '    env: {V: 1.10}',
      '  custom: {uses: myext/op, with: {deep: [1, {x: null}]}, retries: 2}',
      '',
    ].join('\n');
    const expected = parsePlan(text);
    assert.deepEqual(await parsePlanOffThread(text), expected);
    assert.deepEqual(await parsePlanOffThread(text, { minBytes: 0 }), expected);
  });

  it('passes PLAN_INVALID back from the worker with its problems and source name', async () => {
    const text = 'tasks:\n  a:\n    run: x\n    needs: [ghost]\n';
    const err = await parsePlanOffThread(text, { minBytes: 0, sourceName: 'm.yml' }).then(
      () => assert.fail('accepted'),
      (e: unknown) => e,
    );
    assert.deepEqual(problemsOf(err), ['tasks.a.needs: unknown task "ghost" (line 4)']);
    assert.match((err as Error).message, /^Plan m\.yml has 1 problem:/);
  });

  it('parses a 440 KB plan of 40,000 duplicate keys in a worker while the event loop turns', async () => {
    const text = duplicateKeyPlan();
    assert.ok(Buffer.byteLength(text) >= OFF_THREAD_LIMITS.minBytes);
    // Inline, parsing would hold the event loop for its whole duration and no tick would run
    // until it ended; in a worker the loop is free the whole time.
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    let err: unknown;
    try {
      await parsePlanOffThread(text);
    } catch (e) {
      err = e;
    } finally {
      clearInterval(ticker);
    }
    const problems = problemsOf(err);
    assert.equal(problems.length, 40_000);
    assert.match(problems[0] ?? '', /duplicate key "run"/);
    assert.ok(ticks >= 3, `the event loop turned only ${ticks} times while the worker parsed`);
  });

  it('queues parses beyond the concurrency and answers each', async () => {
    const plans = Array.from(
      { length: OFF_THREAD_LIMITS.concurrency + 2 },
      (_, i) => `tasks:\n  t${i}: {run: x}\n`,
    );
    const parsed = await Promise.all(plans.map((p) => parsePlanOffThread(p, { minBytes: 0 })));
    assert.deepEqual(
      parsed.map((p) => p.tasks[0]?.name),
      plans.map((_, i) => `t${i}`),
    );
  });
});
