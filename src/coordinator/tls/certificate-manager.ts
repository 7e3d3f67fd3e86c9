/**
 * The certificate a TLS coordinator serves, and replacing it while it runs. A replacement is
 * written over the --tls-cert/--tls-key files (so a restart serves it too) and then swapped into
 * the listening server, so new connections get it without a restart. With a selected backup the
 * new certificate is announced first, and the swap waits (bounded) for the backup to say it has
 * accepted it, since the backup pins this coordinator's certificate (see ha/primary-pins.ts).
 */
import { randomBytes } from 'node:crypto';
import { copyFile, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { MusterError } from '../../protocol/errors.js';
import type { CertificateReplacedView } from '../../api/views/certificates.js';
import {
  checkCertificate,
  parseChain,
  viewOf,
  type CertificateView,
  type CheckedCertificate,
} from './certificate-check.js';
import type { X509Certificate } from 'node:crypto';

/** A certificate this coordinator presents or is about to present, as told to its backups. */
export interface AnnouncedCertificate {
  fingerprint: string;
  /** The server certificate (PEM), which a backup adds to what it trusts for its primary. */
  certificate: string;
}

/** What the selected backup did with an announcement; null when no backup is selected. */
export type BackupConfirmation = NonNullable<CertificateReplacedView['backup']>;

export interface ReplaceSteps {
  /** Waits for the selected backup to accept the fingerprint (bounded); null without one. */
  confirmBackup: (fingerprint: string) => Promise<BackupConfirmation | null>;
  /** Puts the pair into the listening server (new connections get it). */
  swap: (cert: string, key: string) => void;
}

/**
 * How long a replacement waits for the selected backup to accept the new fingerprint: a few of
 * its heartbeats (it learns the fingerprint in one, confirms in the next), 10 s to 60 s.
 */
export function backupConfirmWaitMs(haHeartbeatMs: number): number {
  return Math.min(Math.max(haHeartbeatMs * 10, 10_000), 60_000);
}

export class CertificateManager {
  private pending: AnnouncedCertificate | undefined;
  private replacing = false;

  private constructor(
    private readonly files: { certFile: string; keyFile: string },
    private chain: X509Certificate[],
    private leafPem: string,
    private readonly log: Logger,
  ) {}

  static load(
    files: { certFile: string; keyFile: string },
    certificatePem: string,
    log: Logger,
  ): CertificateManager {
    const { blocks, chain } = parseChain(certificatePem);
    return new CertificateManager(files, chain, `${blocks[0]!}\n`, log);
  }

  get fingerprint(): string {
    return this.chain[0]!.fingerprint256;
  }

  view(): CertificateView {
    return viewOf(this.chain, { certificate: this.files.certFile, key: this.files.keyFile });
  }

  /** The current certificate and, during a replacement, the next one. */
  announced(): AnnouncedCertificate[] {
    const current = { fingerprint: this.fingerprint, certificate: this.leafPem };
    return this.pending ? [current, this.pending] : [current];
  }

  async replace(
    checked: CheckedCertificate,
    steps: ReplaceSteps,
  ): Promise<CertificateReplacedView> {
    if (this.replacing)
      throw new MusterError(
        'CONFLICT',
        'another certificate replacement is under way: wait for it to finish, then look again',
      );
    this.replacing = true;
    const { certFile, keyFile } = this.files;
    const temps: string[] = [];
    try {
      // Written (and synced) before anything changes, so a disk that refuses fails early.
      const certTemp = await writeTemp(certFile, checked.chainPem, await modeOf(certFile, 0o644));
      temps.push(certTemp);
      const keyTemp = await writeTemp(keyFile, checked.keyPem, 0o600);
      temps.push(keyTemp);
      return await this.rollOver(checked, steps, 'replaced', async () => {
        await this.install(certTemp, keyTemp);
        temps.length = 0;
      });
    } finally {
      this.pending = undefined;
      this.replacing = false;
      await Promise.all(temps.map((t) => rm(t, { force: true })));
    }
  }

  /**
   * SIGHUP: the --tls-cert/--tls-key files read again (an operator or certbot replaced them).
   * Another certificate than the one served is checked as an upload is (its key, its chain, the
   * names it must cover), announced to the selected backup like a replacement, and swapped into
   * the listening server; the files are the operator's and are not rewritten. Undefined when the
   * files hold the certificate already served.
   */
  async reloadFiles(
    hostnames: string[],
    steps: ReplaceSteps,
  ): Promise<CertificateReplacedView | undefined> {
    if (this.replacing)
      throw new MusterError(
        'CONFLICT',
        'a certificate replacement is under way: send SIGHUP again once it has finished',
      );
    const { certFile, keyFile } = this.files;
    const [certificatePem, keyPem] = await Promise.all([
      readFile(certFile, 'utf8'),
      readFile(keyFile, 'utf8'),
    ]).catch((err: unknown) => {
      throw new MusterError(
        'INVALID_CONFIG',
        `cannot read ${certFile} or ${keyFile} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        undefined,
        { cause: err },
      );
    });
    const checked = checkCertificate(certificatePem, keyPem, hostnames, new Date());
    const fingerprint = checked.leaf.fingerprint256;
    if (fingerprint === this.fingerprint) return undefined;
    this.replacing = true;
    try {
      return await this.rollOver(checked, steps, 'reloaded from its files', async () => {
        // The operator's files: already in place.
      });
    } finally {
      this.pending = undefined;
      this.replacing = false;
    }
  }

  /**
   * Announces the checked certificate to the selected backup and waits (bounded) for it, then
   * installs it (`install`: the files, when they are Muster's to write) and swaps it into the
   * listening server. The caller holds `replacing`.
   */
  private async rollOver(
    checked: CheckedCertificate,
    steps: ReplaceSteps,
    how: string,
    install: () => Promise<void>,
  ): Promise<CertificateReplacedView> {
    const { certFile, keyFile } = this.files;
    const fingerprint = checked.leaf.fingerprint256;
    this.pending = { fingerprint, certificate: checked.leafPem };
    const backup = await steps.confirmBackup(fingerprint);
    await install();
    steps.swap(checked.chainPem, checked.keyPem);
    const previous = this.fingerprint;
    this.chain = checked.chain;
    this.leafPem = checked.leafPem;
    this.log.warn(
      {
        fingerprint,
        previous,
        subject: checked.leaf.subject,
        validTo: checked.leaf.validTo,
        certFile,
        keyFile,
        backup,
      },
      `the TLS certificate was ${how}: new connections get the new one`,
    );
    return { certificate: this.view(), backup };
  }

  /** Keeps the current pair as <file>.previous, then renames the new files into place. */
  private async install(certTemp: string, keyTemp: string): Promise<void> {
    const { certFile, keyFile } = this.files;
    try {
      await copyAtomic(certFile, `${certFile}.previous`, await modeOf(certFile, 0o644));
      await copyAtomic(keyFile, `${keyFile}.previous`, 0o600);
    } catch (err) {
      throw writeFailed(err, 'keeping the previous pair');
    }
    try {
      await rename(certTemp, certFile);
    } catch (err) {
      throw writeFailed(err, certFile);
    }
    try {
      await rename(keyTemp, keyFile);
    } catch (err) {
      // Never leave a certificate next to a key that is not its own.
      await copyAtomic(`${certFile}.previous`, certFile, 0o644).catch((restore: unknown) =>
        this.log.error(
          { err: restore },
          `restoring ${certFile} failed: restore it from ${certFile}.previous`,
        ),
      );
      throw writeFailed(err, keyFile);
    }
    await syncDir(dirname(certFile));
    if (dirname(keyFile) !== dirname(certFile)) await syncDir(dirname(keyFile));
  }
}

function writeFailed(err: unknown, what: string): MusterError {
  return new MusterError(
    'CERT_WRITE_FAILED',
    `cannot write the certificate files (${what}: ${(err as Error).message}); nothing was changed: let the coordinator's user write the --tls-cert and --tls-key files and their folders`,
  );
}

async function modeOf(file: string, fallback: number): Promise<number> {
  try {
    return (await stat(file)).mode & 0o777;
  } catch {
    return fallback;
  }
}

/** A synced temp file next to `file` (same folder, so the rename is atomic). */
async function writeTemp(file: string, content: string, mode: number): Promise<string> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  let handle;
  try {
    handle = await open(temp, 'wx', mode);
    await handle.writeFile(content);
    await handle.chmod(mode);
    await handle.sync();
  } catch (err) {
    await handle?.close();
    await rm(temp, { force: true });
    throw writeFailed(err, file);
  }
  await handle.close();
  return temp;
}

async function copyAtomic(from: string, to: string, mode: number): Promise<void> {
  const temp = `${to}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await copyFile(from, temp);
    const handle = await open(temp, 'r+');
    try {
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, to);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** Makes the renames durable; some file systems refuse to sync a folder, which is fine. */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort
  }
}
