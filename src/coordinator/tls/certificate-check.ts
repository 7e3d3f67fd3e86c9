/**
 * Checks a certificate and key an admin uploads before the coordinator serves them: PEM, the key
 * unencrypted and matching the certificate, valid now, covering the host names clients use, and
 * accepted by OpenSSL as a server identity. Each failure is its own error code, with a message
 * that says what is wrong and what to do.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { MusterError } from '../../protocol/errors.js';
import type { CertificateView } from '../../api/views/certificates.js';

export type { CertificateView };

export interface CheckedCertificate {
  /** The chain as it will be written: the server's certificate first, then intermediates. */
  chainPem: string;
  /** The server's own certificate (what peers pin). */
  leafPem: string;
  keyPem: string;
  leaf: X509Certificate;
  chain: X509Certificate[];
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of a PEM text, in order; CERT_INVALID when there are none or one is broken. */
export function parseChain(pem: string): { blocks: string[]; chain: X509Certificate[] } {
  const blocks = pem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw new MusterError(
      'CERT_INVALID',
      /PRIVATE KEY-----/.test(pem)
        ? 'the certificate field holds a private key: put the certificate (-----BEGIN CERTIFICATE-----) there and the key in the key field'
        : 'the certificate is not PEM: expected -----BEGIN CERTIFICATE----- … -----END CERTIFICATE----- (convert DER with: openssl x509 -inform der -in cert.der -out cert.pem)',
    );
  }
  const chain = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new MusterError(
        'CERT_INVALID',
        `certificate ${i + 1} of ${blocks.length} in the PEM cannot be read: ${(err as Error).message}`,
      );
    }
  });
  return { blocks, chain };
}

export function parseKey(pem: string): KeyObject {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(pem)) {
    throw new MusterError(
      'CERT_KEY_ENCRYPTED',
      'the private key is encrypted with a passphrase, which the coordinator cannot type at start: decrypt it first (openssl pkey -in key.pem -out key-plain.pem) and upload that',
    );
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new MusterError(
      'CERT_KEY_INVALID',
      /-----BEGIN CERTIFICATE-----/.test(pem)
        ? 'the key field holds a certificate: put the private key (-----BEGIN PRIVATE KEY-----) there'
        : 'the key is not a PEM private key: expected -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)',
    );
  }
  try {
    return createPrivateKey(pem);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_MISSING_PASSPHRASE')
      throw new MusterError(
        'CERT_KEY_ENCRYPTED',
        'the private key is encrypted with a passphrase: decrypt it first (openssl pkey -in key.pem -out key-plain.pem) and upload that',
      );
    throw new MusterError('CERT_KEY_INVALID', `the private key cannot be read: ${e.message}`);
  }
}

/** DNS names and IP addresses of a certificate's subjectAltName (Node's "DNS:a, IP Address:b"). */
export function namesOf(cert: X509Certificate): { dns: string[]; ips: string[] } {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const entry of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (entry.startsWith('DNS:')) dns.push(entry.slice(4));
    else if (entry.startsWith('IP Address:')) ips.push(entry.slice(11));
  }
  return { dns, ips };
}

/** Issued by itself: same name and signed by its own key (checkIssued would also want keyCertSign). */
export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.issuer === cert.subject && cert.verify(cert.publicKey);
}

/** Whether a certificate covers a host name or IP (what a TLS client checks). */
export function covers(cert: X509Certificate, host: string): boolean {
  return isIP(host) !== 0 ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}

function iso(date: string): string {
  const ms = Date.parse(date);
  return Number.isNaN(ms) ? date : new Date(ms).toISOString();
}

/**
 * Validates an upload. `hostnames` are the names clients reach this coordinator by; every one
 * must be covered.
 */
export function checkCertificate(
  certificatePem: string,
  keyPem: string,
  hostnames: string[],
  now: Date,
): CheckedCertificate {
  const { blocks, chain } = parseChain(certificatePem);
  const leaf = chain[0]!;
  const key = parseKey(keyPem);
  if (!leaf.checkPrivateKey(key)) {
    const leafMatches = chain.slice(1).some((c) => c.checkPrivateKey(key));
    throw new MusterError(
      'CERT_KEY_MISMATCH',
      leafMatches
        ? 'the key belongs to another certificate of the chain, not to the first one: put the server certificate first, then its intermediates'
        : `the private key does not belong to this certificate (${leaf.subject.replace(/\n/g, ', ')}): upload the key that was generated with it (compare: openssl x509 -noout -pubkey -in cert.pem and openssl pkey -pubout -in key.pem)`,
    );
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.checkIssued(chain[i + 1]!)) {
      throw new MusterError(
        'CERT_INVALID',
        `the chain is out of order: certificate ${i + 2} (${chain[i + 1]!.subject.replace(/\n/g, ', ')}) did not issue certificate ${i + 1}; put the server certificate first, then each intermediate after the one it issued`,
      );
    }
  }
  const from = Date.parse(leaf.validFrom);
  const to = Date.parse(leaf.validTo);
  if (now.getTime() > to) {
    throw new MusterError(
      'CERT_EXPIRED',
      `the certificate expired on ${iso(leaf.validTo)} (valid ${iso(leaf.validFrom)} to ${iso(leaf.validTo)}): renew it and upload the new one`,
      { validFrom: iso(leaf.validFrom), validTo: iso(leaf.validTo) },
    );
  }
  if (now.getTime() < from) {
    throw new MusterError(
      'CERT_NOT_YET_VALID',
      `the certificate is not valid before ${iso(leaf.validFrom)} (valid ${iso(leaf.validFrom)} to ${iso(leaf.validTo)}): upload it from then on, or check this machine's clock (now ${now.toISOString()})`,
      { validFrom: iso(leaf.validFrom), validTo: iso(leaf.validTo) },
    );
  }
  const missing = hostnames.filter((host) => !covers(leaf, host));
  if (missing.length > 0) {
    const names = namesOf(leaf);
    const listed = [...names.dns, ...names.ips];
    throw new MusterError(
      'CERT_HOST_MISMATCH',
      `the certificate does not cover ${missing.join(' or ')}, the name clients use to reach this coordinator; it covers ${listed.length > 0 ? listed.join(', ') : `no subjectAltName (only its subject ${leaf.subject.replace(/\n/g, ', ')}, which clients ignore)`}: get one whose subjectAltName includes ${missing.join(' and ')}`,
      { needed: missing, covered: listed },
    );
  }
  const chainPem = `${blocks.join('\n')}\n`;
  const normalizedKey = `${keyPem.trim()}\n`;
  try {
    createSecureContext({ cert: chainPem, key: normalizedKey });
  } catch (err) {
    throw new MusterError(
      'CERT_INVALID',
      `TLS does not accept this certificate and key: ${(err as Error).message}`,
    );
  }
  return { chainPem, leafPem: `${blocks[0]!}\n`, keyPem: normalizedKey, leaf, chain };
}

export function viewOf(
  chain: X509Certificate[],
  files: { certificate: string; key: string },
): CertificateView {
  const leaf = chain[0]!;
  return {
    tls: true,
    subject: leaf.subject,
    issuer: leaf.issuer,
    subjectAltName: namesOf(leaf),
    validFrom: iso(leaf.validFrom),
    validTo: iso(leaf.validTo),
    fingerprint256: leaf.fingerprint256,
    selfSigned: isSelfSigned(leaf),
    chainLength: chain.length,
    files,
  };
}
