/**
 * What a coordinator serves over TLS, read once at start: its certificate (made on the first start
 * when none was given), its fingerprint, the manager that replaces it while running, and the
 * extra certificate authority it trusts for its HA peer (--peer-ca).
 */
import type { Logger } from 'pino';
import { certificateFingerprint, readConfigFile } from '../../common/config-file.js';
import type { CompiledCoordinatorOptions } from '../options.js';
import { CertificateManager } from './certificate-manager.js';
import { ensureGeneratedCertificate } from './generated-certificate.js';

export interface ServedTls {
  /** The served certificate (PEM); null over plain HTTP. */
  certificate: string | null;
  /** Its SHA-256 fingerprint; null over plain HTTP. */
  fingerprint: string | null;
  /** Replaces the certificate while running; undefined over plain HTTP. */
  certificates: CertificateManager | undefined;
  /** Whether the self-signed certificate was made on this start (no --tls-cert given). */
  createdCertificate: boolean;
  /** --peer-ca: trusted for the other coordinator of the pair (checked to be a certificate). */
  peerCa: string | undefined;
}

export async function loadServedTls(
  options: Pick<CompiledCoordinatorOptions, 'tls' | 'host' | 'peerCaFile'>,
  log: Logger,
): Promise<ServedTls> {
  const { tls } = options;
  const createdCertificate =
    tls && tls.generated ? await ensureGeneratedCertificate(tls, options.host) : false;
  const certificate = tls ? await readConfigFile(tls.certFile, '--tls-cert') : null;
  const fingerprint = certificate ? certificateFingerprint(certificate, '--tls-cert') : null;
  const certificates =
    tls && certificate ? CertificateManager.load(tls, certificate, log) : undefined;
  const peerCa =
    options.peerCaFile === undefined
      ? undefined
      : await readConfigFile(options.peerCaFile, '--peer-ca');
  if (peerCa !== undefined) certificateFingerprint(peerCa, '--peer-ca');
  return { certificate, fingerprint, certificates, createdCertificate, peerCa };
}
