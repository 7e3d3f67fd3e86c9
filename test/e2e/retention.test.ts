/**
 * Retention deletes what it should and nothing else (issue 14), with a real coordinator and
 * agent: two builds run; `muster builds delete` deletes one (a running build is refused);
 * Builds.Retention set tiny deletes the other ended build and leaves the running one; the blobs
 * only the deleted builds listed (inputs and outputs) are collected by the sweep (a short
 * --blob-retention) while the running build's input stays; each deletion is in the audit log.
 */
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { AuditView } from '../../src/api/views/audit.js';
import type { BuildView } from '../../src/api/views/builds.js';
import { cleanup, makeTempDir, startAgent, waitFor } from '../helpers/agent-process.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

const dirs: string[] = [];
after(async () => {
  await killCoordinators();
  await cleanup(dirs);
});

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

function blobFile(c: StartedCoordinator, sha256: string): string {
  return join(c.dataDir, 'blobs', sha256.slice(0, 2), sha256);
}

/** Runs `tr a-z A-Z` over an uploaded input; the hashes the build lists (input, output) and its id. */
async function upperBuild(
  c: StartedCoordinator,
  name: string,
  text: string,
): Promise<{ id: number; blobs: string[] }> {
  const data = Buffer.from(text);
  const input = { path: 'in.txt', sha256: await c.putBlob(data), size: data.length, mode: 0o644 };
  const plan = `name: ${name}\ntasks:\n  upper:\n    run: tr a-z A-Z < in.txt > out.txt\n    inputs: [in.txt]\n    outputs: [out.txt]\n`;
  const submitted = await c.api<BuildView>('POST', '/builds', { plan, files: [input] });
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  const done = await c.waitForBuild(submitted.body.id);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  const outputs = done.tasks.flatMap((t) => t.outputs.map((o) => o.sha256));
  assert.equal(outputs.length, 1);
  return { id: done.id, blobs: [input.sha256, ...outputs] };
}

describe('retention', () => {
  it('deletes what it should and nothing else', async () => {
    const agent = await startAgent();
    const coordinator = await startCoordinator({ args: ['--blob-retention', '2s'] });
    await coordinator.addAgent('one', agent);
    const env = {
      MUSTER_CONFIG_DIR: await makeTempDir('muster-cli-'),
      MUSTER_URL: '',
      MUSTER_TOKEN: '',
    };
    dirs.push(env.MUSTER_CONFIG_DIR);
    const muster = (args: string[], input?: string): Promise<CliResult> =>
      runCli(args, { env, timeoutMs: 60_000, ...(input === undefined ? {} : { input }) });
    const login = await muster(
      ['login', coordinator.url, '--user', 'admin', '--password-stdin'],
      `${ADMIN_PASSWORD}\n`,
    );
    assert.equal(login.code, 0, login.stderr);

    const first = await upperBuild(coordinator, 'first', 'first input\n');
    const second = await upperBuild(coordinator, 'second', 'second input\n');
    const firstBlobs = first.blobs;
    const secondBlobs = second.blobs;
    for (const sha of [...firstBlobs, ...secondBlobs])
      assert.ok(await exists(blobFile(coordinator, sha)), sha);

    // A running build: deleting it is refused, and retention leaves it.
    const data = Buffer.from('kept\n');
    const keptInput = await coordinator.putBlob(data);
    const running = await coordinator.api<BuildView>('POST', '/builds', {
      plan: 'name: running\ntasks:\n  wait:\n    run: sleep 60\n    inputs: [in.txt]\n',
      files: [{ path: 'in.txt', sha256: keptInput, size: data.length, mode: 0o644 }],
    });
    assert.equal(running.status, 201, JSON.stringify(running.body));
    await coordinator.waitForTask(running.body.id, 'wait', 'running');
    const refused = await muster(['builds', 'delete', String(running.body.id)]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /BUILD_NOT_ENDED/);

    const deleted = await muster(['builds', 'delete', String(first.id)]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, `Build ${first.id} deleted\n`);
    assert.equal((await coordinator.api('GET', `/builds/${first.id}`)).status, 404);
    assert.equal((await coordinator.api('GET', `/builds/${first.id}/logs`)).status, 404);
    assert.equal((await coordinator.api('GET', `/builds/${second.id}`)).status, 200);
    await waitFor(
      async () => {
        for (const sha of firstBlobs) if (await exists(blobFile(coordinator, sha))) return false;
        return true;
      },
      30_000,
      "the deleted build's blobs to be swept",
    );
    for (const sha of secondBlobs) assert.ok(await exists(blobFile(coordinator, sha)), sha);

    const set = await muster(['settings', 'set', 'Builds.Retention', '1s']);
    assert.equal(set.code, 0, set.stderr);
    await waitFor(
      async () => (await coordinator.api('GET', `/builds/${second.id}`)).status === 404,
      30_000,
      'retention to delete the second build',
    );
    await waitFor(
      async () => {
        for (const sha of secondBlobs) if (await exists(blobFile(coordinator, sha))) return false;
        return true;
      },
      30_000,
      "the second build's blobs to be swept",
    );
    const stillRunning = await coordinator.api<BuildView>('GET', `/builds/${running.body.id}`);
    assert.equal(stillRunning.status, 200);
    assert.equal(stillRunning.body.status, 'running');
    assert.ok(await exists(blobFile(coordinator, keptInput)));

    const audit = (await coordinator.api<AuditView[]>('GET', '/audit')).body;
    const byHand = audit.filter((r) => r.action === 'build.delete');
    assert.deepEqual(
      byHand.map((r) => [r.actor, r.target]),
      [['admin', String(first.id)]],
    );
    assert.ok(byHand[0]?.ip);
    const retained = audit.filter((r) => r.action === 'builds.retention');
    assert.ok(retained.length >= 1);
    assert.ok(retained.every((r) => r.actorKind === 'system'));
    assert.equal(
      retained.reduce((n, r) => n + Number(r.details.deleted), 0),
      1,
    );
    assert.ok(
      coordinator.logs.some(
        (l) => l.msg === 'deleted builds older than the retention' && l.deleted === 1,
      ),
    );

    // The data dir's disk in /metrics: the database and the blobs still kept.
    const metrics = await (await fetch(`${coordinator.url}/metrics`)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    assert.ok(gauge('muster_data_dir_bytes') > gauge('muster_blob_store_bytes'), metrics);
    assert.ok(gauge('muster_blob_store_bytes') >= data.length);
    assert.ok(gauge('muster_data_dir_filesystem_free_bytes') > 0);
    assert.ok(
      gauge('muster_data_dir_filesystem_size_bytes') >=
        gauge('muster_data_dir_filesystem_free_bytes'),
    );

    const cancelled = await coordinator.api('POST', `/builds/${running.body.id}/cancel`, {});
    assert.equal(cancelled.status, 200);
  });
});
