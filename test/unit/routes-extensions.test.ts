/**
 * The extension routes with inject(): the built-in core and cc are listed with what the bundle
 * ships of them, and neither name can be taken by an extension a user adds.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ExtensionView } from '../../src/api/views/extensions.js';
import type { Bundle } from '../../src/protocol/client/bundle.js';
import { testApi, type TestApi } from '../helpers/api-context.js';

const file = (path: string, size: number) => ({ path, sha256: 'a'.repeat(64), size, mode: 0o644 });

describe('routes: extensions', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
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
