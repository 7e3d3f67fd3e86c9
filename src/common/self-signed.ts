/**
 * A self-signed server certificate (EC P-256, SHA-256) for the given names: what an agent makes
 * at its first start, and what the tests make for their loopback coordinators.
 */
import { generate } from 'selfsigned';

export interface SelfSignedOptions {
  commonName: string;
  dns?: readonly string[];
  ips?: readonly string[];
  notBefore?: Date;
  notAfter: Date;
  /** Signed by this CA instead of by itself (tests: a private CA). */
  signedBy?: { cert: string; key: string };
}

export async function selfSignedCertificate(
  options: SelfSignedOptions,
): Promise<{ cert: string; key: string }> {
  const pems = await generate([{ name: 'commonName', value: options.commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    // A minute back, so a peer whose clock is a little behind accepts it at once.
    notBeforeDate: options.notBefore ?? new Date(Date.now() - 60_000),
    notAfterDate: options.notAfter,
    ...(options.signedBy ? { ca: options.signedBy } : {}),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          ...(options.dns ?? []).map((value) => ({ type: 2 as const, value })),
          ...(options.ips ?? []).map((ip) => ({ type: 7 as const, ip })),
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
