/**
 * The coordinator's bundle (src/coordinator/bundles.ts) on a real store and blob store: the
 * built-in extensions core and cc, users' extensions, and registered compiler toolchains under
 * toolchains/<id>/ with their description, laid out so the cc extension finds them from its own
 * place; toolchains that cannot be shipped are left out without breaking the bundle.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { BlobStore } from '../../src/common/blob-store.js';
import { BundleManager, SHIPPED_TOOLCHAINS } from '../../src/coordinator/bundles.js';
import { TOOLCHAIN_ROWS } from '../../src/coordinator/store/cache.js';
import { MusterError } from '../../src/protocol/errors.js';
import { toolchainsOf } from '../../src/coordinator/pool/bundle-toolchains.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import type { Bundle } from '../../src/protocol/client/bundle.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('bundles', () => {
  let dir: string;
  let store: Store;
  let blobs: BlobStore;
  let bundles: BundleManager;

  /** Puts `content` in the blob store; returns its file entry at `path`. */
  async function blob(path: string, content: string, mode = 0o644) {
    const data = Buffer.from(content);
    const sha256 = sha(data);
    const writer = await blobs.createWriter(sha256, data.length);
    await writer.write(0, data);
    await writer.finish();
    return { path, sha256, size: data.length, mode };
  }

  async function register(
    id: string,
    info: Record<string, unknown>,
    files: { path: string; sha256: string; size: number; mode: number }[],
    createdBy = 'alice',
  ) {
    store.cache.putToolchain(
      { id, files, info, createdBy },
      (s) => files.find((f) => f.sha256 === s)?.size,
    );
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-bundles-'));
    // One millisecond per stamp: registrations are ordered by their time, never by a tie.
    let ms = Date.parse('2026-12-06T00:00:00Z');
    store = openSqliteStore(join(dir, 'state.sqlite'), { now: () => new Date(ms++) });
    blobs = new BlobStore(join(dir, 'blobs'));
    await blobs.init();
    bundles = new BundleManager(store, blobs, { label: 'muster test' });
  });
  after(async () => {
    store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers an extension’s files at once from the bundle computed, none while it computes', async () => {
    const bundle = await bundles.get();
    const core = bundles.extensionFiles('core');
    assert.ok(core !== undefined);
    assert.deepEqual(
      core,
      bundle.manifest.files
        .filter((f) => f.path.startsWith('extensions/core/'))
        .map((f) => ({
          path: f.path.slice('extensions/core/'.length),
          sha256: f.sha256,
          mode: f.mode,
        })),
    );
    assert.ok(core.some((f) => f.path === 'index.js'));
    assert.equal(bundles.extensionFiles('nope'), undefined, 'no such extension');

    store.putExtension({
      name: 'mine',
      version: '1',
      files: [await blob('index.js', 'export const operations = { a: 1 };\n')],
    });
    // The set changed: not answered until the new bundle is there (no key on stale code).
    assert.equal(bundles.extensionFiles('core'), undefined);
    await bundles.get();
    assert.deepEqual(bundles.extensionFiles('core'), core);
    assert.equal(bundles.extensionFiles('mine')?.[0]?.path, 'index.js');
    store.removeExtension('mine');
    await bundles.get();
    assert.equal(bundles.extensionFiles('mine'), undefined);
  });

  it('answers the host runtime’s files (package.json, host/…), the same while it is the same', async () => {
    const bundle = await bundles.get();
    const host = bundles.hostFiles();
    assert.ok(host !== undefined);
    assert.deepEqual(
      host,
      bundle.manifest.files
        .filter((f) => f.path === 'package.json' || f.path.startsWith('host/'))
        .map((f) => ({ path: f.path, sha256: f.sha256, mode: f.mode })),
    );
    assert.ok(host.some((f) => f.path === 'host/main.js'));
    assert.ok(!host.some((f) => f.path.startsWith('extensions/')));
    // A new extension set is a new bundle, but the same host runtime.
    store.putExtension({ name: 'other', version: '1', files: [await blob('index.js', '1;\n')] });
    assert.equal(bundles.hostFiles(), undefined, 'not answered while the bundle computes');
    await bundles.get();
    assert.deepEqual(bundles.hostFiles(), host);
    store.removeExtension('other');
    await bundles.get();
  });

  it('reads no file list on a call that finds the sets unchanged', async () => {
    await register('f'.repeat(64), { glibc: '2.17' }, [await blob('bin/gcc', 'f driver', 0o755)]);
    const first = await bundles.get();
    const get = store.cache.getToolchain.bind(store.cache);
    let reads = 0;
    store.cache.getToolchain = (id) => (reads++, get(id));
    try {
      for (let i = 0; i < 3; i++) assert.equal(await bundles.get(), first);
      assert.equal(bundles.stale(), false);
      assert.equal(reads, 0, 'no file lists read');
    } finally {
      store.cache.getToolchain = get;
    }
    store.cache.removeToolchain('f'.repeat(64));
    assert.equal(bundles.stale(), true, 'a removal is noticed');
    await bundles.get();
  });

  it('ships the built-in core and cc extensions, and no user extension by their names', async () => {
    const bundle = await bundles.get();
    const paths = bundle.manifest.files.map((f) => f.path);
    for (const name of ['core', 'cc']) {
      assert.ok(paths.includes(`extensions/${name}/index.js`), `${name} is shipped`);
      assert.ok(paths.includes(`extensions/${name}/muster-extension.json`));
    }
    assert.ok(!paths.some((p) => p.startsWith('toolchains/')), 'no toolchain registered yet');

    // A user extension stored under a built-in's name (older coordinators let core through only).
    store.putExtension({
      name: 'cc',
      version: 'evil',
      files: [await blob('index.js', 'export const operations = {};\n')],
    });
    bundles.invalidate();
    const again = await bundles.get();
    assert.equal(again.versionId, bundle.versionId, 'the stored "cc" is not shipped');
    store.removeExtension('cc');
  });

  it('puts a registered toolchain under toolchains/<id>/ with its description, as a new version', async () => {
    const before = await bundles.get();
    const id = 'a'.repeat(64);
    const files = [
      await blob('bin/gcc', 'the driver', 0o755),
      await blob('lib/gcc/x86_64-linux-gnu/12/cc1', 'the compiler proper', 0o755),
      await blob('x86_64-linux-gnu/bin/as', 'the assembler', 0o755),
      await blob('lib/shared/libisl.so.23', 'a library', 0o755),
    ];
    await register(
      id,
      { driver: 'bin/gcc', triple: 'x86_64-linux-gnu', version: '12.2.0', glibc: '2.36', other: 1 },
      files,
    );
    // Noticed without an invalidate(): a backup's rows come by replication, not through a route.
    const bundle = await bundles.get();
    assert.notEqual(bundle.versionId, before.versionId);
    // What an agent synced with it can run: this toolchain (pool/bundle-toolchains.ts).
    assert.deepEqual([...toolchainsOf(before)], []);
    assert.deepEqual([...toolchainsOf(bundle)], [id]);

    for (const file of files) {
      const shipped = bundle.manifest.files.find((f) => f.path === `toolchains/${id}/${file.path}`);
      assert.deepEqual(shipped, { ...file, path: `toolchains/${id}/${file.path}` });
      // Its bytes come from the coordinator's blob store: nothing is hashed or copied again.
      assert.deepEqual(bundle.blobs.get(file.sha256)?.source, { file: blobs.pathOf(file.sha256) });
    }
    const described = bundle.manifest.files.find((f) => f.path === `toolchains/${id}.json`);
    assert.ok(described !== undefined);
    assert.equal(described.mode, 0o644);
    const source = bundle.blobs.get(described.sha256)?.source;
    assert.ok(source !== undefined && 'data' in source);
    assert.equal(sha(source.data), described.sha256);
    assert.equal(source.data.length, described.size);
    assert.deepEqual(JSON.parse(source.data.toString()), {
      id,
      glibc: '2.36',
      driver: 'bin/gcc',
      triple: 'x86_64-linux-gnu',
      version: '12.2.0',
    });
    // Everything else is as before: the host and the extensions did not change.
    const others = (b: Bundle) => b.manifest.files.filter((f) => !f.path.startsWith('toolchains/'));
    assert.deepEqual(others(bundle), others(before));
  });

  it('lays toolchains out where the cc extension looks for them, from its own place', async () => {
    const bundle = await bundles.get();
    // What the agent's VersionStore does, by hand: every file at its path.
    const version = join(dir, 'version');
    for (const file of bundle.manifest.files) {
      const to = join(version, file.path);
      await mkdir(dirname(to), { recursive: true });
      const source = bundle.blobs.get(file.sha256)?.source;
      assert.ok(source !== undefined, file.path);
      if ('file' in source) await copyFile(source.file, to);
      else await writeFile(to, source.data);
    }
    const cc = (await import(
      pathToFileURL(join(version, 'extensions', 'cc', 'index.js')).href
    )) as {
      bundleToolchains: string;
      operations: Record<string, unknown>;
    };
    assert.equal(cc.bundleToolchains, join(version, 'toolchains') + '/');
    assert.equal(typeof cc.operations.compile, 'function');
    const description = JSON.parse(
      await readFile(join(cc.bundleToolchains, `${'a'.repeat(64)}.json`), 'utf8'),
    ) as { glibc: string };
    assert.equal(description.glibc, '2.36');
    assert.equal(
      await readFile(join(cc.bundleToolchains, 'a'.repeat(64), 'bin', 'gcc'), 'utf8'),
      'the driver',
    );
  });

  it('leaves out a toolchain it cannot ship, and the bundle stays good', async () => {
    const before = await bundles.get();
    // No glibc requirement: an agent could not tell whether it can run it.
    await register('b'.repeat(64), { driver: 'bin/gcc' }, [
      await blob('bin/gcc', 'b driver', 0o755),
    ]);
    await register('c'.repeat(64), { glibc: 'new' }, [await blob('bin/gcc', 'c driver', 0o755)]);
    // A file that is also a directory of another: the manifest would refuse it.
    await register('d'.repeat(64), { glibc: '2.17' }, [
      await blob('bin', 'a file', 0o644),
      await blob('bin/gcc', 'd driver', 0o755),
    ]);
    // A path too long under the prefix.
    await register('e'.repeat(64), { glibc: '2.17' }, [
      await blob(`${'x'.repeat(1000)}/gcc`, 'e driver', 0o755),
    ]);
    const bundle = await bundles.get();
    assert.equal(bundle.versionId, before.versionId, 'none of them was shipped');
    assert.deepEqual(
      [...toolchainsOf(bundle)],
      [...toolchainsOf(before)],
      'nor can agents run them',
    );
    assert.equal(await bundles.get(), bundle, 'computed once while nothing changes');
  });

  it(`ships the ${SHIPPED_TOOLCHAINS.count} most recently used toolchains, not the first registered`, async () => {
    const shippedIds = (b: Bundle) =>
      new Set(
        b.manifest.files.flatMap(
          (f) => /^toolchains\/([0-9a-f]{64})\.json$/.exec(f.path)?.[1] ?? [],
        ),
      );
    const ids: string[] = [];
    for (let i = 0; i < SHIPPED_TOOLCHAINS.count + 2; i++) {
      const id = sha(Buffer.from(`toolchain ${i}`));
      ids.push(id);
      // Four users' (one user's take at most half of what ships).
      await register(
        id,
        { glibc: '2.17' },
        [await blob('bin/gcc', `driver ${i}`, 0o755)],
        `u${i % 4}`,
      );
    }
    // A registration is a use: the newest 32 go, the two first of them and older ones do not.
    let shipped = shippedIds(await bundles.get());
    assert.deepEqual([...shipped].sort(), ids.slice(2).sort());
    assert.ok(!shipped.has('a'.repeat(64)), 'an older registration is not shipped any more');
    assert.deepEqual([...bundles.shippedToolchains()].sort(), [...shipped].sort());
    // A compile job names the first one: it is back, and the least recently used one goes.
    assert.equal(store.cache.touchToolchain(ids[0]!, '2026-12-07T00:00:00.000Z'), true);
    assert.equal(bundles.stale(), true);
    shipped = shippedIds(await bundles.get());
    assert.equal(shipped.size, SHIPPED_TOOLCHAINS.count);
    assert.ok(shipped.has(ids[0]!));
    assert.ok(!shipped.has(ids[2]!));
    // Used again soon after: the stamp is not rewritten (each write is replicated), and a change
    // of order among those shipped is no new bundle.
    assert.equal(store.cache.touchToolchain(ids[0]!, '2026-12-07T00:01:00.000Z'), false);
    assert.equal(store.cache.touchToolchain(ids[5]!, '2026-12-07T00:02:00.000Z'), true);
    assert.equal(bundles.stale(), false);
  });
});

describe('bundles: toolchains in use stay shipped', () => {
  it('a builder who registers many toolchains does not push out those others use', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'muster-bundles-use-'));
    let ms = Date.parse('2026-12-06T00:00:00Z');
    const store = openSqliteStore(':memory:', { now: () => new Date(ms++) });
    const blobs = new BlobStore(join(dir, 'blobs'));
    await blobs.init();
    try {
      const bundles = new BundleManager(store, blobs, { label: 'muster test' });
      const register = async (user: string, i: number) => {
        const data = Buffer.from(`${user} driver ${i}`);
        const file = { path: 'bin/gcc', sha256: sha(data), size: data.length, mode: 0o755 };
        const writer = await blobs.createWriter(file.sha256, data.length);
        await writer.write(0, data);
        await writer.finish();
        const id = sha(Buffer.from(`${user} toolchain ${i}`));
        store.cache.putToolchain(
          { id, files: [file], info: { glibc: '2.36' }, createdBy: user },
          () => file.size,
          undefined,
          TOOLCHAIN_ROWS,
        );
        return id;
      };
      // Several users' compilers, registered a while ago and used by their builds since.
      const inUse: string[] = [];
      for (let i = 0; i < SHIPPED_TOOLCHAINS.count - TOOLCHAIN_ROWS.perUser; i++)
        inUse.push(await register(`user${i % 4}`, i));
      ms = Date.parse('2026-12-06T06:00:00Z');
      for (const id of inUse) assert.ok(store.cache.touchToolchain(id));
      // Then one builder registers toolchain after toolchain: refused past its share.
      ms = Date.parse('2026-12-06T07:00:00Z');
      const squatted: string[] = [];
      let refused: unknown;
      for (let i = 0; i < SHIPPED_TOOLCHAINS.count; i++) {
        try {
          squatted.push(await register('mallory', i));
        } catch (err) {
          refused = err;
          break;
        }
      }
      assert.equal(squatted.length, TOOLCHAIN_ROWS.perUser);
      assert.ok(refused instanceof MusterError);
      assert.equal(refused.code, 'TOO_MANY_TOOLCHAINS');
      assert.deepEqual(refused.details, { scope: 'user', limit: TOOLCHAIN_ROWS.perUser });
      const shipped = bundles.shippedToolchains();
      assert.ok(
        inUse.every((id) => shipped.has(id)),
        'every toolchain in use is still shipped',
      );
      assert.equal(shipped.size, SHIPPED_TOOLCHAINS.count);
    } finally {
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('one user’s toolchains take at most half of what ships, by bytes as by count', () => {
    let ms = Date.parse('2026-12-06T00:00:00Z');
    const store = openSqliteStore(':memory:', { now: () => new Date(ms++) });
    try {
      // Only the rows matter here (no bundle is laid out): the sizes are declared.
      const bundles = new BundleManager(store, new BlobStore('/nonexistent'), { label: 'test' });
      const register = (user: string, name: string, size: number): string => {
        const file = { path: 'bin/gcc', sha256: sha(Buffer.from(name)), size, mode: 0o755 };
        const id = sha(Buffer.from(`toolchain ${name}`));
        store.cache.putToolchain(
          { id, files: [file], info: { glibc: '2.36' }, createdBy: user },
          () => size,
        );
        return id;
      };
      const gib = 2 ** 30;
      const bobs = register('bob', 'bob gcc', gib);
      // Then mallory's, used more recently: one over half the bytes, and two that fit only one.
      const huge = register('mallory', 'huge', SHIPPED_TOOLCHAINS.bytes / 2 + 1);
      const first = register('mallory', 'first', 1.5 * gib);
      const second = register('mallory', 'second', 1.5 * gib);
      const shipped = bundles.shippedToolchains();
      assert.ok(shipped.has(bobs), 'bob’s toolchain is still shipped');
      assert.ok(!shipped.has(huge), 'over half the bytes: never shipped');
      assert.equal([second, first].filter((id) => shipped.has(id)).length, 1);
      assert.ok(shipped.has(second), 'the most recently used of hers that fits');
    } finally {
      store.close();
    }
  });
});
