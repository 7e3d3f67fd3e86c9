/**
 * Replacing a primary's certificate with a selected backup, over TLS: the backup pins the
 * primary's certificate, so the primary announces the new one first and swaps only once the
 * backup has accepted it. After the swap the backup keeps replicating (the primary lists it
 * healthy, a new build reaches it) and has dropped the old pin; a new TLS connection to the
 * primary sees the new certificate. The new certificate is self-signed and known to the backup
 * only through the announcement. On the backup the upload is refused (READ_ONLY); with the
 * backup gone, the primary swaps anyway and says the backup did not confirm.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BackupView } from '../../src/api/views/backups.js';
import type { BuildView } from '../../src/api/views/builds.js';
import type { StatusView } from '../../src/api/views/status.js';
import { cleanup, waitFor } from '../helpers/agent-process.js';
import {
  apiWithCa,
  copyTestTls,
  makeCertificate,
  servedFingerprint,
  type TestCertificate,
} from '../helpers/certificates.js';
import {
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, startBackup } from '../helpers/ha.js';

let primary: StartedCoordinator;
let backup: StartedCoordinator;
/** The certificate the primary serves after the first test. */
let installed: TestCertificate;

interface HaJson {
  primaryFingerprint?: string;
  primaryPins?: { fingerprint: string }[];
}

async function haJson(): Promise<HaJson> {
  return JSON.parse(await readFile(join(backup.dataDir, 'ha.json'), 'utf8')) as HaJson;
}

before(async () => {
  const files = await copyTestTls();
  primary = await startCoordinator({
    args: [...FAST, '--tls-cert', files.certFile, '--tls-key', files.keyFile],
  });
  backup = await startBackup(primary, 'b1');
  await selectBackup(primary, backup, 'b1');
});

after(async () => {
  await killCoordinators();
  await cleanup();
});

describe('certificate rollover with a backup', () => {
  it('swaps once the backup accepts the new certificate; the backup keeps replicating', async () => {
    const old = await servedFingerprint(primary.url);
    await waitFor(
      async () => (await haJson()).primaryPins?.[0]?.fingerprint === old,
      15_000,
      "the backup to pin the primary's certificate",
    );
    const next = await makeCertificate({ ips: ['127.0.0.1'] });
    installed = next;
    const replaced = await primary.api<{
      certificate: { fingerprint256: string };
      backup: { name: string; confirmed: boolean; message: string } | null;
    }>('PUT', '/certificate', { certificate: next.cert, key: next.key });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.equal(replaced.body.certificate.fingerprint256, next.fingerprint);
    assert.equal(replaced.body.backup?.name, 'b1');
    assert.equal(replaced.body.backup?.confirmed, true, replaced.body.backup?.message);

    assert.equal(await servedFingerprint(primary.url), next.fingerprint);
    // The backup meets the new certificate, pins it and drops the old pin.
    await waitFor(
      async () => {
        const ha = await haJson();
        return (
          ha.primaryFingerprint === next.fingerprint &&
          ha.primaryPins?.length === 1 &&
          ha.primaryPins[0]?.fingerprint === next.fingerprint
        );
      },
      15_000,
      'the backup to pin the new certificate only',
    );

    // Still replicating: a build submitted now reaches the backup, which the primary lists healthy.
    const api = <T>(method: string, path: string, body?: unknown) =>
      apiWithCa<T>(primary.url, next.cert, primary.token, method, path, body);
    const build = await api<BuildView>('POST', '/builds', {
      plan: 'tasks:\n  after-swap:\n    run: echo after\n',
      files: [],
    });
    assert.equal(build.status, 201, JSON.stringify(build.body));
    await waitFor(
      async () => (await backup.api('GET', `/builds/${build.body.id}`)).status === 200,
      20_000,
      'the build made after the swap to reach the backup',
    );
    const backups = await api<BackupView[]>('GET', '/backups');
    assert.deepEqual(
      backups.body.map((b) => [b.name, b.selected, b.health]),
      [['b1', true, 'healthy']],
    );
    const seen = (await backup.api<StatusView>('GET', '/status')).body;
    assert.equal(seen.primary?.reachable, true, JSON.stringify(seen.primary));
    assert.equal(
      backup.logs.some((entry) => entry.code === 'TLS_FINGERPRINT_MISMATCH'),
      false,
      'the backup refused the primary at some point',
    );
  });

  it('is refused on the backup, and swaps anyway, saying so, when the backup cannot confirm', async () => {
    const onBackup = await backup.api<{ error: { code: string } }>('PUT', '/certificate', {
      certificate: 'x',
      key: 'y',
    });
    assert.equal(onBackup.status, 403);
    assert.equal(onBackup.body.error.code, 'READ_ONLY');

    await backup.kill();
    const api = <T>(method: string, path: string, body?: unknown) =>
      apiWithCa<T>(primary.url, installed.cert, primary.token, method, path, body);
    await waitFor(
      async () => (await api<BackupView[]>('GET', '/backups')).body[0]?.health === 'unreachable',
      30_000,
      'the primary to see the backup unreachable',
    );
    const third = await makeCertificate({ ips: ['127.0.0.1'] });
    const replaced = await api<{ backup: { confirmed: boolean; message: string } | null }>(
      'PUT',
      '/certificate',
      { certificate: third.cert, key: third.key },
    );
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.equal(replaced.body.backup?.confirmed, false);
    assert.match(replaced.body.backup?.message ?? '', /b1 is not in touch.*re-pin/);
    assert.equal(await servedFingerprint(primary.url), third.fingerprint);
  });
});
