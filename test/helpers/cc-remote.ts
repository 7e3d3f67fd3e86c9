/**
 * What the remote-compile e2e tests share: an environment whose PATH has no compiler (for agents
 * that can only run what the client ships them, by hash), `muster build --json`'s summary, and
 * the check that a build's files are byte-identical to plain make's.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BuildCounts } from '../../src/cli/cc/build-summary.js';
import type { CliResult } from './cli.js';
import { makeTempDir } from './temp-dirs.js';

const run = promisify(execFile);

/** `muster build --json`'s summary: its counts, the build and the command's exit code. */
export interface Summary extends BuildCounts {
  buildId: number | null;
  exitCode: number;
}

/** The summary of a `muster build --json` that exited 0. */
export function summaryOf(result: CliResult): Summary {
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as Summary;
}

/** The same locale everywhere: gcc's quotes in diagnostics follow it. */
export const localeEnv = { LANG: 'C.UTF-8' };

/**
 * An environment for agents whose PATH has no compiler at all (the agent itself needs getent
 * and useradd by name, which are not compilers); checked.
 */
export async function compilerlessEnv(): Promise<NodeJS.ProcessEnv> {
  const bin = await makeTempDir('muster-cc-nogcc-bin-');
  await symlink('/usr/bin/getent', join(bin, 'getent'));
  const env = { ...process.env, PATH: `${bin}:/usr/sbin:/sbin` };
  await assert.rejects(
    run('/bin/sh', ['-c', 'command -v gcc || command -v g++ || command -v cc'], { env }),
    'no compiler on the agents’ PATH',
  );
  return env;
}

/** Each of `files` is the same in `a` as in `b` (plain make's tree). */
export async function assertSameFiles(a: string, b: string, files: string[]): Promise<void> {
  assert.ok(files.length > 0);
  for (const file of files)
    assert.deepEqual(
      await readFile(join(a, file)),
      await readFile(join(b, file)),
      `${file} differs from plain make's`,
    );
}
