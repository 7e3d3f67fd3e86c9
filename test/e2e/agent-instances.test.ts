/**
 * Many coordinators on one agent: clients of different versions hammer one real agent process
 * at once, properly keyed and misconfigured to one instance key, and every result must come
 * from the client's own version. Instances are keyed by instance id, else by source IP.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createBundle, coreExtensionDir, type Bundle } from '../../src/protocol/client/bundle.js';
import type { AgentClientOptions } from '../../src/protocol/client/agent-client.js';
import {
  cleanup,
  cliPath,
  makeTempDir,
  startAgent,
  type StartedAgent,
} from '../helpers/agent-process.js';
import { writeProbeExtension } from '../helpers/extensions.js';

const ROUNDS = 50;

describe('one agent, many coordinators', () => {
  let agent: StartedAgent;
  let dir: string;
  let v1: Bundle;
  let v2: Bundle;

  before(async () => {
    dir = await makeTempDir();
    agent = await startAgent();
    v1 = await createBundle({
      extensionDirs: [coreExtensionDir, await writeProbeExtension(dir, 'v1')],
      label: 'coordinator 1.0',
    });
    v2 = await createBundle({
      extensionDirs: [coreExtensionDir, await writeProbeExtension(dir, 'v2')],
      label: 'coordinator 2.0',
    });
    assert.notEqual(v1.versionId, v2.versionId);
  });

  after(() => cleanup([dir]));

  /** One coordinator's loop: connect, sync its version, run its extension's operation. */
  async function hammer(
    name: string,
    bundle: Bundle,
    marker: string,
    overrides: Partial<AgentClientOptions>,
  ): Promise<Set<string>> {
    const keys = new Set<string>();
    for (let round = 0; round < ROUNDS; round++) {
      const client = await agent.connect(overrides);
      try {
        keys.add(client.instance.key);
        const sync = await client.sync(bundle);
        assert.equal(sync.versionId, bundle.versionId);
        const taskId = `${name}-${round}`;
        const output: string[] = [];
        const result = await client.runTask(
          { taskId, extension: 'probe', operation: 'whoami' },
          (chunk) => output.push(chunk.data.toString()),
        );
        assert.equal(result.status, 'succeeded', JSON.stringify(result));
        const value = result.value as { marker: string; onDisk: string };
        assert.equal(value.marker, marker, `${name} round ${round} ran another version's code`);
        assert.equal(value.onDisk, marker, `${name} round ${round} read another version's files`);
        assert.equal(output.join(''), `${marker}\n`);
        await client.releaseTask(taskId);
      } finally {
        client.close();
      }
    }
    return keys;
  }

  it('keeps two versions apart when each coordinator has its own instance id', async () => {
    const [keysA, keysB] = await Promise.all([
      hammer('a', v1, 'v1', { instanceId: 'coordinator-a', productVersion: '1.0.0' }),
      hammer('b', v2, 'v2', { instanceId: 'coordinator-b', productVersion: '2.0.0' }),
    ]);
    assert.deepEqual([...keysA], ['muster@id:coordinator-a']);
    assert.deepEqual([...keysB], ['muster@id:coordinator-b']);
  });

  it('keeps two versions apart even when both are misconfigured to one instance key', async () => {
    const [keysA, keysB] = await Promise.all([
      hammer('same-a', v1, 'v1', { instanceId: 'shared', productVersion: '1.0.0' }),
      hammer('same-b', v2, 'v2', { instanceId: 'shared', productVersion: '2.0.0' }),
    ]);
    assert.deepEqual([...keysA], ['muster@id:shared']);
    assert.deepEqual([...keysB], ['muster@id:shared']);
  });

  it('keys instances by id, else by source IP', async () => {
    const open = async (overrides: Partial<AgentClientOptions>): Promise<string> => {
      const client = await agent.connect(overrides);
      client.close();
      return client.instance.key;
    };
    const withIdA = await open({ localAddress: '127.0.0.2', instanceId: 'nat-a' });
    const withIdB = await open({ localAddress: '127.0.0.2', instanceId: 'nat-b' });
    const noId2 = await open({ localAddress: '127.0.0.2' });
    const noId2Again = await open({ localAddress: '127.0.0.2' });
    const noId3 = await open({ localAddress: '127.0.0.3' });
    const otherProduct = await open({ localAddress: '127.0.0.3', product: 'otter' });
    assert.notEqual(withIdA, withIdB, 'two ids behind one IP are two instances');
    assert.equal(noId2, 'muster@ip:127.0.0.2');
    assert.equal(noId2Again, noId2, 'the same IP without an id is the same instance');
    assert.equal(noId3, 'muster@ip:127.0.0.3');
    assert.equal(otherProduct, 'otter@ip:127.0.0.3', 'products are isolated from each other');

    const { stdout } = await promisify(execFile)(process.execPath, [
      cliPath,
      'agent',
      'instances',
      '--data',
      agent.dataDir,
      '--json',
    ]);
    const listed = JSON.parse(stdout) as {
      product: string;
      key: string;
      versions: string[];
      lastSeen: string;
    }[];
    const keys = listed.map((i) => i.key);
    for (const key of [withIdA, withIdB, noId2, noId3, otherProduct, 'muster@id:shared']) {
      assert.ok(keys.includes(key), `${key} listed`);
    }
    const shared = listed.find((i) => i.key === 'muster@id:shared')!;
    assert.deepEqual(new Set(shared.versions), new Set([v1.versionId, v2.versionId]));
    assert.ok(!Number.isNaN(Date.parse(shared.lastSeen)));
  });
});
