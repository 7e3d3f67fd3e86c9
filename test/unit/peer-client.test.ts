/**
 * The client coordinators use with each other: over TLS it checks chain, host name and the
 * pinned fingerprint before it writes anything, so a wrong certificate never sees the secret.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { selfSignedCertificate } from '../../src/common/self-signed.js';
import { PeerClient } from '../../src/coordinator/ha/peer-client.js';
import { MusterError } from '../../src/protocol/errors.js';

let server: Server;
let url: string;
let cert: string;
let fingerprint: string;
const seen: { authorization: string | undefined }[] = [];

before(async () => {
  const pems = await selfSignedCertificate({
    commonName: 'peer-test',
    ips: ['127.0.0.1'],
    notAfter: new Date(Date.now() + 86_400_000),
  });
  cert = pems.cert;
  fingerprint = new X509Certificate(cert).fingerprint256;
  server = createServer({ cert, key: pems.key }, (req, res) => {
    seen.push({ authorization: req.headers.authorization });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  url = `https://127.0.0.1:${address.port}`;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function client(tls: { ca?: string; fingerprint?: string | string[] }): PeerClient {
  return new PeerClient(
    url,
    () => 'the-secret',
    () => tls,
  );
}

async function rejects(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof MusterError && err.code === code);
}

describe('peer client', () => {
  it('talks to a peer whose certificate it trusts and whose fingerprint matches', async () => {
    seen.length = 0;
    const response = await client({ ca: cert, fingerprint }).json<{ ok: boolean }>('/x');
    assert.deepEqual(response.body, { ok: true });
    assert.equal(response.fingerprint, fingerprint);
    assert.deepEqual(seen, [{ authorization: 'Bearer the-secret' }]);
  });

  it('refuses another certificate than the pinned one before sending the secret', async () => {
    seen.length = 0;
    await rejects(
      client({ ca: cert, fingerprint: 'AA:BB' }).json('/x'),
      'TLS_FINGERPRINT_MISMATCH',
    );
    assert.deepEqual(seen, [], 'the server saw a request');
  });

  it('refuses a certificate it does not trust', async () => {
    seen.length = 0;
    await rejects(client({}).json('/x'), 'UNREACHABLE');
    assert.deepEqual(seen, []);
  });

  it('accepts any of several pins: the current certificate and the announced next one', async () => {
    seen.length = 0;
    const response = await client({
      ca: cert,
      fingerprint: ['AA:BB', fingerprint.toLowerCase()],
    }).json<{ ok: boolean }>('/x');
    assert.deepEqual(response.body, { ok: true });
    assert.deepEqual(seen, [{ authorization: 'Bearer the-secret' }]);
  });

  it('refuses a certificate that matches none of several pins, before sending the secret', async () => {
    seen.length = 0;
    await assert.rejects(
      client({ ca: cert, fingerprint: ['AA:BB', 'CC:DD'] }).json('/x'),
      (err: unknown) =>
        err instanceof MusterError &&
        err.code === 'TLS_FINGERPRINT_MISMATCH' &&
        /not the pinned AA:BB or CC:DD/.test(err.message),
    );
    assert.deepEqual(seen, [], 'the server saw a request');
  });
});
