/**
 * The self-signed certificate a coordinator serves when it is given none (encrypted by default):
 * made at its first start in <data>/tls/cert.pem and key.pem (both 0600, folder 0700) and reused
 * at every later start, so clients that pinned its fingerprint keep trusting it. A certificate
 * that replaced it under Admin › Certificates is written over the same files and so is what a
 * restart serves. Like the agent's own certificate (src/agent/identity.ts): EC P-256, ten years.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { writeAtomic } from '../../common/atomic-file.js';
import { MusterError } from '../../protocol/errors.js';
import { selfSignedCertificate } from '../../common/self-signed.js';

const VALIDITY_MS = 10 * 365 * 86_400_000;

/** Makes the pair unless both files are there; true when it made them now. */
export async function ensureGeneratedCertificate(
  files: { certFile: string; keyFile: string },
  listenHost: string,
): Promise<boolean> {
  const [cert, key] = await Promise.all([
    readIfExists(files.certFile),
    readIfExists(files.keyFile),
  ]);
  if (cert !== undefined && key !== undefined) return false;
  const pems = await selfSignedCertificate({
    commonName: `muster-coordinator ${hostname()}`,
    ...certificateNames(listenHost),
    notAfter: new Date(Date.now() + VALIDITY_MS),
  });
  try {
    await mkdir(dirname(files.certFile), { recursive: true, mode: 0o700 });
    // The key first: a certificate file is never there without its key.
    await writeAtomic(files.keyFile, pems.key, 0o600);
    await writeAtomic(files.certFile, pems.cert, 0o600);
  } catch (err) {
    throw unusable(err, dirname(files.certFile));
  }
  return true;
}

/**
 * The names the certificate covers: the --listen host when it names one (not 0.0.0.0 or ::),
 * this machine's host name, and the loopback names.
 */
export function certificateNames(listenHost: string): { dns: string[]; ips: string[] } {
  const dns = new Set<string>([hostname(), 'localhost']);
  const ips = new Set<string>(['127.0.0.1', '::1']);
  const host = listenHost.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0) {
    if (host !== '0.0.0.0' && host !== '::') ips.add(host);
  } else if (host !== '') {
    dns.add(host.toLowerCase());
  }
  return { dns: [...dns], ips: [...ips] };
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unusable(err, file);
  }
}

function unusable(err: unknown, where: string): MusterError {
  return new MusterError(
    'INVALID_CONFIG',
    `cannot keep the coordinator's self-signed certificate in ${where} (${(err as Error).message}): let its user write the --data dir, or give --tls-cert and --tls-key`,
    undefined,
    { cause: err },
  );
}
