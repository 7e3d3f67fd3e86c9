/**
 * The coordinator's options, validated once into frozen CompiledCoordinatorOptions (absolute
 * paths, durations in milliseconds).
 */
import { isLoopbackHost } from '../common/addresses.js';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseDuration, parseHostPort, parseLogLevel } from '../common/duration.js';
import { SIZE_EXAMPLES, parseSize } from '../common/size.js';
import { MusterError } from '../protocol/errors.js';

export const DEFAULT_COORDINATOR_PORT = 8000;

export interface CoordinatorOptions {
  listen?: string;
  data?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** false (`--no-tls`): plain HTTP even off loopback. */
  tls?: boolean;
  backupOf?: string;
  /** A backup's name in its primary's list (default: this machine's host name). */
  backupName?: string;
  /** The URL the primary and clients use to reach this backup (default: from --listen). */
  advertiseUrl?: string;
  /**
   * A CA (PEM file) trusted for the other coordinator: on a backup for its primary, on a primary
   * for its backups, when their certificates are not publicly trusted (a private CA).
   */
  peerCa?: string;
  /** The older name of peerCa (a backup's trust in its primary). */
  primaryCa?: string;
  /** How long a backup waits with the primary unreachable before it takes over. */
  failoverTimeout?: string;
  /** How often a backup checks on its primary (and the primary on its backup). */
  haHeartbeat?: string;
  /** A primary deselects its selected backup after this long out of touch. */
  deselectAfter?: string;
  /** A primary with a join token registers only backups that give it; a backup sends it. */
  joinToken?: string;
  logLevel?: string;
  /** How long a lost agent's running attempts wait for it to come back before they are retried. */
  agentLossGrace?: string;
  /** A compile session not heard from this long is closed as failed (default 2m). */
  compileIdleTimeout?: string;
  heartbeatInterval?: string;
  tokenTtl?: string;
  maxUploadBytes?: number;
  /** How long a client may take to send a request's head and body (a login, a plan). */
  requestTimeout?: string;
  /** A connection with no traffic in either direction for this long is closed. */
  idleTimeout?: string;
  /**
   * How long an idle keep-alive connection is kept open between requests (longer than the 60 s
   * a load balancer in front commonly keeps its idle connections, so it never reuses one the
   * coordinator is closing).
   */
  keepAliveTimeout?: string;
  /** scrypt cost of password hashes as log2(N), 14 to 20 (default 17). */
  passwordCost?: number | string;
  /** Bytes of uploaded blobs that no build or extension references yet, in all (e.g. "10GiB"). */
  uploadQuota?: number | string;
  /** The same, per user. */
  uploadQuotaPerUser?: number | string;
  /** Blobs nothing references are deleted once they are this old. */
  blobRetention?: string;
  /** Compiler toolchains no compile job named for this long are removed (default 30d). */
  toolchainRetention?: string;
  /** Extra extension folders shipped to agents besides core (tests, `muster up`). */
  extensionDirs?: string[];
  /** Host runtime folder (default: this package's). */
  hostDir?: string;
}

export interface CompiledCoordinatorOptions {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /**
   * HTTPS with these files, or plain HTTP (false). `generated`: the files are the self-signed
   * pair this coordinator makes at its first start in <data>/tls (no --tls-cert given).
   */
  readonly tls:
    { readonly certFile: string; readonly keyFile: string; readonly generated: boolean } | false;
  /** Why it serves plain HTTP: --no-tls, or a loopback --listen address; undefined with TLS. */
  readonly plainHttp: 'no-tls' | 'loopback' | undefined;
  readonly backupOf: string | undefined;
  readonly backupName: string;
  readonly advertiseUrl: string | undefined;
  /** --peer-ca (or its older name --primary-ca). */
  readonly peerCaFile: string | undefined;
  readonly failoverTimeoutMs: number;
  readonly haHeartbeatMs: number;
  readonly deselectAfterMs: number;
  readonly joinToken: string | undefined;
  readonly logLevel: string;
  readonly agentLossGraceMs: number;
  readonly compileIdleTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly tokenTtlMs: number;
  readonly maxUploadBytes: number;
  readonly requestTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly passwordCost: number;
  readonly uploadQuotaBytes: number;
  readonly uploadQuotaPerUserBytes: number;
  readonly blobRetentionMs: number;
  readonly toolchainRetentionMs: number;
  readonly hostDir: string | undefined;
}

export function compileCoordinatorOptions(options: CoordinatorOptions): CompiledCoordinatorOptions {
  const { host, port } = parseHostPort(
    options.listen ?? `0.0.0.0:${DEFAULT_COORDINATOR_PORT}`,
    { host: '0.0.0.0', port: DEFAULT_COORDINATOR_PORT },
    '--listen',
  );
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new MusterError('INVALID_CONFIG', '--tls-cert and --tls-key go together');
  }
  if (options.tls === false && options.tlsCert !== undefined) {
    throw new MusterError(
      'INVALID_CONFIG',
      '--no-tls cannot be combined with --tls-cert/--tls-key: give the certificate, or --no-tls',
    );
  }
  const dataDir = resolve(options.data ?? '.muster/coordinator');
  // Encrypted by default: only --no-tls, or an address no other machine can reach, is plain.
  const plainHttp =
    options.tls === false
      ? ('no-tls' as const)
      : options.tlsCert === undefined && isLoopbackHost(host)
        ? ('loopback' as const)
        : undefined;
  return Object.freeze({
    host,
    port,
    dataDir,
    tls:
      plainHttp !== undefined
        ? false
        : options.tlsCert !== undefined && options.tlsKey !== undefined
          ? {
              certFile: resolve(options.tlsCert),
              keyFile: resolve(options.tlsKey),
              generated: false,
            }
          : {
              certFile: join(dataDir, 'tls', 'cert.pem'),
              keyFile: join(dataDir, 'tls', 'key.pem'),
              generated: true,
            },
    plainHttp,
    backupOf: checkUrl(options.backupOf, "--backup-of (the primary's URL, https://HOST:PORT)"),
    backupName: checkName(options.backupName ?? hostname()),
    advertiseUrl: checkUrl(options.advertiseUrl, '--advertise-url'),
    peerCaFile: peerCaFile(options),
    failoverTimeoutMs: parseDuration(options.failoverTimeout ?? '30s', '--failover-timeout'),
    haHeartbeatMs: parseDuration(options.haHeartbeat ?? '1s', '--ha-heartbeat'),
    deselectAfterMs: parseDuration(options.deselectAfter ?? '60m', '--deselect-after'),
    joinToken: options.joinToken === '' ? undefined : options.joinToken,
    logLevel: parseLogLevel(options.logLevel),
    agentLossGraceMs: parseDuration(options.agentLossGrace ?? '15s', '--agent-loss-grace'),
    compileIdleTimeoutMs: positive(
      parseDuration(options.compileIdleTimeout ?? '2m', '--compile-idle-timeout'),
      '--compile-idle-timeout',
    ),
    heartbeatIntervalMs: parseDuration(options.heartbeatInterval ?? '5s', '--heartbeat-interval'),
    tokenTtlMs: parseDuration(options.tokenTtl ?? '30d', '--token-ttl'),
    maxUploadBytes: options.maxUploadBytes ?? 1024 * 1024 * 1024,
    requestTimeoutMs: positive(
      parseDuration(options.requestTimeout ?? '30s', '--request-timeout'),
      '--request-timeout',
    ),
    idleTimeoutMs: positive(
      parseDuration(options.idleTimeout ?? '2m', '--idle-timeout'),
      '--idle-timeout',
    ),
    keepAliveTimeoutMs: positive(
      parseDuration(options.keepAliveTimeout ?? '72s', '--keep-alive-timeout'),
      '--keep-alive-timeout',
    ),
    passwordCost: checkPasswordCost(options.passwordCost ?? DEFAULT_PASSWORD_COST),
    uploadQuotaBytes: sizeOption(options.uploadQuota ?? '10GiB', '--upload-quota'),
    uploadQuotaPerUserBytes: sizeOption(
      options.uploadQuotaPerUser ?? '5GiB',
      '--upload-quota-per-user',
    ),
    blobRetentionMs: positive(
      parseDuration(options.blobRetention ?? '1h', '--blob-retention'),
      '--blob-retention',
    ),
    toolchainRetentionMs: positive(
      parseDuration(options.toolchainRetention ?? '30d', '--toolchain-retention'),
      '--toolchain-retention',
    ),
    hostDir: options.hostDir === undefined ? undefined : resolve(options.hostDir),
  });
}

/** log2(N) of scrypt for new password hashes: 2^17 (128 MiB, r=8), as OWASP advises. */
export const DEFAULT_PASSWORD_COST = 17;

function checkPasswordCost(value: number | string): number {
  const cost = Number(value);
  if (!Number.isInteger(cost) || cost < 14 || cost > 20) {
    throw new MusterError(
      'INVALID_CONFIG',
      `--password-cost must be a whole number from 14 to 20 (log2 of scrypt's N), got "${value}"`,
    );
  }
  return cost;
}

function positive(ms: number, flag: string): number {
  if (ms <= 0) throw new MusterError('INVALID_CONFIG', `${flag} must be longer than 0`);
  return ms;
}

/** Parses a byte count (common/size.ts): a number, or "512MiB", "10GiB", "2GB", "1T". */
function sizeOption(value: number | string, flag: string): number {
  const bytes = parseSize(value);
  if (bytes === undefined)
    throw new MusterError(
      'INVALID_CONFIG',
      `${flag} "${value}" is not a size (examples: ${SIZE_EXAMPLES})`,
    );
  return bytes;
}

function checkName(name: string): string {
  // A host name may have dots and dashes; anything else becomes a dash.
  const cleaned = name.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
  if (!/^[A-Za-z0-9]/.test(cleaned)) {
    throw new MusterError(
      'INVALID_CONFIG',
      `--backup-name "${name}": use letters, digits, ".", "_" and "-", starting with a letter or digit`,
    );
  }
  return cleaned;
}

/** An http(s) URL: scheme, a host (with port), an optional path, no spaces. */
export const HTTP_URL = /^https?:\/\/[^\s/]+(\/[^\s]*)?$/;

function checkUrl(url: string | undefined, flag: string): string | undefined {
  if (url === undefined) return undefined;
  if (!HTTP_URL.test(url))
    throw new MusterError('INVALID_CONFIG', `${flag} must be an http(s) URL, got "${url}"`);
  return url.replace(/\/+$/, '');
}

/** --peer-ca, or --primary-ca (its older name); both only when they name one file. */
function peerCaFile(options: CoordinatorOptions): string | undefined {
  const peer = options.peerCa === undefined ? undefined : resolve(options.peerCa);
  const primary = options.primaryCa === undefined ? undefined : resolve(options.primaryCa);
  if (peer !== undefined && primary !== undefined && peer !== primary)
    throw new MusterError(
      'VALIDATION_FAILED',
      '--primary-ca is the older name of --peer-ca: give one of them (--peer-ca FILE trusts the CA for both directions)',
    );
  return peer ?? primary;
}
