/**
 * The coordinator's options, validated once into frozen CompiledCoordinatorOptions (absolute
 * paths, durations in milliseconds).
 */
import { resolve } from 'node:path';
import { parseDuration, parseHostPort, parseLogLevel } from '../protocol/duration.js';
import { MusterError } from '../protocol/errors.js';

export const DEFAULT_COORDINATOR_PORT = 8000;

export interface CoordinatorOptions {
  listen?: string;
  data?: string;
  tlsCert?: string;
  tlsKey?: string;
  backupOf?: string;
  logLevel?: string;
  /** How long a lost agent's running attempts wait for it to come back before they are retried. */
  agentLossGrace?: string;
  heartbeatInterval?: string;
  tokenTtl?: string;
  maxUploadBytes?: number;
  /** Extra extension folders shipped to agents besides core (tests, `muster up`). */
  extensionDirs?: string[];
  /** Host runtime folder (default: this package's). */
  hostDir?: string;
}

export interface CompiledCoordinatorOptions {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly tls: { readonly certFile: string; readonly keyFile: string } | false;
  readonly backupOf: string | undefined;
  readonly logLevel: string;
  readonly agentLossGraceMs: number;
  readonly heartbeatIntervalMs: number;
  readonly tokenTtlMs: number;
  readonly maxUploadBytes: number;
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
  if (options.backupOf !== undefined && !/^https?:\/\//.test(options.backupOf)) {
    throw new MusterError(
      'INVALID_CONFIG',
      "--backup-of must be the primary's URL (https://HOST:PORT)",
    );
  }
  return Object.freeze({
    host,
    port,
    dataDir: resolve(options.data ?? '.muster/coordinator'),
    tls:
      options.tlsCert !== undefined && options.tlsKey !== undefined
        ? { certFile: resolve(options.tlsCert), keyFile: resolve(options.tlsKey) }
        : false,
    backupOf: options.backupOf,
    logLevel: parseLogLevel(options.logLevel),
    agentLossGraceMs: parseDuration(options.agentLossGrace ?? '15s', '--agent-loss-grace'),
    heartbeatIntervalMs: parseDuration(options.heartbeatInterval ?? '5s', '--heartbeat-interval'),
    tokenTtlMs: parseDuration(options.tokenTtl ?? '30d', '--token-ttl'),
    maxUploadBytes: options.maxUploadBytes ?? 1024 * 1024 * 1024,
    hostDir: options.hostDir === undefined ? undefined : resolve(options.hostDir),
  });
}
