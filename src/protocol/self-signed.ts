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
