/**
 * The checks an uploaded certificate and key pass before a coordinator serves them: each
 * failure has its own code and a message that says what to do.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { checkCertificate, viewOf } from '../../src/coordinator/tls/certificate-check.js';
import { MusterError } from '../../src/protocol/errors.js';
import { makeCertificate, type TestCertificate } from '../helpers/certificates.js';

const NOW = new Date();
let good: TestCertificate;
let other: TestCertificate;

before(async () => {
  good = await makeCertificate({ dns: ['ci.example.com'], ips: ['127.0.0.1'] });
  other = await makeCertificate();
});

function fails(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MusterError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

describe('certificate check', () => {
  it('accepts a matching pair that covers the names, and normalises the PEMs', () => {
    const checked = checkCertificate(
      `\n${good.cert}`,
      good.key,
      ['ci.example.com', '127.0.0.1'],
      NOW,
    );
    assert.equal(checked.leaf.fingerprint256, good.fingerprint);
    assert.match(checked.chainPem, /^-----BEGIN CERTIFICATE-----[\s\S]*-----\n$/);
    assert.equal(checked.chain.length, 1);
    const view = viewOf(checked.chain, { certificate: 'c.pem', key: 'k.pem' });
    assert.equal(view.selfSigned, true);
    assert.deepEqual(view.subjectAltName, { dns: ['ci.example.com'], ips: ['127.0.0.1'] });
    assert.equal(view.fingerprint256, good.fingerprint);
  });

  it('refuses a key from another pair', () => {
    fails(
      () => checkCertificate(good.cert, other.key, [], NOW),
      'CERT_KEY_MISMATCH',
      /does not belong to this certificate/,
    );
  });

  it('refuses what is not PEM, and a key and certificate swapped', () => {
    fails(() => checkCertificate('hello', good.key, [], NOW), 'CERT_INVALID', /not PEM/);
    fails(
      () => checkCertificate(good.key, good.key, [], NOW),
      'CERT_INVALID',
      /holds a private key/,
    );
    fails(
      () => checkCertificate(good.cert, good.cert, [], NOW),
      'CERT_KEY_INVALID',
      /holds a certificate/,
    );
    fails(
      () =>
        checkCertificate(
          good.cert,
          '-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----',
          [],
          NOW,
        ),
      'CERT_KEY_INVALID',
      /cannot be read/,
    );
  });

  it('refuses an encrypted key, saying how to decrypt it', () => {
    const { privateKey } = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    fails(
      () => checkCertificate(good.cert, privateKey, [], NOW),
      'CERT_KEY_ENCRYPTED',
      /openssl pkey/,
    );
  });

  it('refuses a certificate outside its validity, with the dates', () => {
    const later = new Date(NOW.getTime() + 365 * 86_400_000);
    fails(
      () => checkCertificate(good.cert, good.key, [], later),
      'CERT_EXPIRED',
      /expired on \d{4}-/,
    );
    const earlier = new Date(NOW.getTime() - 86_400_000);
    fails(
      () => checkCertificate(good.cert, good.key, [], earlier),
      'CERT_NOT_YET_VALID',
      /not valid before \d{4}-/,
    );
  });

  it('refuses a certificate that does not cover a needed name, listing what it covers', () => {
    fails(
      () => checkCertificate(good.cert, good.key, ['muster.example.org'], NOW),
      'CERT_HOST_MISMATCH',
      /does not cover muster\.example\.org.*covers ci\.example\.com, 127\.0\.0\.1/,
    );
    fails(
      () => checkCertificate(good.cert, good.key, ['127.0.0.2'], NOW),
      'CERT_HOST_MISMATCH',
      /does not cover 127\.0\.0\.2/,
    );
  });

  it('refuses a chain whose second certificate did not issue the first', () => {
    fails(
      () => checkCertificate(`${good.cert}\n${other.cert}`, good.key, [], NOW),
      'CERT_INVALID',
      /out of order/,
    );
  });
});
