/**
 * What survives what: cached files survive an agent restart (nothing is sent twice), tasks
 * survive their coordinator's disconnect (output and result are collected on re-attach),
 * ended tasks wait for the grace period, unused versions and blobs are collected.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createBundle, coreExtensionDir } from '../../src/protocol/client/bundle.js';
import type { OutputChunk } from '../../src/protocol/client/agent-client.js';
import { cleanup, makeTempDir, startAgent, waitFor } from '../helpers/agent-process.js';
import { writeProbeExtension } from '../helpers/extensions.js';

const dirs: string[] = [];
after(() => cleanup(dirs));

async function tempDir(): Promise<string> {
  const dir = await makeTempDir();
  dirs.push(dir);
  return dir;
}

describe('agent restart', () => {
  it('reuses cached files: a re-sync after restart sends no blob, a new version only what changed', async () => {
    const dataDir = await tempDir();
    const extDir = await tempDir();
    const probe = await writeProbeExtension(extDir, 'one');
    const bundle = await createBundle({ extensionDirs: [coreExtensionDir, probe] });

    let agent = await startAgent({ dataDir });
    let client = await agent.connect();
    const first = await client.sync(bundle);
    assert.equal(first.sentBlobs, bundle.blobs.size);
    client.close();
    assert.equal(await agent.stop(), 0, 'a SIGTERM shuts the agent down cleanly');

    agent = await startAgent({ dataDir });
    client = await agent.connect();
    const again = await client.sync(bundle);
    assert.equal(again.sentBlobs, 0);
    assert.equal(again.sentBytes, 0);
    const result = await client.runTask({
      taskId: 'after-restart',
      extension: 'probe',
      operation: 'whoami',
    });
    assert.equal(result.status, 'succeeded');

    // One file changed: only its blob travels.
    await writeFile(join(probe, 'marker.txt'), 'two');
    const changed = await createBundle({ extensionDirs: [coreExtensionDir, probe] });
    const delta = await client.sync(changed);
    assert.equal(delta.sentBlobs, 1);
    assert.equal(delta.sentBytes, 3);
    client.close();
    await agent.stop();
  });
});

describe('tasks outlive connections', () => {
  it('collects output and result of a task whose coordinator disconnected mid-run', async () => {
    const agent = await startAgent();
    const bundle = await createBundle();
    let client = await agent.connect({ instanceId: 'reattach' });
    await client.sync(bundle);
    const seen: OutputChunk[] = [];
    const started = new Promise<void>((resolve) => {
      void client.startTask(
        {
          taskId: 'long-1',
          extension: 'core',
          operation: 'run',
          input: {
            command: 'echo start; sleep 1; echo middle; sleep 0.5; echo end > result.txt; echo end',
          },
          outputs: ['result.txt'],
        },
        (chunk) => {
          seen.push(chunk);
          resolve();
        },
      );
    });
    await started;
    client.close(); // the coordinator goes away mid-task

    client = await agent.connect({ instanceId: 'reattach' });
    const tasks = await client.listTasks();
    assert.equal(tasks.find((t) => t.taskId === 'long-1')?.state, 'running');
    const replay: OutputChunk[] = [];
    const attached = await client.attachTask('long-1', 0, (chunk) => replay.push(chunk));
    const result = await attached.result;
    assert.equal(result.status, 'succeeded', JSON.stringify(result));
    assert.equal(replay.map((c) => c.data.toString()).join(''), 'start\nmiddle\nend\n');
    assert.deepEqual(
      replay.map((c) => c.seq),
      replay.map((_, i) => i),
      'output is replayed in order without gaps',
    );

    // The output file is in the agent's store and downloads intact.
    const output = result.outputs?.[0];
    assert.equal(output?.path, 'result.txt');
    const bytes = await client.getBlob(output.sha256);
    assert.equal(bytes?.toString(), 'end\n');
    const target = join(await tempDir(), 'out', 'result.txt');
    await client.getBlob(output.sha256, target);
    assert.equal(await readFile(target, 'utf8'), 'end\n');

    // Re-attaching from a later seq replays only the rest.
    const tail: OutputChunk[] = [];
    const second = await client.attachTask('long-1', 1, (chunk) => tail.push(chunk));
    assert.equal((await second.result).status, 'succeeded');
    assert.deepEqual(
      tail.map((c) => c.seq),
      replay.slice(1).map((c) => c.seq),
    );

    await client.releaseTask('long-1');
    assert.deepEqual(await client.listTasks(), []);
    await assert.rejects(client.attachTask('long-1', 0), { code: 'TASK_NOT_FOUND' });
    client.close();
    await agent.stop();
  });

  it('keeps large output spilled to disk and replays all of it', async () => {
    const agent = await startAgent();
    const client = await agent.connect({ instanceId: 'spill' });
    await client.sync(await createBundle());
    // 3 MB of numbered lines: more than the in-memory part of a task's output.
    const task = await client.startTask({
      taskId: 'big',
      extension: 'core',
      operation: 'run',
      input: { command: 'seq 1 400000' },
    });
    assert.equal((await task.result).status, 'succeeded');
    client.close();

    const again = await agent.connect({ instanceId: 'spill' });
    const chunks: OutputChunk[] = [];
    const replay = await again.attachTask('big', 0, (chunk) => chunks.push(chunk));
    await replay.result;
    const text = Buffer.concat(chunks.map((c) => c.data)).toString();
    const expected = Array.from({ length: 400000 }, (_, i) => `${i + 1}\n`).join('');
    assert.equal(text.length, expected.length);
    assert.equal(
      createHash('sha256').update(text).digest('hex'),
      createHash('sha256').update(expected).digest('hex'),
    );
    again.close();
    await agent.stop();
  });

  it('forgets an unclaimed task after the grace period', async () => {
    const agent = await startAgent({ args: ['--task-grace', '1s'] });
    const client = await agent.connect({ instanceId: 'grace' });
    await client.sync(await createBundle());
    await client.runTask({ taskId: 'unclaimed', extension: 'core', operation: 'noop' });
    await waitFor(
      async () => (await client.listTasks()).length === 0,
      15_000,
      'the task to expire',
    );
    await assert.rejects(client.attachTask('unclaimed', 0), { code: 'TASK_NOT_FOUND' });
    client.close();
    await agent.stop();
  });
});

describe('garbage collection', () => {
  it('removes versions no one uses and the blobs only they referenced', async () => {
    const agent = await startAgent({
      args: ['--version-retention', '0ms', '--blob-retention', '0ms', '--gc-interval', '500ms'],
    });
    const extDir = await tempDir();
    const old = await createBundle({
      extensionDirs: [coreExtensionDir, await writeProbeExtension(extDir, 'old')],
    });
    const current = await createBundle({
      extensionDirs: [coreExtensionDir, await writeProbeExtension(extDir, 'new')],
    });
    const client = await agent.connect({ instanceId: 'gc' });
    await client.sync(old);
    await client.sync(current);
    const instanceDir = join(agent.dataDir, 'temp', 'instances', client.instance.dir);
    const blobPath = (sha: string): string =>
      join(agent.dataDir, 'temp', 'blobs', sha.slice(0, 2), sha);
    const onlyOld = [...old.blobs.keys()].filter((sha) => !current.blobs.has(sha));
    assert.ok(onlyOld.length > 0);
    await waitFor(
      () => !existsSync(join(instanceDir, 'versions', old.versionId)),
      15_000,
      'the old version to go',
    );
    await waitFor(
      () => onlyOld.every((sha) => !existsSync(blobPath(sha))),
      15_000,
      'the old blobs to go',
    );
    assert.ok(
      existsSync(join(instanceDir, 'versions', current.versionId)),
      'the current version stays',
    );
    for (const sha of current.blobs.keys())
      assert.ok(existsSync(blobPath(sha)), 'current blobs stay');
    // And the current version still works.
    const result = await client.runTask({
      taskId: 'still-works',
      extension: 'probe',
      operation: 'whoami',
    });
    assert.equal(result.status, 'succeeded');
    client.close();
    await agent.stop();
  });
});
