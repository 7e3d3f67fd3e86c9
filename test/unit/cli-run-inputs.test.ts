/**
 * `muster run`'s inputs and symlinks: nothing outside the plan's directory is ever read for
 * upload, whether a link is named, walked into by a glob or lies on the way; links that stay
 * inside are followed (files) or entered when a path names them (directories).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describeFiles } from '../../src/cli/files.js';
import { mayMatchUnder, resolveInputs } from '../../src/cli/inputs.js';
import { MusterError } from '../../src/protocol/errors.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

let root: string;
let outside: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'muster-inputs-'));
  outside = await mkdtemp(join(tmpdir(), 'muster-secret-'));
  dirs.push(root, outside);
  await writeFile(join(outside, 'id_ed25519'), 'SECRET KEY\n');
  await mkdir(join(root, 'src', 'lib'), { recursive: true });
  await writeFile(join(root, 'src', 'a.c'), 'int a;\n');
  await writeFile(join(root, 'src', 'lib', 'b.c'), 'int b;\n');
  await symlink('a.c', join(root, 'src', 'alias.c')); // inside: followed
  await symlink('lib', join(root, 'src', 'liblink')); // a directory inside: not walked
  await symlink('missing.c', join(root, 'src', 'dangling.c')); // dangling, inside
  await symlink(outside, join(root, 'build')); // outside, but no pattern reaches it
  await symlink(outside, join(root, 'src', 'node_modules')); // outside, but never walked
});

function escapes(message: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MusterError, String(err));
    assert.equal(err.code, 'INPUT_ESCAPES', err.message);
    assert.match(err.message, message);
    return true;
  };
}

describe('muster run inputs and symlinks', () => {
  it('follows links that stay inside; does not walk linked directories or dangling links', async () => {
    assert.deepEqual(await resolveInputs(root, ['src/**/*.c']), [
      'src/a.c',
      'src/alias.c',
      'src/lib/b.c',
    ]);
    assert.deepEqual(await resolveInputs(root, ['src/liblink/b.c', 'src/liblink/*.c']), [
      'src/liblink/b.c',
    ]);
    const [alias] = await describeFiles(root, ['src/alias.c'], { confine: true });
    assert.equal(alias?.size, 7, 'a link is uploaded as what it points to');
  });

  it('refuses a file link that leads outside, naming the link and its target', async () => {
    const dir = await mkdtemp(join(root, 'plan-'));
    await symlink(join(outside, 'id_ed25519'), join(dir, 'notes.txt'));
    await assert.rejects(
      resolveInputs(dir, ['notes.txt']),
      escapes(/^input "notes\.txt": symlink "notes\.txt" -> ".*\/id_ed25519" leads outside /),
    );
    await assert.rejects(resolveInputs(dir, ['*.txt']), escapes(/symlink "notes\.txt"/));
    await assert.rejects(resolveInputs(dir, ['**']), escapes(/symlink "notes\.txt"/));
  });

  it('refuses a linked directory that leads outside: walked into, named, or a pattern base', async () => {
    const dir = await mkdtemp(join(root, 'plan-'));
    await mkdir(join(dir, 'data'));
    await writeFile(join(dir, 'data', 'ok.txt'), 'ok');
    await symlink(outside, join(dir, 'data', 'keys'));
    for (const pattern of ['data/**', 'data/*/id_*', 'data/keys/id_ed25519', 'data/keys/*']) {
      await assert.rejects(
        resolveInputs(dir, [pattern]),
        escapes(/symlink "data\/keys" -> ".*muster-secret-.*" leads outside/),
        pattern,
      );
    }
    // A pattern that cannot reach below it does not care about it.
    assert.deepEqual(await resolveInputs(dir, ['data/*.txt']), ['data/ok.txt']);
  });

  it('lists every escaping link at once', async () => {
    const dir = await mkdtemp(join(root, 'plan-'));
    await symlink(outside, join(dir, 'a'));
    await symlink(join(outside, 'id_ed25519'), join(dir, 'b'));
    await assert.rejects(resolveInputs(dir, ['a/**', 'b']), (err: unknown) => {
      assert.ok(err instanceof MusterError);
      assert.equal(err.code, 'INPUT_ESCAPES');
      assert.match(
        err.message,
        /^2 inputs lead outside .* through symlinks; nothing was uploaded:$/,
      );
      assert.equal((err.details?.problems as string[]).length, 2);
      return true;
    });
  });

  it('refuses a dangling link that points outside (its target may appear later)', async () => {
    const dir = await mkdtemp(join(root, 'plan-'));
    await symlink('/nonexistent/muster-test', join(dir, 'later.txt'));
    await assert.rejects(resolveInputs(dir, ['*.txt']), escapes(/symlink "later\.txt"/));
  });

  it('checks again when it reads: a link swapped in after the check is refused', async () => {
    const dir = await mkdtemp(join(root, 'plan-'));
    await writeFile(join(dir, 'in.txt'), 'fine');
    assert.deepEqual(await resolveInputs(dir, ['in.txt']), ['in.txt']);
    await unlink(join(dir, 'in.txt'));
    await symlink(join(outside, 'id_ed25519'), join(dir, 'in.txt'));
    await assert.rejects(
      describeFiles(dir, ['in.txt'], { confine: true }),
      escapes(/symlink "in\.txt"/),
    );
  });

  it('mayMatchUnder: which directories a pattern could reach into', () => {
    assert.equal(mayMatchUnder('data/**', 'data/keys'), true);
    assert.equal(mayMatchUnder('**/*.c', 'x/y'), true);
    assert.equal(mayMatchUnder('data/*/id', 'data/keys'), true);
    assert.equal(mayMatchUnder('{src,data}/k*/x', 'data/keys'), true);
    assert.equal(mayMatchUnder('data/*.txt', 'data/keys'), false);
    assert.equal(mayMatchUnder('src/**', 'build'), false);
    assert.equal(mayMatchUnder('data/keys', 'data/keys'), false);
  });
});
