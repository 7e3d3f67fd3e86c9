/**
 * The toolchain routes (src/coordinator/api/toolchain-routes.ts) with inject(), over the real
 * cache store and fake blobs of known sizes: the caps on registrations, a toolchain agents could
 * not lay out refused, admins listing and removing toolchains (agents resynced), and a compile
 * job stamping the last use of the toolchain it names.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import type { ToolchainView } from '../../src/api/views/compile.js';
import { toolchainIdOf } from '../../src/common/toolchain-id.js';
import { TOOLCHAIN_ROWS } from '../../src/coordinator/store/cache.js';
import { waitFor } from '../helpers/agent-process.js';
import { testApi, type TestApi } from '../helpers/api-context.js';

interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
const GCC = { path: 'bin/gcc', sha256: sha('gcc'), size: 900, mode: 0o755 };
const CC1 = { path: 'libexec/cc1', sha256: sha('cc1'), size: 30_000, mode: 0o755 };

/** A registration body and its id: `version` tells toolchains apart. */
function toolchain(version: string, files = [GCC, CC1]) {
  const info = { driver: 'bin/gcc', triple: 'x86_64-linux-gnu', version, glibc: '2.36' };
  return { id: toolchainIdOf({ ...info, files }), body: { files, info } };
}

describe('routes: toolchains', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  /** A test API whose blobs all exist, with a bundle source the test steers. */
  async function start(
    bundle = { stale: false, shipped: new Set<string>() },
    /** While set, the next bundle made waits for it (cleared by that call). */
    gate: { next?: Promise<void> } = {},
  ) {
    const sizes = new Map(
      [GCC, CC1, { sha256: sha('bin'), size: 4 }].map((f) => [f.sha256, f.size]),
    );
    const calls: string[] = [];
    api = await testApi((defaults) => ({
      blobs: {
        ...defaults.blobs,
        sizeOf: async (h) => sizes.get(h),
        sizeOfNow: (h) => sizes.get(h),
      },
      bundles: {
        get: async (...args) => {
          calls.push('get');
          const wait = gate.next;
          gate.next = undefined;
          await wait;
          return defaults.bundles.get(...args);
        },
        invalidate: () => void calls.push('invalidate'),
        stale: () => bundle.stale,
        shippedToolchains: () => bundle.shipped,
      },
    }));
    return { api, calls, bundle };
  }

  it('refuse a registration past a user’s share, and one agents could not lay out', async () => {
    const { api } = await start();
    for (let i = 0; i < TOOLCHAIN_ROWS.perUser; i++) {
      const { id, body } = toolchain(`12.${i}`);
      const put = await api.call('PUT', `/api/v1/toolchains/${id}`, { token: api.admin, body });
      assert.equal(put.status, 201, JSON.stringify(put.body));
    }
    const { id, body } = toolchain('13.0');
    const refused = await api.call('PUT', `/api/v1/toolchains/${id}`, { token: api.admin, body });
    assert.equal(refused.status, 429);
    const error = (refused.body as ErrorBody).error;
    assert.equal(error.code, 'TOO_MANY_TOOLCHAINS');
    assert.deepEqual(error.details, { scope: 'user', limit: TOOLCHAIN_ROWS.perUser });
    assert.match(error.message, /muster toolchains remove/);
    // One already registered is no new row: asking again still works.
    const known = toolchain('12.0');
    const again = await api.call('PUT', `/api/v1/toolchains/${known.id}`, {
      token: api.admin,
      body: known.body,
    });
    assert.equal(again.status, 200);

    // A file that is also the directory of another: refused before anything is stored.
    const clash = toolchain('1', [{ path: 'bin', sha256: sha('bin'), size: 4, mode: 0o644 }, GCC]);
    api.store.cache.removeToolchain(known.id);
    const unshippable = await api.call('PUT', `/api/v1/toolchains/${clash.id}`, {
      token: api.admin,
      body: clash.body,
    });
    assert.equal(unshippable.status, 400);
    assert.equal((unshippable.body as ErrorBody).error.code, 'VALIDATION_FAILED');
    assert.equal(api.store.cache.getToolchain(clash.id), undefined);
  });

  it('answer a registration with the row committed, even when an admin removes it at once', async () => {
    let open = (): void => undefined;
    const gate: { next?: Promise<void> } = { next: new Promise<void>((r) => (open = r)) };
    const { api } = await start(undefined, gate);
    const { id, body } = toolchain('12.2.0');
    // The registration waits in the bundle it makes; the removal lands meanwhile.
    const put = api.call('PUT', `/api/v1/toolchains/${id}`, { token: api.admin, body });
    await waitFor(() => api.store.cache.getToolchain(id) !== undefined);
    const removed = await api.call('DELETE', `/api/v1/toolchains/${id}`, { token: api.admin });
    assert.equal(removed.status, 204);
    open();
    const registered = await put;
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    assert.equal((registered.body as ToolchainView).id, id);
    assert.equal(api.store.cache.getToolchain(id), undefined);
  });

  it('let an admin list and remove toolchains; agents get a bundle without it', async () => {
    const { api, calls, bundle } = await start();
    const first = toolchain('12.2.0');
    const second = toolchain('13.1.0');
    for (const { id, body } of [first, second]) {
      // Stamps are milliseconds: the second is registered in a later one, so that it is the
      // most recently used (two in the same millisecond list by id).
      const before = Date.now();
      while (Date.now() === before) await new Promise((resolve) => setTimeout(resolve, 1));
      await api.call('PUT', `/api/v1/toolchains/${id}`, { token: api.admin, body });
    }
    bundle.shipped.add(second.id);
    const viewer = await api.call('GET', '/api/v1/toolchains', { token: api.viewer });
    assert.equal(viewer.status, 403);
    const listed = await api.call('GET', '/api/v1/toolchains', { token: api.admin });
    assert.equal(listed.status, 200);
    const list = listed.body as ToolchainView[];
    // Most recently used first.
    assert.deepEqual(
      list.map((t) => [t.id, t.createdBy, t.files, t.bytes, t.shipped]),
      [
        [second.id, 'admin', 2, GCC.size + CC1.size, true],
        [first.id, 'admin', 2, GCC.size + CC1.size, false],
      ],
    );
    assert.equal(list[0]?.lastUsedAt, list[0]?.createdAt);
    assert.deepEqual(list[0]?.info, second.body.info);
    // Any user reads one, with the same fields.
    const one = await api.call('GET', `/api/v1/toolchains/${second.id}`, { token: api.viewer });
    assert.deepEqual(one.body, list[0]);

    const byViewer = await api.call('DELETE', `/api/v1/toolchains/${first.id}`, {
      token: api.viewer,
    });
    assert.equal(byViewer.status, 403);
    calls.length = 0;
    api.agents.calls.length = 0;
    const removed = await api.call('DELETE', `/api/v1/toolchains/${first.id}`, {
      token: api.admin,
    });
    assert.equal(removed.status, 204);
    assert.deepEqual(calls, ['invalidate', 'get']);
    assert.deepEqual(api.agents.calls, ['resync']);
    assert.equal(api.store.cache.getToolchain(first.id), undefined);
    const gone = await api.call('GET', `/api/v1/toolchains/${first.id}`, { token: api.viewer });
    assert.equal(gone.status, 404);
    const twice = await api.call('DELETE', `/api/v1/toolchains/${first.id}`, { token: api.admin });
    assert.equal(twice.status, 404);
    const bad = await api.call('DELETE', '/api/v1/toolchains/nope', { token: api.admin });
    assert.equal(bad.status, 400);
    // One audit row: the removal that succeeded, not the refused ones.
    assert.deepEqual(
      api.store.audit.list().map((r) => [r.actor, r.action, r.target]),
      [['admin', 'toolchain.remove', first.id]],
    );
  });

  it('stamp the last use of the toolchain a compile job names, and resync when that changes what ships', async () => {
    const { api, calls, bundle } = await start();
    const { id, body } = toolchain('12.2.0');
    // Registered long ago (a failback's row keeps its stamps; the route would stamp now).
    api.store.cache.putToolchain(
      { id, ...body, createdBy: 'ada' },
      (h) => [GCC, CC1].find((f) => f.sha256 === h)?.size,
      '2020-01-01T00:00:00.000Z',
    );
    const job = {
      label: 'gcc -c a.c',
      input: {
        toolchain: id,
        driver: 'bin/gcc',
        args: ['-c', { workPath: 'a.c' }, '-o', 'a.o'],
        cwd: '',
        debugPrefixMaps: [],
        env: {},
        outputs: [{ name: 'object', path: 'a.o' }],
      },
      source: { path: 'a.c', sha256: sha('text'), size: 4 },
    };
    bundle.stale = true;
    calls.length = 0;
    api.agents.calls.length = 0;
    // No such session: the job is refused, but the use of its toolchain is noted.
    const answer = await api.call('POST', '/api/v1/compile-sessions/999/jobs', {
      token: api.admin,
      body: job,
    });
    assert.equal(answer.status, 404, JSON.stringify(answer.body));
    const used = api.store.cache.getToolchain(id)?.lastUsedAt ?? '';
    assert.ok(used > '2026-01-01', used);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(calls, ['get']);
    assert.deepEqual(api.agents.calls, ['resync']);
    // Again at once: not stamped again (each stamp is replicated), nothing to push.
    calls.length = 0;
    await api.call('POST', '/api/v1/compile-sessions/999/jobs', { token: api.admin, body: job });
    assert.equal(api.store.cache.getToolchain(id)?.lastUsedAt, used);
    assert.deepEqual(calls, []);
  });
});
