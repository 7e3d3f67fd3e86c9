/**
 * Task users' pure parts: the option, the user names, and the blob view's import of outputs,
 * which must take only regular files whose content matches the hash the host reported.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobView } from '../../src/agent/blob-view.js';
import { compileAgentOptions } from '../../src/agent/options.js';
import { TaskUsers } from '../../src/agent/task-users.js';
import { BlobStore } from '../../src/common/blob-store.js';
import type { TaskResult } from '../../src/protocol/task-types.js';

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

describe('--task-users', () => {
  it('is on by default exactly when the agent is root; off is off; anything else is refused', () => {
    assert.equal(compileAgentOptions({}).taskUsers, process.getuid?.() === 0);
    assert.equal(compileAgentOptions({ taskUsers: 'off' }).taskUsers, false);
    assert.throws(() => compileAgentOptions({ taskUsers: 'yes' }), { code: 'INVALID_CONFIG' });
    if (process.getuid?.() === 0)
      assert.equal(compileAgentOptions({ taskUsers: 'on' }).taskUsers, true);
    else assert.throws(() => compileAgentOptions({ taskUsers: 'on' }), { code: 'INVALID_CONFIG' });
  });
});

describe('task user names', () => {
  it('are short, stable, and differ between instances and between agents', () => {
    const name = TaskUsers.nameOf('agent-1', 'muster-0123456789abcdef');
    assert.match(name, /^muster-[0-9a-f]{16}$/);
    assert.ok(name.length <= 32);
    assert.equal(TaskUsers.nameOf('agent-1', 'muster-0123456789abcdef'), name);
    assert.notEqual(TaskUsers.nameOf('agent-1', 'muster-fedcba9876543210'), name);
    assert.notEqual(TaskUsers.nameOf('agent-2', 'muster-0123456789abcdef'), name);
  });
});

describe('blob view: importing outputs', () => {
  let dir: string;
  let store: BlobStore;
  let view: string;
  let blobs: BlobView;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-view-'));
    store = new BlobStore(join(dir, 'store'));
    await store.init();
    view = join(dir, 'view');
    blobs = new BlobView(store);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function put(name: string, content: string | { link: string }): Promise<void> {
    await mkdir(join(view, name.slice(0, 2)), { recursive: true });
    if (typeof content === 'string') await writeFile(join(view, name.slice(0, 2), name), content);
    else await symlink(content.link, join(view, name.slice(0, 2), name));
  }

  function result(path: string, sha256: string, size: number): TaskResult {
    return { status: 'succeeded', durationMs: 1, outputs: [{ path, sha256, size, mode: 0o644 }] };
  }

  it('takes a regular file whose content has the reported hash into the store', async () => {
    await put(sha('good'), 'good');
    const taken = await blobs.importOutputs(view, result('a.txt', sha('good'), 4));
    assert.equal(taken.status, 'succeeded');
    assert.equal(await store.has(sha('good')), true);
  });

  it('fails the task for content under another hash, and stores nothing', async () => {
    await put(sha('claimed'), 'other');
    const taken = await blobs.importOutputs(view, result('a.txt', sha('claimed'), 5));
    assert.equal(taken.status, 'failed');
    assert.equal(taken.error?.code, 'BLOB_HASH_MISMATCH');
    assert.equal(taken.outputs, undefined);
    assert.equal(await store.has(sha('claimed')), false);
  });

  it('never follows a symlink, and refuses a size that was not reported', async () => {
    const secret = join(dir, 'secret');
    await writeFile(secret, 'secret');
    await put(sha('secret'), { link: secret });
    const linked = await blobs.importOutputs(view, result('s.txt', sha('secret'), 6));
    assert.equal(linked.error?.code, 'BLOB_NOT_FOUND');
    assert.equal(await store.has(sha('secret')), false);

    await put(sha('sized'), 'sized');
    const sized = await blobs.importOutputs(view, result('z.txt', sha('sized'), 99));
    assert.equal(sized.error?.code, 'BLOB_SIZE_MISMATCH');
  });

  it('fails for an output the host never stored', async () => {
    const taken = await blobs.importOutputs(view, result('m.txt', sha('missing'), 7));
    assert.equal(taken.error?.code, 'BLOB_NOT_FOUND');
  });
});
