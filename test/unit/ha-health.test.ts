/**
 * A backup's health as a primary measures it (backup-health.ts): the order of the checks, and
 * the reasons given for calls that fail, from real TLS handshakes on loopback: a certificate not
 * trusted here, one that does not name the host, nothing listening. And `select` refuses a backup
 * the primary cannot call, with that reason.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createServer as createPlainServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BackupHealthBook,
  LAGGING_AFTER_S,
  explainCallFailure,
} from '../../src/coordinator/ha/backup-health.js';
import { PeerClient } from '../../src/coordinator/ha/peer-client.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import { MusterError } from '../../src/protocol/errors.js';
import { selfSignedCertificate } from '../../src/common/self-signed.js';
import { primarySideFor } from '../helpers/primary-side.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const base = {
  called: true,
  selected: true,
  lastContactMs: NOW - 1000,
  healthyWithinMs: 5000,
  lagSeconds: 0,
  now: NOW,
};

describe('backup health', () => {
  it('is the first failing check: contact, the call back, failback, replication, lag', () => {
    const book = new BackupHealthBook();
    assert.deepEqual(book.evaluate('b', base), { health: 'healthy', reason: null });
    assert.equal(book.evaluate('b', { ...base, lastContactMs: undefined }).health, 'unreachable');
    assert.match(
      book.evaluate('b', { ...base, lastContactMs: NOW - 9000 }).reason ?? '',
      /has not called this primary for 9 s/,
    );
    book.noteCall('b', { ok: false, at: NOW, message: 'its certificate is not trusted here' });
    assert.deepEqual(book.evaluate('b', base), {
      health: 'unverified',
      reason: 'this primary cannot reach it: its certificate is not trusted here',
    });
    // A backup the primary does not call (unselected) is not judged by old calls.
    assert.equal(book.evaluate('b', { ...base, called: false, selected: false }).health, 'healthy');
    book.noteCall('b', { ok: true, at: NOW });
    book.noteFailback('b', 'VALIDATION_FAILED: the history of build 3 is malformed');
    assert.deepEqual(book.evaluate('b', base), {
      health: 'failback-failing',
      reason:
        'it ran the cluster and this primary cannot take its history back: VALIDATION_FAILED: the history of build 3 is malformed',
    });
    book.noteFailback('b', undefined);
    book.noteReport('b', 'INTERNAL: UNIQUE constraint failed: api_tokens.token_hash', NOW);
    assert.deepEqual(book.evaluate('b', base), {
      health: 'replication-failing',
      reason: 'replication failing: INTERNAL: UNIQUE constraint failed: api_tokens.token_hash',
    });
    book.noteReport('b', undefined, NOW);
    assert.equal(book.evaluate('b', { ...base, lagSeconds: LAGGING_AFTER_S }).health, 'healthy');
    assert.deepEqual(book.evaluate('b', { ...base, lagSeconds: LAGGING_AFTER_S + 30 }), {
      health: 'lagging',
      reason: `its copy is ${LAGGING_AFTER_S + 30} s behind this primary`,
    });
  });

  it('keeps a reported error short', () => {
    const book = new BackupHealthBook();
    book.noteReport('b', 'x'.repeat(10_000), NOW);
    assert.equal(book.replicationError('b')?.length, 500);
    book.forget('b');
    assert.equal(book.replicationError('b'), null);
  });
});

describe('why a primary cannot call its backup', () => {
  let server: Server;
  let port = 0;
  let cert = '';
  let refusedPort = 0;

  before(async () => {
    // A certificate for another host name: trusted (as its own root) it still fails the name.
    const pems = await selfSignedCertificate({
      commonName: 'backup.example',
      dns: ['backup.example'],
      notAfter: new Date(Date.now() + 86_400_000),
    });
    cert = pems.cert;
    server = createServer({ cert: pems.cert, key: pems.key }, (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"state":"standby","term":1,"history":false}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    // A port that was free a moment ago: nothing listens there.
    const probe = createPlainServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    refusedPort = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });
  after(() => server.close());

  const call = async (url: string, ca?: string): Promise<string> => {
    const peer = new PeerClient(
      url,
      () => 's',
      () => ({ ca }),
    );
    try {
      await peer.json('/api/v1/ha/state', { timeoutMs: 5000 });
    } catch (err) {
      return explainCallFailure(err, url);
    }
    return 'answered';
  };

  it('names the fix: --peer-ca for an untrusted certificate', async () => {
    assert.match(await call(`https://127.0.0.1:${port}`), /not trusted here .*--peer-ca FILE/);
  });

  it('names the fix: a certificate for the host, or --advertise-url', async () => {
    assert.match(
      await call(`https://127.0.0.1:${port}`, cert),
      /does not name the host of its advertised URL .*--advertise-url/,
    );
  });

  it('names the fix: nothing answers at the URL', async () => {
    assert.match(
      await call(`https://127.0.0.1:${refusedPort}`),
      /nothing answers at its advertised URL .*ECONNREFUSED/,
    );
  });

  it('select refuses such a backup with the reason, and records it in its health', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'muster-ha-health-'));
    const store = openSqliteStore(join(dir, 'db.sqlite'));
    try {
      const side = primarySideFor(
        store,
        dir,
        (backup) =>
          new PeerClient(
            backup.url,
            () => backup.secret,
            () => ({ ca: backup.certificate ?? undefined }),
          ),
        'instance',
      );
      side.register({
        name: 'b1',
        url: `https://127.0.0.1:${port}`,
        fingerprint: null,
        certificate: cert,
        secret: 'secret-of-b1-0123456789abcdef0123456789',
      });
      await assert.rejects(
        side.select('b1', 'admin'),
        (err) =>
          err instanceof MusterError &&
          err.code === 'BACKUP_UNVERIFIED' &&
          /backup b1 cannot be selected: .*does not name the host/.test(err.message),
      );
      assert.equal(side.selected(), undefined);
      assert.equal(store.replication.outStream(), null, 'no stream for a refused backup');
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
