/**
 * The agent's start-up check that its task users can run its Node.js (src/agent/runtime-access.ts):
 * a program under a directory closed to other users, or not executable by them, is refused with
 * RUNTIME_NOT_EXECUTABLE naming what is closed; this test's own Node passes. Running a program
 * as nobody needs root, as task users do: as another user the modes only make a warning.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkRuntimeForTaskUsers } from '../../src/agent/runtime-access.js';
import { MusterError } from '../../src/protocol/errors.js';
import { makeTempDir, removeMadeDirs } from '../helpers/temp-dirs.js';

after(() => removeMadeDirs());

/** A program that answers `--version`, at dir/bin/node, every directory 0755 unless said. */
async function program(): Promise<{ dir: string; bin: string; file: string }> {
  const dir = await makeTempDir('muster-runtime-');
  await chmod(dir, 0o755);
  const bin = join(dir, 'bin');
  await mkdir(bin, { mode: 0o755 });
  const file = join(bin, 'node');
  await writeFile(file, '#!/bin/sh\necho v0.0.0\n', { mode: 0o755 });
  return { dir, bin, file };
}

const ROOT = process.getuid?.() === 0;

/**
 * As root (which can run it as nobody): refused, naming `names`. As another user, which cannot
 * become nobody, the modes alone are not proof (ACLs): a warning naming them.
 */
async function refused(program: string, names: string): Promise<void> {
  const closed = new RegExp(`: ${names} (is|are) closed to other users`);
  if (!ROOT) {
    const { warning } = await checkRuntimeForTaskUsers(program);
    assert.match(warning ?? '', closed);
    return;
  }
  await assert.rejects(checkRuntimeForTaskUsers(program), (err: unknown): boolean => {
    assert.ok(err instanceof MusterError, String(err));
    assert.equal(err.code, 'RUNTIME_NOT_EXECUTABLE');
    assert.match(err.message, closed);
    assert.match(err.message, /chmod o\+x/);
    return true;
  });
}

describe('the Node.js that task users run', () => {
  it("passes for this test's own Node.js and for a program every user may run", async () => {
    assert.deepEqual(await checkRuntimeForTaskUsers(process.execPath), {});
    assert.deepEqual(await checkRuntimeForTaskUsers((await program()).file), {});
  });

  it('refuses a program under a directory closed to other users, naming it', async () => {
    const { dir, bin, file } = await program();
    await chmod(bin, 0o700);
    await refused(file, bin);
    await chmod(dir, 0o750);
    await refused(file, `${dir}, ${bin}`);
  });

  it('refuses a program other users may not execute', async () => {
    const { file } = await program();
    await chmod(file, 0o750);
    await refused(file, file);
  });
});
