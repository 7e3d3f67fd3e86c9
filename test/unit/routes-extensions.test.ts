/**
 * The extension routes with inject(): the built-in core and cc are listed with what the bundle
 * ships of them, and neither name can be taken by an extension a user adds.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ExtensionView } from '../../src/api/views/extensions.js';
import type { Bundle } from '../../src/protocol/client/bundle.js';
import { waitFor } from '../helpers/agent-process.js';
import { testApi, type TestApi } from '../helpers/api-context.js';

const file = (path: string, size: number) => ({ path, sha256: 'a'.repeat(64), size, mode: 0o644 });

describe('routes: extensions', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('answers an add with the row committed, even when an admin removes it at once', async () => {
    let open = (): void => undefined;
    let gate: Promise<void> | undefined = new Promise<void>((r) => (open = r));
    api = await testApi((defaults) => ({
      bundles: {
        ...defaults.bundles,
        // The add waits in the bundle it makes (the first one asked for); the removal lands then.
        get: async (...args) => {
          const wait = gate;
          gate = undefined;
          await wait;
          return defaults.bundles.get(...args);
        },
      },
    }));
    const files = [file('muster-extension.json', 7)];
    api.present.add(files[0]!.sha256);
    const added = api.call('POST', '/api/v1/extensions', {
      token: api.admin,
      body: { name: 'lint', version: '2', files },
    });
    const stored = (): boolean => api!.store.listExtensions().some((e) => e.name === 'lint');
    await waitFor(stored);
    const removed = await api.call('DELETE', '/api/v1/extensions/lint', { token: api.admin });
    assert.equal(removed.status, 204);
    open();
    const answer = await added;
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const view = answer.body as ExtensionView;
    assert.deepEqual([view.name, view.version, view.files, view.bytes], ['lint', '2', 1, 7]);
    assert.equal(stored(), false);
  });

  it('lists the built-in core and cc, and refuses an extension by either name', async () => {
    const bundle: Bundle = {
      manifest: {
        entry: 'host/main.js',
        files: [
          file('host/main.js', 1),
          file('extensions/core/index.js', 10),
          file('extensions/core/muster-extension.json', 5),
          file('extensions/cc/index.js', 20),
          file('extensions/ccx/index.js', 100), // another name that starts alike
          file('toolchains/' + 'b'.repeat(64) + '/bin/gcc', 1000),
        ],
      },
      versionId: 'test',
      blobs: new Map(),
    };
    api = await testApi((defaults) => ({
      bundles: { ...defaults.bundles, get: async () => bundle },
    }));
    const listed = await api.call('GET', '/api/v1/extensions', { token: api.viewer });
    assert.equal(listed.status, 200);
    assert.deepEqual(
      (listed.body as ExtensionView[]).map((e) => [e.name, e.builtIn, e.files, e.bytes]),
      [
        ['cc', true, 1, 20],
        ['core', true, 2, 15],
      ],
    );
    for (const name of ['cc', 'core']) {
      const added = await api.call('POST', '/api/v1/extensions', {
        token: api.admin,
        body: { name, version: '9', files: [file('muster-extension.json', 1)] },
      });
      assert.equal(added.status, 409, JSON.stringify(added.body));
      assert.match(JSON.stringify(added.body), new RegExp(`${name} is built in`));
    }
  });
});
