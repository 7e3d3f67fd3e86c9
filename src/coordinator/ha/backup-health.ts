/**
 * What a primary knows of each backup's health, measured both ways:
 *
 * - the backup's calls to this primary (its heartbeats: `lastContact` in the store);
 * - this primary's calls to the backup at its advertised URL, with its certificate verified
 *   (Failback.check, every HA heartbeat, for the selected backup and owed ones; and once at select);
 * - the replication error the backup reports in its heartbeats while one repeats;
 * - the lag as this primary sees it (its change stream against the backup's acknowledgements).
 *
 * The first failing check, in that order, names the health:
 *
 *   unreachable          the backup has not called this primary within the healthy window
 *   unverified           this primary cannot call the backup with a verified certificate
 *   failback-failing     the backup ran the cluster and its history cannot be taken back
 *   replication-failing  the backup's copy cannot apply what this primary sends
 *   lagging              its copy is more than LAGGING_AFTER_S behind
 *   healthy              none of these
 */
import { MusterError, toMusterError } from '../../protocol/errors.js';
import type { BackupHealth } from '../../api/status.js';

/** A selected backup whose copy is further behind than this is `lagging`. */
export const LAGGING_AFTER_S = 60;
/** The longest replication error a backup may report (its heartbeat query carries it). */
export const MAX_REPORTED_ERROR = 500;

export interface CallResult {
  ok: boolean;
  /** When (ms since the epoch). */
  at: number;
  /** Why it failed, with the fix where one is known. */
  message?: string | undefined;
}

export interface HealthInput {
  /** Whether the primary calls this backup (selected, or owed its history). */
  called: boolean;
  selected: boolean;
  lastContactMs: number | undefined;
  healthyWithinMs: number;
  lagSeconds: number | null;
  now: number;
}

export interface HealthVerdict {
  health: BackupHealth;
  /** Why it is not healthy (null when it is). */
  reason: string | null;
}

export class BackupHealthBook {
  private readonly calls = new Map<string, CallResult>();
  private readonly reports = new Map<string, { error: string; at: number }>();
  private readonly failbacks = new Map<string, string>();

  /** The outcome of this primary's latest verified call to a backup. */
  noteCall(name: string, result: CallResult): void {
    this.calls.set(name, result);
  }

  lastCall(name: string): CallResult | undefined {
    return this.calls.get(name);
  }

  /** What the backup's latest heartbeat said of its replication (undefined: it is fine). */
  noteReport(name: string, error: string | undefined, at: number): void {
    if (error === undefined) this.reports.delete(name);
    else this.reports.set(name, { error: error.slice(0, MAX_REPORTED_ERROR), at });
  }

  replicationError(name: string): string | null {
    return this.reports.get(name)?.error ?? null;
  }

  /** The last failback from this backup failed (with why), or completed (undefined). */
  noteFailback(name: string, error: string | undefined): void {
    if (error === undefined) this.failbacks.delete(name);
    else this.failbacks.set(name, error.slice(0, MAX_REPORTED_ERROR));
  }

  forget(name: string): void {
    this.calls.delete(name);
    this.reports.delete(name);
    this.failbacks.delete(name);
  }

  evaluate(name: string, input: HealthInput): HealthVerdict {
    const { lastContactMs, now } = input;
    if (lastContactMs === undefined)
      return { health: 'unreachable', reason: 'it has never called this primary' };
    if (now - lastContactMs > input.healthyWithinMs)
      return {
        health: 'unreachable',
        reason: `it has not called this primary for ${Math.round((now - lastContactMs) / 1000)} s`,
      };
    const call = input.called ? this.calls.get(name) : undefined;
    if (call && !call.ok)
      return {
        health: 'unverified',
        reason: `this primary cannot reach it: ${call.message ?? 'no answer'}`,
      };
    const failback = input.called ? this.failbacks.get(name) : undefined;
    if (failback !== undefined)
      return {
        health: 'failback-failing',
        reason: `it ran the cluster and this primary cannot take its history back: ${failback}`,
      };
    const report = input.selected ? this.reports.get(name) : undefined;
    if (report)
      return { health: 'replication-failing', reason: `replication failing: ${report.error}` };
    if (input.selected && input.lagSeconds !== null && input.lagSeconds > LAGGING_AFTER_S)
      return {
        health: 'lagging',
        reason: `its copy is ${Math.round(input.lagSeconds)} s behind this primary`,
      };
    return { health: 'healthy', reason: null };
  }
}

/**
 * Why this primary could not call a backup at `url`, and what fixes it: the certificate is not
 * trusted here, does not name the URL's host, is not the one it registered with, nothing answers,
 * or the backup refuses this primary.
 */
export function explainCallFailure(err: unknown, url: string): string {
  const error = toMusterError(err);
  const text = error.message;
  const cause = typeof error.details?.cause === 'string' ? error.details.cause : '';
  if (error.code === 'TLS_FINGERPRINT_MISMATCH')
    return `${text}: it presents another certificate than the one it registered with; restart the backup so it registers its current one`;
  if (cause === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `its certificate does not name the host of its advertised URL ${url}: give the backup a certificate for that host (--tls-cert), or advertise a URL its certificate names (--advertise-url)`;
  if (TRUST_FAILURES.has(cause))
    return `its certificate is not trusted here (${cause}): start this primary with --peer-ca FILE, the CA that signed the backup's certificate`;
  if (cause === 'ECONNREFUSED' || cause === 'ENOTFOUND' || cause === 'EHOSTUNREACH')
    return `nothing answers at its advertised URL ${url} from this primary (${cause}): check the backup's --advertise-url and the firewall`;
  if (error.code === 'REQUEST_TIMEOUT')
    return `no answer from its advertised URL ${url} in time: check the backup's --advertise-url and the firewall`;
  if (error.code === 'UNAUTHORIZED')
    return `it does not accept this primary's secret for it (${text}): remove it (muster backup remove NAME) and let it register again`;
  return text;
}

const TRUST_FAILURES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
]);

/** The refusal `select` gives for a backup this primary cannot call as it is. */
export function unverifiedBackup(name: string, url: string, why: string): MusterError {
  return new MusterError(
    'BACKUP_UNVERIFIED',
    `backup ${name} cannot be selected: this primary cannot reach it at ${url} with a verified certificate: ${why}`,
    { backup: name, url },
  );
}
