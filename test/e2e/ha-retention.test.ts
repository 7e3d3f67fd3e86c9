/**
 * Deleting builds with a backup selected (issue 14): a build an admin deletes on the primary, and
 * one Builds.Retention deletes there, go from the backup's copy too (replicated as deletions: the
 * two databases stay the same, replica-diff.ts), the backup's sweep then deletes their blobs from
 * its own blob store, and the backup standing by never runs a retention pass of its own.
 */
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { BuildView } from '../../src/api/views/builds.js';
import { cleanup, startAgent, waitFor } from '../helpers/agent-process.js';
import {
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, startBackup } from '../helpers/ha.js';
import { replicaDiff } from '../helpers/replica-diff.js';

after(async () => {
  await killCoordinators();
  await cleanup();
});

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

const blobFile = (c: StartedCoordinator, sha256: string) =>
  join(c.dataDir, 'blobs', sha256.slice(0, 2), sha256);

async function allExist(c: StartedCoordinator, hashes: string[], want: boolean): Promise<boolean> {
  for (const sha of hashes) if ((await exists(blobFile(c, sha))) !== want) return false;
  return true;
}

/** A build that upper-cases an uploaded input; its id and the hashes it lists. */
async function upperBuild(
  c: StartedCoordinator,
  text: string,
): Promise<{ id: number; blobs: string[] }> {
  const data = Buffer.from(text);
  const input = { path: 'in.txt', sha256: await c.putBlob(data), size: data.length, mode: 0o644 };
  const plan =
    'tasks:\n  upper:\n    run: tr a-z A-Z < in.txt > out.txt\n    inputs: [in.txt]\n    outputs: [out.txt]\n';
  const submitted = await c.api<BuildView>('POST', '/builds', { plan, files: [input] });
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  const done = await c.waitForBuild(submitted.body.id);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  return {
    id: done.id,
    blobs: [input.sha256, ...done.tasks.flatMap((t) => t.outputs.map((o) => o.sha256))],
  };
}

async function converged(primary: StartedCoordinator, backup: StartedCoordinator): Promise<void> {
  let diff: string[] = [];
  try {
    await waitFor(
      () => {
        diff = replicaDiff(primary, backup);
        return diff.length === 0;
      },
      30_000,
      'the backup to converge',
    );
  } catch (err) {
    throw new Error(`the backup's copy differs:\n${diff.join('\n')}`, { cause: err });
  }
}

describe('retention with a backup', () => {
  it('replicates deletions to the backup, whose sweep then deletes the blobs', async () => {
    const agent = await startAgent();
    const args = [...FAST, '--blob-retention', '2s'];
    const primary = await startCoordinator({ tls: true, args });
    await primary.addAgent('one', agent);
    const backup = await startBackup(primary, 'b1', ['--blob-retention', '2s']);
    await selectBackup(primary, backup, 'b1');

    const first = await upperBuild(primary, 'first input\n');
    const second = await upperBuild(primary, 'second input\n');
    assert.equal(first.blobs.length + second.blobs.length, 4);
    await converged(primary, backup);
    await waitFor(
      () => allExist(backup, [...first.blobs, ...second.blobs], true),
      30_000,
      'the backup to copy the blobs',
    );

    const deleted = await primary.api('DELETE', `/builds/${first.id}`);
    assert.equal(deleted.status, 204, JSON.stringify(deleted.body));
    await converged(primary, backup);
    assert.equal((await backup.api('GET', `/builds/${first.id}`)).status, 404);
    assert.equal((await backup.api('GET', `/builds/${second.id}`)).status, 200);
    await waitFor(
      () => allExist(backup, first.blobs, false),
      30_000,
      "the backup's sweep to delete the deleted build's blobs",
    );
    assert.ok(await allExist(backup, second.blobs, true));

    const set = await primary.api('PUT', '/settings/Builds.Retention', { value: '1s' });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    await waitFor(
      async () => (await primary.api('GET', `/builds/${second.id}`)).status === 404,
      30_000,
      'retention on the primary',
    );
    await converged(primary, backup);
    assert.equal((await backup.api('GET', `/builds/${second.id}`)).status, 404);
    await waitFor(
      () => allExist(backup, second.blobs, false),
      30_000,
      "the backup's sweep to delete the retained build's blobs",
    );
    const pass = (l: Record<string, unknown>) =>
      l.msg === 'deleted builds older than the retention';
    assert.ok(primary.logs.some(pass));
    assert.ok(!backup.logs.some(pass), 'a backup standing by runs no retention pass');
  });
});
