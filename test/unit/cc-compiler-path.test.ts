import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  COMPILER_MEMO_TTL_MS,
  CompilerPaths,
  compilerEnvironment,
  resolveCompiler,
} from '../../src/cli/cc/compiler-path.js';

const root = mkdtempSync(join(tmpdir(), 'muster-cc-path-'));
after(() => rmSync(root, { recursive: true, force: true }));

function executable(path: string): string {
  writeFileSync(path, '#!/bin/sh\nexit 0\n');
  chmodSync(path, 0o755);
  return path;
}

const bin = join(root, 'bin');
const masquerade = join(root, 'masquerade');
const other = join(root, 'other');
for (const dir of [bin, masquerade, other]) mkdirSync(dir);
const shim = executable(join(root, 'muster-cc'));
const gcc = executable(join(bin, 'gcc'));
symlinkSync(shim, join(masquerade, 'gcc'));
symlinkSync(shim, join(other, 'gcc'));
executable(join(bin, 'notexec'));
chmodSync(join(bin, 'notexec'), 0o644);

describe('which real compiler a hello means', () => {
  const path = [masquerade, other, bin].join(':');

  it('skips the masquerade directory and any other link to the shim', async () => {
    assert.equal(await resolveCompiler('gcc', root, path, masquerade, shim), gcc);
  });

  it('takes a path to the shim itself as the compiler of that name', async () => {
    const viaMasquerade = join(masquerade, 'gcc');
    assert.equal(await resolveCompiler(viaMasquerade, root, path, masquerade, shim), gcc);
    assert.equal(await resolveCompiler('../masquerade/gcc', bin, path, masquerade, shim), gcc);
  });

  it('keeps a path to a real compiler, relative ones from the cwd', async () => {
    assert.equal(await resolveCompiler(gcc, '/', path, masquerade, shim), gcc);
    assert.equal(await resolveCompiler('./gcc', bin, path, masquerade, shim), gcc);
  });

  it('finds nothing rather than the shim, a non-executable, or the cwd', async () => {
    assert.equal(
      await resolveCompiler('gcc', root, [masquerade, other].join(':'), masquerade, shim),
      null,
    );
    assert.equal(await resolveCompiler('notexec', root, path, masquerade, shim), null);
    assert.equal(await resolveCompiler('gcc', bin, `:${masquerade}`, masquerade, shim), null);
    assert.equal(await resolveCompiler(join(root, 'missing'), root, path, masquerade, shim), null);
  });

  it("gives the compiler an environment without the launcher's variables or directory", () => {
    const env = compilerEnvironment(
      {
        PATH: `${masquerade}:${bin}`,
        MUSTER_CC_SOCKET: '/x',
        MUSTER_CC_MASQUERADE: masquerade,
        HOME: '/h',
      },
      masquerade,
    );
    assert.deepEqual(env, { PATH: bin, HOME: '/h' });
  });
});

describe('remembered compiler paths', () => {
  it('finds a compiler once, and again when the file it found changes', async () => {
    const dir = mkdtempSync(join(root, 'memo-'));
    const first = executable(join(dir, 'cc'));
    const paths = new CompilerPaths();
    assert.equal(await paths.resolve('cc', root, dir, undefined, undefined), first);
    assert.equal(await paths.resolve('cc', root, dir, undefined, undefined), first);
    rmSync(first);
    assert.equal(await paths.resolve('cc', root, dir, undefined, undefined), null);
    executable(first);
    assert.equal(await paths.resolve('cc', root, dir, undefined, undefined), first);
  });

  it('takes a compiler installed earlier on PATH from the next compile on', async () => {
    const early = mkdtempSync(join(root, 'early-'));
    const late = mkdtempSync(join(root, 'late-'));
    const searchPath = `${early}:${late}`;
    const installed = executable(join(late, 'cc'));
    const paths = new CompilerPaths(() => 0);
    assert.equal(await paths.resolve('cc', root, searchPath, undefined, undefined), installed);
    const newer = executable(join(early, 'cc'));
    assert.equal(await paths.resolve('cc', root, searchPath, undefined, undefined), newer);
    // A PATH dir that was not there yet counts too.
    const missing = join(root, 'not-yet');
    const later = `${missing}:${searchPath}`;
    assert.equal(await paths.resolve('cc', root, later, undefined, undefined), newer);
    mkdirSync(missing);
    const newest = executable(join(missing, 'cc'));
    assert.equal(await paths.resolve('cc', root, later, undefined, undefined), newest);
  });

  it('looks again after COMPILER_MEMO_TTL_MS for what stamps do not show', async () => {
    const early = mkdtempSync(join(root, 'ttl-early-'));
    const late = mkdtempSync(join(root, 'ttl-late-'));
    const searchPath = `${early}:${late}`;
    const found = executable(join(late, 'cc'));
    const waiting = executable(join(early, 'cc'));
    chmodSync(waiting, 0o644);
    let now = 1_000;
    const paths = new CompilerPaths(() => now);
    assert.equal(await paths.resolve('cc', root, searchPath, undefined, undefined), found);
    // Made executable: no directory entry changes, so the memo holds until its time is up.
    chmodSync(waiting, 0o755);
    now += COMPILER_MEMO_TTL_MS - 1;
    assert.equal(await paths.resolve('cc', root, searchPath, undefined, undefined), found);
    now += 1;
    assert.equal(await paths.resolve('cc', root, searchPath, undefined, undefined), waiting);
  });
});
