/**
 * The test helpers' temp dirs: what `cleanup()` removes (what the helpers made, read-only dirs
 * in them too), what it keeps (a dir a running process holds, a dir the test made itself).
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cleanup, makeSharedDir, makeTempDir } from '../helpers/agent-process.js';
import { hold, madeDirs, release } from '../helpers/temp-dirs.js';

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

describe('test helpers: temp dirs', () => {
  it('cleanup removes every dir the helpers made, read-only dirs inside included', async () => {
    const plain = await makeTempDir('muster-unit-temp-');
    const shared = await makeSharedDir('muster-unit-shared-');
    const readOnly = join(plain, 'versions', 'v1');
    await mkdir(readOnly, { recursive: true });
    await writeFile(join(readOnly, 'file'), 'x');
    await chmod(readOnly, 0o555);
    assert.ok(madeDirs().includes(plain) && madeDirs().includes(shared));

    await cleanup();

    assert.equal(await exists(plain), false);
    assert.equal(await exists(shared), false);
    assert.deepEqual(
      madeDirs().filter((d) => d === plain || d === shared),
      [],
    );
  });

  it('keeps a dir a running process holds until it is let go, and dirs it did not make', async () => {
    const busy = await makeTempDir('muster-unit-busy-');
    const own = await mkdtemp(join(tmpdir(), 'muster-unit-own-'));
    try {
      hold(busy);
      hold(busy);
      await cleanup();
      assert.equal(await exists(busy), true, 'held twice: kept');
      release(busy);
      await cleanup();
      assert.equal(await exists(busy), true, 'still held once: kept');
      release(busy);
      await cleanup();
      assert.equal(await exists(busy), false, 'let go: removed');
      assert.equal(await exists(own), true, 'not made by the helpers: left to the test');

      await cleanup([own]);
      assert.equal(await exists(own), false, 'given to cleanup: removed');
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });
});
