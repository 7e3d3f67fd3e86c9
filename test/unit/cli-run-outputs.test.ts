/**
 * The writer of `muster run`'s outputs against a coordinator that lies: it writes only what the
 * local plan declared for each task, never into .git/ (any case), never through a symlink already
 * in the plan's directory; one refused path and nothing at all is written.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parsePlan } from '../../src/api/plan/parse.js';
import { writeOutputs } from '../../src/cli/outputs.js';
import { MusterError } from '../../src/protocol/errors.js';

const PLAN = parsePlan(
  'tasks:\n  build:\n    run: x\n    outputs: [app.bin, "out/**/*.txt", ".git/hooks/*"]\n' +
    '  docs:\n    run: y\n    outputs: [doc.md]\n',
);

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

const blobs = new Map<string, Buffer>();
const client = {
  getBlob: async (sha256: string): Promise<Buffer> => {
    const blob = blobs.get(sha256);
    if (!blob) throw new Error(`no blob ${sha256}`);
    return blob;
  },
};

function output(path: string, text: string, mode = 0o644) {
  const data = Buffer.from(text);
  const sha256 = createHash('sha256').update(data).digest('hex');
  blobs.set(sha256, data);
  return { path, sha256, size: data.length, mode };
}

/** Every path under dir, with symlinks as "path -> target", sorted. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const abs = join(entry.parentPath, entry.name);
    const rel = abs.slice(dir.length + 1);
    out.push(entry.isSymbolicLink() ? `${rel} -> ${await readlink(abs)}` : rel);
  }
  return out.sort();
}

function refusedWith(code: string, message: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MusterError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  };
}

describe('muster run writing outputs', () => {
  it('writes declared outputs, creating directories, with their modes', async () => {
    const dir = await tempDir('muster-out-');
    const written = await writeOutputs(client, dir, PLAN, [
      { name: 'build', outputs: [output('app.bin', 'binary', 0o755), output('out/a/b.txt', 'b')] },
      { name: 'docs', outputs: [output('doc.md', '# doc')] },
    ]);
    assert.deepEqual(written, { files: 3, bytes: 12 });
    assert.equal(await readFile(join(dir, 'out/a/b.txt'), 'utf8'), 'b');
    assert.equal((await stat(join(dir, 'app.bin'))).mode & 0o777, 0o755);
    assert.deepEqual(await tree(dir), ['app.bin', 'doc.md', 'out', 'out/a', 'out/a/b.txt']);
  });

  it('refuses .git/hooks/pre-commit even when the plan declares it: nothing written', async () => {
    const dir = await tempDir('muster-out-');
    await mkdir(join(dir, '.git', 'hooks'), { recursive: true });
    await assert.rejects(
      writeOutputs(client, dir, PLAN, [
        {
          name: 'build',
          outputs: [output('app.bin', 'fine'), output('.git/hooks/pre-commit', '#!/bin/sh\nevil')],
        },
      ]),
      refusedWith(
        'OUTPUT_IN_GIT',
        /^task build: output path "\.git\/hooks\/pre-commit" is inside \.git\/; no output was written$/,
      ),
    );
    assert.deepEqual(await tree(dir), ['.git', '.git/hooks']);
  });

  it('refuses .git in any case and at any depth', async () => {
    const dir = await tempDir('muster-out-');
    for (const path of ['.GIT/config', 'out/.Git/hooks/x.txt', 'out/sub/.git/a.txt']) {
      await assert.rejects(
        writeOutputs(client, dir, PLAN, [{ name: 'build', outputs: [output(path, 'x')] }]),
        refusedWith('OUTPUT_IN_GIT', /is inside \.git\//),
      );
    }
    assert.deepEqual(await tree(dir), []);
  });

  it('refuses paths the task did not declare, and tasks the plan does not have', async () => {
    const dir = await tempDir('muster-out-');
    await assert.rejects(
      writeOutputs(client, dir, PLAN, [
        { name: 'build', outputs: [output('app.bin', 'ok')] },
        { name: 'docs', outputs: [output('app.bin', 'docs may not write app.bin')] },
      ]),
      refusedWith(
        'OUTPUT_UNDECLARED',
        /^task docs: output path "app\.bin" is not one of the task's declared outputs \(outputs: doc\.md\); no output was written$/,
      ),
    );
    await assert.rejects(
      writeOutputs(client, dir, PLAN, [{ name: 'ghost', outputs: [output('doc.md', 'x')] }]),
      refusedWith('OUTPUT_UNDECLARED', /it declares no outputs/),
    );
    assert.deepEqual(await tree(dir), []);
  });

  it('reports every refused path, the most serious first', async () => {
    const dir = await tempDir('muster-out-');
    const err = await writeOutputs(client, dir, PLAN, [
      {
        name: 'build',
        outputs: [
          output('notes.txt', 'x'),
          output('.git/hooks/post-checkout', 'x'),
          output('../../etc/x', 'x'),
        ],
      },
    ]).then(
      () => assert.fail('written'),
      (e: unknown) => e as MusterError,
    );
    assert.equal(err.code, 'INVALID_PATH');
    assert.match(err.message, /"\.\.\/\.\.\/etc\/x" has a "\.\." segment.*\(and 2 more refused\)$/);
    assert.deepEqual(
      (err.details?.problems as string[]).map((p) => /\[([A-Z_]+)\]$/.exec(p)?.[1]),
      ['OUTPUT_UNDECLARED', 'OUTPUT_IN_GIT', 'INVALID_PATH'],
    );
    assert.deepEqual(await tree(dir), []);
  });

  it('never writes through a symlinked directory already there (out -> outside)', async () => {
    const dir = await tempDir('muster-out-');
    const outside = await tempDir('muster-outside-');
    await symlink(outside, join(dir, 'out'));
    await assert.rejects(
      writeOutputs(client, dir, PLAN, [{ name: 'build', outputs: [output('out/x.txt', 'x')] }]),
      refusedWith(
        'OUTPUT_THROUGH_SYMLINK',
        /^output "out\/x\.txt": "out" is a symlink \(-> ".*muster-outside-.*"\) in .*; muster run does not write through it$/,
      ),
    );
    assert.deepEqual(await readdir(outside), [], 'nothing written outside, not even a temp file');
    assert.ok((await lstat(join(dir, 'out'))).isSymbolicLink(), 'the link is left alone');
  });

  it('does not follow a symlinked directory deeper down, even one that stays inside', async () => {
    const dir = await tempDir('muster-out-');
    await mkdir(join(dir, 'out', 'real'), { recursive: true });
    await mkdir(join(dir, '.git', 'hooks'), { recursive: true });
    await symlink('../.git/hooks', join(dir, 'out', 'hooks'));
    await assert.rejects(
      writeOutputs(client, dir, PLAN, [
        { name: 'build', outputs: [output('out/hooks/post-checkout.txt', 'x')] },
      ]),
      refusedWith(
        'OUTPUT_THROUGH_SYMLINK',
        /"out\/hooks" is a symlink \(-> "\.\.\/\.git\/hooks"\)/,
      ),
    );
    assert.deepEqual(await readdir(join(dir, '.git', 'hooks')), []);
  });

  it('replaces a symlink at the output name itself instead of writing through it', async () => {
    const dir = await tempDir('muster-out-');
    const outside = await tempDir('muster-outside-');
    await writeFile(join(outside, 'authorized_keys'), 'original');
    await symlink(join(outside, 'authorized_keys'), join(dir, 'app.bin'));
    await writeOutputs(client, dir, PLAN, [{ name: 'build', outputs: [output('app.bin', 'new')] }]);
    assert.equal(await readFile(join(outside, 'authorized_keys'), 'utf8'), 'original');
    assert.ok((await lstat(join(dir, 'app.bin'))).isFile());
    assert.equal(await readFile(join(dir, 'app.bin'), 'utf8'), 'new');
  });

  it('writes into a plan directory that is itself reached through a symlink', async () => {
    const real = await tempDir('muster-out-');
    const links = await tempDir('muster-links-');
    await symlink(real, join(links, 'project'));
    await writeOutputs(client, join(links, 'project'), PLAN, [
      { name: 'build', outputs: [output('out/x.txt', 'x')] },
    ]);
    assert.equal(await readFile(join(real, 'out', 'x.txt'), 'utf8'), 'x');
  });
});
