/**
 * Certificates for the tests of Admin › Certificates: fresh self-signed pairs (selfsigned),
 * the fingerprint a coordinator presents to a new TLS connection, and API calls to a
 * coordinator whose certificate this test process does not trust by default.
 */
import { X509Certificate } from 'node:crypto';
import { copyFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { generate } from 'selfsigned';
import { selfSignedCertificate } from '../../src/common/self-signed.js';
import { makeTempDir } from './agent-process.js';
import { testTls } from './coordinator-process.js';

export interface TestCertificate {
  cert: string;
  key: string;
  fingerprint: string;
}

export async function makeCertificate(
  options: {
    dns?: string[];
    ips?: string[];
    notBefore?: Date;
    notAfter?: Date;
  } = {},
): Promise<TestCertificate> {
  const { cert, key } = await selfSignedCertificate({
    commonName: 'muster-cert-test',
    dns: options.dns ?? [],
    ips: options.ips ?? ['127.0.0.1'],
    ...(options.notBefore ? { notBefore: options.notBefore } : {}),
    notAfter: options.notAfter ?? new Date(Date.now() + 30 * 86_400_000),
  });
  return { cert, key, fingerprint: new X509Certificate(cert).fingerprint256 };
}

/**
 * A copy of the shared loopback certificate and key in a temp dir of this test, to start a
 * coordinator with: an upload overwrites these files, never the shared ones.
 */
export async function copyTestTls(): Promise<{ dir: string; certFile: string; keyFile: string }> {
  const dir = await makeTempDir('muster-cert-');
  const certFile = join(dir, 'coordinator.pem');
  const keyFile = join(dir, 'coordinator.key');
  await copyFile(testTls().cert, certFile);
  await copyFile(testTls().key, keyFile);
  return { dir, certFile, keyFile };
}

/** The SHA-256 fingerprint a fresh TLS connection to `url` is shown (trusting anything). */
export function servedFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false });
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no TLS handshake with ${url}`)));
    socket.once('secureConnect', () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

/** An API call that trusts exactly `ca` (a coordinator's new self-signed certificate). */
export function apiWithCa<T>(
  url: string,
  ca: string,
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(`${url}/api/v1${path}`, {
      method,
      ca,
      agent: false,
      timeout: 30_000,
      headers: {
        ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : null) as T });
      });
    });
    req.end(data);
  });
}

/**
 * A private certificate authority, as a company runs one: its certificate (to trust with
 * --peer-ca) and server certificates it signs for the given names. Nothing trusts it by default.
 */
export async function makePrivateCa(): Promise<{
  cert: string;
  sign(names: { dns?: string[]; ips?: string[] }): Promise<TestCertificate>;
}> {
  const notAfterDate = new Date(Date.now() + 30 * 86_400_000);
  const notBeforeDate = new Date(Date.now() - 60_000);
  const ca = await generate([{ name: 'commonName', value: 'Muster Test Private CA' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true },
    ],
  });
  return {
    cert: ca.cert,
    async sign(names) {
      const leaf = await selfSignedCertificate({
        commonName: 'muster-private-ca-leaf',
        dns: names.dns ?? [],
        ips: names.ips ?? [],
        notBefore: notBeforeDate,
        notAfter: notAfterDate,
        signedBy: { cert: ca.cert, key: ca.private },
      });
      return { ...leaf, fingerprint: new X509Certificate(leaf.cert).fingerprint256 };
    },
  };
}
