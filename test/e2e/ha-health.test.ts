/**
 * A backup's health, measured both ways, with real coordinators over TLS:
 *
 * - a backup whose certificate the primary cannot verify (signed by a private CA, or not naming
 *   the host of its advertised URL) is refused at select with the reason and the fix, and
 *   `--peer-ca` on the primary makes it selectable and healthy;
 * - a replication error that repeats on the backup is a health state on both sides: the
 *   primary's backup list and status, the backup's status (with how the primary sees it), and
 *   /metrics on both; it clears when replication works again.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { BackupView } from '../../src/api/views/backups.js';
import type { StatusView } from '../../src/api/views/status.js';
import { cleanup, makeTempDir, waitFor } from '../helpers/agent-process.js';
import { makePrivateCa } from '../helpers/certificates.js';
import {
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, startBackup, status } from '../helpers/ha.js';

after(async () => {
  await killCoordinators();
  await cleanup();
});

async function backups(of: StartedCoordinator): Promise<BackupView[]> {
  const response = await of.api<BackupView[]>('GET', '/backups');
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body;
}

async function backupNamed(of: StartedCoordinator, name: string): Promise<BackupView | undefined> {
  return (await backups(of)).find((b) => b.name === name);
}

async function metrics(of: StartedCoordinator): Promise<string> {
  const response = await fetch(`${of.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  return response.text();
}

describe('a backup the primary cannot verify', () => {
  it('is refused at select with the reason; --peer-ca on the primary fixes a private CA', async () => {
    const dir = await makeTempDir('muster-private-ca-');
    const ca = await makePrivateCa();
    const leaf = await ca.sign({ ips: ['127.0.0.1'] });
    const caFile = join(dir, 'ca.pem');
    await writeFile(caFile, ca.cert);
    await writeFile(join(dir, 'backup.pem'), leaf.cert);
    await writeFile(join(dir, 'backup.key'), leaf.key, { mode: 0o600 });
    const tlsArgs = ['--tls-cert', join(dir, 'backup.pem'), '--tls-key', join(dir, 'backup.key')];

    let primary = await startCoordinator({ tls: true, args: [...FAST] });
    // Trusted by name and chain only through its private CA, which the primary does not know.
    await startCoordinator({
      login: false,
      args: [...FAST, '--backup-of', primary.url, '--backup-name', 'private', ...tlsArgs],
    });
    await waitFor(
      async () => (await backupNamed(primary, 'private')) !== undefined,
      15_000,
      'registration',
    );

    const refused = await primary.api<{ error: { code: string; message: string } }>(
      'PUT',
      '/backups/selected',
      { name: 'private' },
    );
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'BACKUP_UNVERIFIED');
    assert.match(
      refused.body.error.message,
      /backup private cannot be selected: .*its certificate is not trusted here .*--peer-ca FILE/,
    );
    assert.equal((await backupNamed(primary, 'private'))?.selected, false);
    assert.equal((await status(primary)).backup, null);

    // The same CA trusted on the primary (--peer-ca): selectable, then healthy both ways.
    await primary.stop();
    primary = await restartCoordinator(primary, {
      tls: true,
      args: [...FAST, '--peer-ca', caFile],
    });
    await primary.login();
    const selected = await primary.api('PUT', '/backups/selected', { name: 'private' });
    assert.equal(selected.status, 200, JSON.stringify(selected.body));
    await waitFor(
      async () => {
        const b = await backupNamed(primary, 'private');
        return b?.health === 'healthy' && b.lastReached !== null && b.lagSeconds === 0;
      },
      30_000,
      'the private-CA backup to be healthy, reached by the primary and caught up',
    );

    // A certificate that does not name the host of the URL the backup advertises (127.0.0.2).
    await startCoordinator({
      login: false,
      listen: '127.0.0.2:0',
      args: [...FAST, '--backup-of', primary.url, '--backup-name', 'misnamed', ...tlsArgs],
    });
    await waitFor(
      async () => (await backupNamed(primary, 'misnamed')) !== undefined,
      15_000,
      'registration',
    );
    const misnamed = await primary.api<{ error: { code: string; message: string } }>(
      'PUT',
      '/backups/selected',
      { name: 'misnamed' },
    );
    assert.equal(misnamed.status, 409, JSON.stringify(misnamed.body));
    assert.equal(misnamed.body.error.code, 'BACKUP_UNVERIFIED');
    assert.match(
      misnamed.body.error.message,
      /does not name the host of its advertised URL https:\/\/127\.0\.0\.2:\d+.*--advertise-url/,
    );
    // The selection stayed where it was.
    assert.equal((await status(primary)).backup?.name, 'private');
  });
});

describe('a replication error that repeats', () => {
  it('is a health state on both sides, in status, backup list and /metrics, until it clears', async () => {
    const primary = await startCoordinator({ tls: true, args: [...FAST] });
    const backup = await startBackup(primary, 'b1');
    await selectBackup(primary, backup, 'b1');
    await waitFor(
      async () => (await backupNamed(primary, 'b1'))?.health === 'healthy',
      20_000,
      'the backup to be healthy',
    );

    // The backup cannot store a snapshot: its temp dir is a file now. A new selection makes it
    // fetch one.
    const tmp = join(backup.dataDir, 'tmp');
    await rm(tmp, { recursive: true, force: true });
    await writeFile(tmp, 'not a directory');
    assert.equal((await primary.api('PUT', '/backups/selected', { name: null })).status, 200);
    assert.equal((await primary.api('PUT', '/backups/selected', { name: 'b1' })).status, 200);

    await waitFor(
      async () => (await backupNamed(primary, 'b1'))?.health === 'replication-failing',
      30_000,
      "the primary to list the backup's replication as failing",
    );
    const listed = await backupNamed(primary, 'b1');
    assert.match(listed?.healthReason ?? '', /^replication failing: /);
    assert.match(listed?.replicationError ?? '', /tmp/);
    assert.equal((await status(primary)).backup?.health, 'replication-failing');
    assert.match(
      await metrics(primary),
      /^muster_backup_health\{backup="b1",health="replication-failing"\} 1$/m,
    );

    await waitFor(
      async () => {
        const seen = (await status(backup)).primary;
        return (
          seen?.replicationError !== null && seen?.seenByPrimary?.health === 'replication-failing'
        );
      },
      20_000,
      'the backup to show its replication error and how the primary sees it',
    );
    const own: StatusView['primary'] = (await status(backup)).primary;
    assert.notEqual(own?.lagSeconds, 0, 'a copy that cannot apply is not caught up');
    assert.match(await metrics(backup), /^muster_replication_failing 1$/m);

    // Fixed: the next round applies, and both sides say so.
    await rm(tmp, { force: true });
    await mkdir(tmp, { mode: 0o700 });
    await waitFor(
      async () => {
        const b = await backupNamed(primary, 'b1');
        return b?.health === 'healthy' && b.replicationError === null;
      },
      90_000,
      'the backup to be healthy again',
    );
    await waitFor(
      async () => (await status(backup)).primary?.replicationError === null,
      20_000,
      'the backup to clear its replication error',
    );
    assert.match(await metrics(backup), /^muster_replication_failing 0$/m);
    assert.ok(
      backup.logs.some((l) => String(l.msg).startsWith('replication failing: ')),
      'the backup logs it once it repeats',
    );
  });
});
