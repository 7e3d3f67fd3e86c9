/**
 * The CLI's pinned connection to a coordinator (src/common/pinned-tls.ts, src/cli/http-transport.ts):
 * with the right pin a self-signed certificate is used; with a wrong one the connection is closed
 * after the handshake, before a single byte of the request (its token) is written.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../src/cli/api-client.js';
import { exitCodeForErrorCode } from '../../src/cli/exit-codes.js';
import { compileCoordinatorOptions } from '../../src/coordinator/options.js';
import { MusterError } from '../../src/protocol/errors.js';
import { presentedCertificate } from '../../src/common/pinned-tls.js';
import { parseFingerprint } from '../../src/protocol/fingerprint.js';
import { selfSignedCertificate } from '../../src/common/self-signed.js';

let server: Server;
let port: number;
let fingerprint: string;
/** What each connection sent after the handshake. */
const received: string[] = [];

before(async () => {
  const pems = await selfSignedCertificate({
    commonName: 'pinned-test',
    ips: ['127.0.0.1'],
    notAfter: new Date(Date.now() + 86_400_000),
  });
  fingerprint = new X509Certificate(pems.cert).fingerprint256;
  // A raw TLS server that answers any request with {}: it sees every byte the client sends.
  server = createServer({ cert: pems.cert, key: pems.key }, (socket: TLSSocket) => {
    const index = received.push('') - 1;
    socket.on('data', (data: Buffer) => {
      received[index] += data.toString('latin1');
      if (received[index]!.includes('\r\n\r\n')) {
        const body = '{"role":"primary"}';
        socket.end(
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  port = address.port;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('pinned TLS to a coordinator', () => {
  it('shows a certificate as untrusted, with its fingerprint', async () => {
    const presented = await presentedCertificate({ host: '127.0.0.1', port });
    assert.equal(presented.fingerprint, fingerprint);
    assert.equal(presented.trusted, false);
    assert.equal(presented.reason, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('talks to the pinned certificate, token and all', async () => {
    received.length = 0;
    const client = new ApiClient({
      url: `https://127.0.0.1:${port}`,
      token: 'the-token',
      fingerprint: fingerprint.toLowerCase().replaceAll(':', ''),
    });
    assert.deepEqual(await client.status(), { role: 'primary' });
    assert.match(received[0] ?? '', /^GET \/api\/v1\/status HTTP\/1\.1\r\n/);
    assert.match(received[0] ?? '', /authorization: Bearer the-token/i);
    assert.match(received[0] ?? '', new RegExp(`host: 127\\.0\\.0\\.1:${port}`, 'i'));
  });

  it('refuses another certificate before writing a byte of the request', async () => {
    received.length = 0;
    // Another fingerprint whatever this run's certificate is (`AA…` was this one 1 time in 256).
    const wrong = `${fingerprint.startsWith('A') ? 'B' : 'A'}${fingerprint.slice(1)}`;
    assert.notEqual(wrong, fingerprint);
    const client = new ApiClient({
      url: `https://127.0.0.1:${port}`,
      token: 'the-token',
      fingerprint: wrong,
    });
    await assert.rejects(
      client.status(),
      (err: unknown) =>
        err instanceof MusterError &&
        err.code === 'TLS_FINGERPRINT_MISMATCH' &&
        err.message.includes(fingerprint),
    );
    // Let the server see whatever might have been sent.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(received.join(''), '', 'no byte of the request reached the server');
    assert.equal(exitCodeForErrorCode('TLS_FINGERPRINT_MISMATCH'), 2);
    assert.equal(exitCodeForErrorCode('TLS_UNTRUSTED'), 2);
  });

  it('without a pin, an untrusted certificate is a TLS failure as before', async () => {
    received.length = 0;
    const client = new ApiClient({ url: `https://127.0.0.1:${port}`, token: 'the-token' });
    await assert.rejects(client.status(), { code: 'UNREACHABLE', message: /not trusted/ });
    assert.equal(received.join(''), '');
  });

  it('reads fingerprints as users paste them', () => {
    const hex = fingerprint.replaceAll(':', '');
    assert.equal(parseFingerprint(hex.toLowerCase()), fingerprint);
    assert.equal(parseFingerprint(`sha256:${fingerprint}`), fingerprint);
    assert.equal(parseFingerprint(hex.slice(2)), undefined);
    assert.equal(parseFingerprint('not a fingerprint'), undefined);
  });
});

describe('coordinator options: encrypted by default', () => {
  it('serves plain HTTP only on loopback or with --no-tls', () => {
    for (const listen of ['127.0.0.1:8000', '127.0.0.2:0', '[::1]:8000', 'localhost:8000']) {
      const options = compileCoordinatorOptions({ listen, data: '/tmp/d' });
      assert.equal(options.tls, false, listen);
      assert.equal(options.plainHttp, 'loopback', listen);
    }
    for (const listen of ['0.0.0.0:8000', '[::]:8000', '10.1.2.3:8000', 'ci.example.com:8000']) {
      const options = compileCoordinatorOptions({ listen, data: '/tmp/d' });
      assert.deepEqual(
        options.tls,
        { certFile: '/tmp/d/tls/cert.pem', keyFile: '/tmp/d/tls/key.pem', generated: true },
        listen,
      );
    }
    const noTls = compileCoordinatorOptions({ listen: '0.0.0.0:8000', tls: false });
    assert.equal(noTls.tls, false);
    assert.equal(noTls.plainHttp, 'no-tls');
    const given = compileCoordinatorOptions({
      listen: '127.0.0.1:8000',
      tlsCert: '/c.pem',
      tlsKey: '/k.pem',
    });
    assert.deepEqual(given.tls, { certFile: '/c.pem', keyFile: '/k.pem', generated: false });
    assert.throws(
      () => compileCoordinatorOptions({ tls: false, tlsCert: '/c.pem', tlsKey: '/k.pem' }),
      { code: 'INVALID_CONFIG', message: /--no-tls cannot be combined/ },
    );
  });
});
