/**
 * What makes an agent itself: its id, its access key and its TLS certificate. Created on first
 * start in the data dir; the key and the private key are written with mode 0600.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeAtomic } from '../common/atomic-file.js';
import { readBootId } from '../common/boot-id.js';
import { certificateFingerprint, readConfigFile } from '../common/config-file.js';
import { MusterError } from '../protocol/errors.js';
import { selfSignedCertificate } from '../common/self-signed.js';
import type { CompiledAgentOptions } from './options.js';

export interface AgentIdentity {
  agentId: string;
  accessKey: string;
  /** Set when the key was generated on this start: print it once. */
  createdAccessKey: boolean;
  tls?: { cert: string; key: string; fingerprint: string; createdCert: boolean };
  /** The machine it runs on (src/common/boot-id.ts), read at start; undefined: not Linux. */
  bootId?: string;
}

export async function loadOrCreateIdentity(options: CompiledAgentOptions): Promise<AgentIdentity> {
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const agentId = await loadOrCreate(join(options.dataDir, 'agent-id'), () => randomUUID(), 0o644);
  const { accessKey, created } = await loadAccessKey(options);
  const bootId = await readBootId();
  const identity: AgentIdentity = {
    agentId: agentId.value,
    accessKey,
    createdAccessKey: created,
    ...(bootId === undefined ? {} : { bootId }),
  };
  if (options.tls === 'self-signed') {
    const certFile = join(options.dataDir, 'tls', 'cert.pem');
    const keyFile = join(options.dataDir, 'tls', 'key.pem');
    let createdCert = false;
    let cert = await readIfExists(certFile);
    let key = await readIfExists(keyFile);
    if (cert === undefined || key === undefined) {
      ({ cert, key } = await agentCertificate());
      await mkdir(join(options.dataDir, 'tls'), { recursive: true, mode: 0o700 });
      await writeAtomic(keyFile, key, 0o600);
      await writeAtomic(certFile, cert, 0o644);
      createdCert = true;
    }
    identity.tls = { cert, key, fingerprint: certificateFingerprint(cert, certFile), createdCert };
  } else if (options.tls !== false) {
    identity.tls = { ...(await readTlsFiles(options.tls)), createdCert: false };
  }
  return identity;
}

/** The certificate and key of --tls-cert/--tls-key, read now (at start, and at SIGHUP). */
export async function readTlsFiles(files: {
  certFile: string;
  keyFile: string;
}): Promise<{ cert: string; key: string; fingerprint: string }> {
  const cert = await readConfigFile(files.certFile, '--tls-cert');
  const key = await readConfigFile(files.keyFile, '--tls-key');
  return { cert, key, fingerprint: certificateFingerprint(cert, '--tls-cert') };
}

/** SHA-256 of the certificate's DER, as colon-separated upper-case hex (what openssl prints). */
function agentCertificate(): Promise<{ cert: string; key: string }> {
  const host = hostname();
  return selfSignedCertificate({
    commonName: `muster-agent ${host}`,
    dns: [host, 'localhost'],
    ips: ['127.0.0.1', '::1'],
    notAfter: new Date(Date.now() + 10 * 365 * 86_400_000),
  });
}

async function loadAccessKey(
  options: CompiledAgentOptions,
): Promise<{ accessKey: string; created: boolean }> {
  if (options.accessKey !== undefined) return { accessKey: options.accessKey, created: false };
  if (options.accessKeyFile !== undefined) {
    const key = (await readConfigFile(options.accessKeyFile, '--access-key-file')).trim();
    if (key.length < 16) {
      throw new MusterError(
        'INVALID_CONFIG',
        `${options.accessKeyFile}: the key must be at least 16 characters`,
      );
    }
    return { accessKey: key, created: false };
  }
  const { value, created } = await loadOrCreate(
    join(options.dataDir, 'access-key'),
    () => randomBytes(32).toString('base64url'),
    0o600,
  );
  return { accessKey: value, created };
}

async function loadOrCreate(
  file: string,
  make: () => string,
  mode: number,
): Promise<{ value: string; created: boolean }> {
  const existing = await readIfExists(file);
  if (existing !== undefined && existing.trim() !== '')
    return { value: existing.trim(), created: false };
  const value = make();
  await writeAtomic(file, `${value}\n`, mode);
  return { value, created: true };
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
