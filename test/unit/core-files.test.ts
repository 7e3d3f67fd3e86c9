/** core/files.put, core/files.list, core/noop and core/sleep against a fake context. */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { operations } from '../../src/extensions/core/index.js';
import type { Operation, OperationContext } from '../../src/host/extensions.js';

const scratch = mkdtempSync(join(tmpdir(), 'muster-core-files-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let count = 0;

function fakeContext(): { ctx: OperationContext; controller: AbortController } {
  const workDir = join(scratch, String(++count), 'work');
  mkdirSync(workDir, { recursive: true });
  const controller = new AbortController();
  const ctx: OperationContext = {
    taskId: `t${count}`,
    workDir,
    env: {},
    signal: controller.signal,
    stdout: () => undefined,
    stderr: () => undefined,
    log: () => undefined,
    trackProcess: () => undefined,
    untrackProcess: () => undefined,
  };
  return { ctx, controller };
}

function op(name: string): Operation {
  const fn = operations[name];
  assert.ok(fn, name);
  return fn;
}

void describe('core operations', () => {
  void it('exports its operations, crash only with test hooks', () => {
    const hooks = process.env.MUSTER_HOST_TEST_HOOKS === '1' ? ['crash'] : [];
    assert.deepEqual(Object.keys(operations).sort(), [
      ...hooks,
      'files.list',
      'files.put',
      'noop',
      'run',
      'sleep',
    ]);
  });

  void it('files.put writes UTF-8 and base64 files with modes', async () => {
    const { ctx } = fakeContext();
    const value = await op('files.put')(
      {
        files: [
          { path: 'a.txt', content: 'héllo' },
          { path: 'deep/b.bin', base64: Buffer.from([0, 1, 2]).toString('base64'), mode: 0o700 },
        ],
      },
      ctx,
    );
    assert.deepEqual(value, { written: ['a.txt', 'deep/b.bin'] });
    assert.equal(readFileSync(join(ctx.workDir, 'a.txt'), 'utf8'), 'héllo');
    assert.equal(statSync(join(ctx.workDir, 'a.txt')).mode & 0o777, 0o644);
    assert.deepEqual([...readFileSync(join(ctx.workDir, 'deep/b.bin'))], [0, 1, 2]);
    assert.equal(statSync(join(ctx.workDir, 'deep/b.bin')).mode & 0o777, 0o700);
    // Replacing an existing file is fine.
    await op('files.put')({ files: [{ path: 'a.txt', content: 'again' }] }, ctx);
    assert.equal(readFileSync(join(ctx.workDir, 'a.txt'), 'utf8'), 'again');
  });

  void it('files.put never writes outside the work dir', async () => {
    const { ctx } = fakeContext();
    const outside = join(ctx.workDir, '..', 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'target'), 'keep');
    symlinkSync(outside, join(ctx.workDir, 'dir-link'));
    symlinkSync(join(outside, 'target'), join(ctx.workDir, 'file-link'));
    const put = op('files.put');
    for (const path of ['../x', '/abs', 'dir-link/x', 'dir-link/new/x', 'file-link', 'a/./b']) {
      await assert.rejects(
        Promise.resolve(put({ files: [{ path, content: 'x' }] }, ctx)),
        { code: 'INVALID_PATH' },
        path,
      );
    }
    assert.equal(readFileSync(join(outside, 'target'), 'utf8'), 'keep');
    assert.deepEqual(readdirSync(outside), ['target']);
  });

  void it('files.put refuses malformed input with INVALID_INPUT', async () => {
    const { ctx } = fakeContext();
    const bad: unknown[] = [
      {},
      { files: 'a' },
      { files: [{ path: 'a' }] },
      { files: [{ path: 'a', content: 'x', base64: 'eA==' }] },
      { files: [{ path: 'a', base64: 'not base64!' }] },
      { files: [{ path: 'a', content: 'x', mode: 0o4755 }] },
      { files: [{ path: 'a', content: 'x', owner: 'root' }] },
    ];
    for (const input of bad) {
      await assert.rejects(
        Promise.resolve(op('files.put')(input, ctx)),
        { code: 'INVALID_INPUT' },
        JSON.stringify(input),
      );
    }
    assert.ok(!existsSync(join(ctx.workDir, 'a')));
  });

  void it('files.list lists files and symlinks, sorted, without following links', async () => {
    const { ctx } = fakeContext();
    mkdirSync(join(ctx.workDir, 'b/c'), { recursive: true });
    writeFileSync(join(ctx.workDir, 'b/c/z.txt'), '');
    writeFileSync(join(ctx.workDir, 'a.txt'), '');
    symlinkSync(scratch, join(ctx.workDir, 'link'));
    assert.deepEqual(await op('files.list')(null, ctx), ['a.txt', 'b/c/z.txt', 'link']);
  });

  void it('noop returns its input, sleep waits and stops on abort', async () => {
    const { ctx, controller } = fakeContext();
    assert.deepEqual(await op('noop')({ x: 1 }, ctx), { x: 1 });
    assert.equal(await op('noop')(undefined, ctx), null);
    assert.equal(await op('sleep')({ ms: 1 }, ctx), null);
    await assert.rejects(Promise.resolve(op('sleep')({ ms: -1 }, ctx)), { code: 'INVALID_INPUT' });
    const pending = Promise.resolve(op('sleep')({ ms: 60_000 }, ctx));
    controller.abort(new Error('stop'));
    await assert.rejects(pending);
  });
});
