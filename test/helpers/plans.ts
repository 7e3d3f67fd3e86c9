/**
 * Plans both the parser's tests (test/unit/plan.test.ts) and the plan schema's
 * (test/unit/plan-schema.test.ts) check: the schema must accept what the parser accepts and
 * refuse what it refuses, on the same fields.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

/** The plan examples/c-many/generate.js writes for 5 files of 2 functions. */
export function cManyPlan(): string {
  const out = mkdtempSync(join(tmpdir(), 'muster-c-many-'));
  try {
    execFileSync(process.execPath, [
      join(repo, 'examples/c-many/generate.js'),
      '--out',
      out,
      '--files',
      '5',
      '--functions',
      '2',
    ]);
    return readFileSync(join(out, 'muster.yml'), 'utf8');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** A plan with several problems at once: an output leaving the work dir, a need misspelt,
 * too many retries, a task with both run and uses, an unknown key. */
export const MANY_PROBLEMS_PLAN = `name: demo
tasks:
  compile:
    run: cc -c a.c
    outputs: [../a.o]
  link:
    run: cc a.o
    needs: [compil]
    retries: 99
  test:
    run: ./hello
    uses: core/run
    timout: 1m
`;
