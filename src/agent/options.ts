/**
 * The agent's options: what the CLI (or a test) passes in, validated once into frozen
 * CompiledAgentOptions with absolute paths and durations in milliseconds.
 */
import { resolve } from 'node:path';
import { MusterError } from '../protocol/errors.js';
import { parseDuration, parseHostPort, parseLogLevel } from '../common/duration.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/framing.js';
import { parseJoinToken, type JoinToken } from '../protocol/outbound.js';

export const DEFAULT_AGENT_PORT = 7420;

/**
 * Frames a peer may send before it has authenticated: hello and auth are a few hundred bytes, so
 * a stranger can make the agent buffer at most this much per connection.
 */
export const DEFAULT_PRE_AUTH_MAX_FRAME_BYTES = 16 * 1024;
/** Connections not yet authenticated, in all (the oldest is dropped to admit a new one). */
export const DEFAULT_MAX_UNAUTHENTICATED = 256;
/** Connections not yet authenticated from one source address (IPv6: one /64); more are refused. */
export const DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS = 16;

export interface AgentOptions {
  listen?: string;
  /** The coordinator to dial out to (https://HOST:PORT): the agent needs no open port. */
  connect?: string;
  joinToken?: string;
  joinTokenFile?: string;
  /** HOST:PORT of a plain-HTTP GET /metrics; none by default. */
  metricsListen?: string;
  data?: string;
  tempDir?: string;
  accessKey?: string;
  accessKeyFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tls?: boolean;
  taskGrace?: string;
  hostIdle?: string;
  leaseTtl?: string;
  drainTimeout?: string;
  handshakeTimeout?: string;
  gcInterval?: string;
  versionRetention?: string;
  blobRetention?: string;
  instanceIdleTtl?: string;
  maxFrameBytes?: number;
  preAuthMaxFrameBytes?: number;
  maxUnauthenticated?: number;
  maxUnauthenticatedPerAddress?: number;
  maxTaskOutputBytes?: number;
  logLevel?: string;
  /** `auto` (default): tasks run as users of their instance's own when the agent is root. */
  taskUsers?: string;
}

export interface CompiledAgentOptions {
  /** Whether it listens for coordinators at host:port (with --connect only if --listen is given). */
  readonly listens: boolean;
  readonly host: string;
  readonly port: number;
  /**
   * Dialing out (src/agent/outbound.ts): the coordinator's URL, and the join token that admits
   * this agent the first time (given, or read from a file at start).
   */
  readonly connect:
    | {
        readonly url: string;
        readonly joinToken?: JoinToken;
        readonly joinTokenFile?: string;
      }
    | undefined;
  /** Where GET /metrics is served (--metrics-listen); undefined: not served. */
  readonly metrics: { readonly host: string; readonly port: number } | undefined;
  readonly dataDir: string;
  readonly tempDir: string;
  readonly accessKey?: string;
  readonly accessKeyFile?: string;
  readonly tls: { readonly certFile: string; readonly keyFile: string } | 'self-signed' | false;
  readonly taskGraceMs: number;
  readonly hostIdleMs: number;
  /** How long a cluster lease lives without renewal (a holder renews with every ping). */
  readonly leaseTtlMs: number;
  readonly drainTimeoutMs: number;
  /** The TLS handshake, and then hello/challenge/auth, must each complete within this. */
  readonly handshakeTimeoutMs: number;
  readonly gcIntervalMs: number;
  readonly versionRetentionMs: number;
  /** Unreferenced blobs younger than this are kept (an upload may be about to use them). */
  readonly blobRetentionMs: number;
  /**
   * An instance with no connection and no task for this long is removed (instance-removal.ts);
   * 0 keeps instances forever.
   */
  readonly instanceIdleTtlMs: number;
  readonly maxFrameBytes: number;
  /** The frame limit until the peer has authenticated (then maxFrameBytes). */
  readonly preAuthMaxFrameBytes: number;
  /** Unauthenticated connections (accepted, not yet authenticated) in all. */
  readonly maxUnauthenticated: number;
  /** Unauthenticated connections per source address (IPv6: per /64 prefix). */
  readonly maxUnauthenticatedPerAddress: number;
  /** Output kept per task; the first part stays in memory, the rest spills to disk. */
  readonly maxTaskOutputBytes: number;
  readonly taskOutputMemoryBytes: number;
  readonly logLevel: string;
  /**
   * Each instance's host process (and so its tasks) runs as a system user of its own that the
   * agent creates (task-users.ts). Only possible when the agent runs as root.
   */
  readonly taskUsers: boolean;
}

export function compileAgentOptions(options: AgentOptions): CompiledAgentOptions {
  const { host, port } = parseHostPort(
    options.listen ?? `0.0.0.0:${DEFAULT_AGENT_PORT}`,
    { host: '0.0.0.0', port: DEFAULT_AGENT_PORT },
    '--listen',
  );
  if (options.accessKey !== undefined && options.accessKeyFile !== undefined) {
    throw new MusterError('INVALID_CONFIG', 'give --access-key or --access-key-file, not both');
  }
  if (options.accessKey !== undefined && options.accessKey.length < 16) {
    throw new MusterError('INVALID_CONFIG', '--access-key must be at least 16 characters');
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new MusterError('INVALID_CONFIG', '--tls-cert and --tls-key go together');
  }
  if (options.tls === false && options.tlsCert !== undefined) {
    throw new MusterError(
      'INVALID_CONFIG',
      '--no-tls cannot be combined with --tls-cert/--tls-key',
    );
  }
  const dataDir = resolve(options.data ?? '.muster/agent');
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 64 * 1024) {
    throw new MusterError('INVALID_CONFIG', 'the frame limit must be at least 64 KiB');
  }
  const preAuthMaxFrameBytes = options.preAuthMaxFrameBytes ?? DEFAULT_PRE_AUTH_MAX_FRAME_BYTES;
  if (
    !Number.isInteger(preAuthMaxFrameBytes) ||
    preAuthMaxFrameBytes < 1024 ||
    preAuthMaxFrameBytes > maxFrameBytes
  ) {
    throw new MusterError(
      'INVALID_CONFIG',
      'the frame limit before authentication must be from 1 KiB to the frame limit',
    );
  }
  const maxUnauthenticated = positiveInteger(
    options.maxUnauthenticated ?? DEFAULT_MAX_UNAUTHENTICATED,
    'the limit of unauthenticated connections',
  );
  const maxUnauthenticatedPerAddress = positiveInteger(
    options.maxUnauthenticatedPerAddress ?? DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS,
    'the limit of unauthenticated connections per address',
  );
  const metrics =
    options.metricsListen === undefined || options.metricsListen === ''
      ? undefined
      : parseHostPort(options.metricsListen, { host: '127.0.0.1', port: 9464 }, '--metrics-listen');
  const compiled: CompiledAgentOptions = {
    listens: options.connect === undefined || options.listen !== undefined,
    host,
    port,
    connect: compileConnect(options),
    metrics,
    dataDir,
    tempDir: resolve(options.tempDir ?? `${dataDir}/temp`),
    ...(options.accessKey === undefined ? {} : { accessKey: options.accessKey }),
    ...(options.accessKeyFile === undefined
      ? {}
      : { accessKeyFile: resolve(options.accessKeyFile) }),
    tls:
      options.tls === false
        ? false
        : options.tlsCert !== undefined && options.tlsKey !== undefined
          ? { certFile: resolve(options.tlsCert), keyFile: resolve(options.tlsKey) }
          : 'self-signed',
    taskGraceMs: parseDuration(options.taskGrace ?? '30m', '--task-grace'),
    hostIdleMs: parseDuration(options.hostIdle ?? '10m', '--host-idle'),
    leaseTtlMs: parseDuration(options.leaseTtl ?? '15s', '--lease-ttl'),
    drainTimeoutMs: parseDuration(options.drainTimeout ?? '30s', '--drain-timeout'),
    handshakeTimeoutMs: parseDuration(options.handshakeTimeout ?? '10s', '--handshake-timeout'),
    gcIntervalMs: parseDuration(options.gcInterval ?? '1h', '--gc-interval'),
    versionRetentionMs: parseDuration(options.versionRetention ?? '7d', '--version-retention'),
    blobRetentionMs: parseDuration(options.blobRetention ?? '1h', '--blob-retention'),
    instanceIdleTtlMs: parseDuration(options.instanceIdleTtl ?? '30d', '--instance-idle-ttl'),
    maxFrameBytes,
    preAuthMaxFrameBytes,
    maxUnauthenticated,
    maxUnauthenticatedPerAddress: Math.min(maxUnauthenticatedPerAddress, maxUnauthenticated),
    maxTaskOutputBytes: options.maxTaskOutputBytes ?? 64 * 1024 * 1024,
    taskOutputMemoryBytes: 256 * 1024,
    logLevel: parseLogLevel(options.logLevel),
    taskUsers: compileTaskUsers(options.taskUsers),
  };
  return Object.freeze(compiled);
}

function compileConnect(options: AgentOptions): CompiledAgentOptions['connect'] {
  if (options.connect === undefined) {
    if (options.joinToken !== undefined || options.joinTokenFile !== undefined)
      throw new MusterError('INVALID_CONFIG', '--join-token needs --connect URL');
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(options.connect);
  } catch {
    throw new MusterError(
      'INVALID_CONFIG',
      `--connect "${options.connect}" is not a URL (https://HOST:PORT of the coordinator)`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new MusterError('INVALID_CONFIG', '--connect must be an https:// (or http://) URL');
  if (options.joinToken !== undefined && options.joinTokenFile !== undefined)
    throw new MusterError('INVALID_CONFIG', 'give --join-token or --join-token-file, not both');
  let joinToken: JoinToken | undefined;
  if (options.joinToken !== undefined) {
    joinToken = parseJoinToken(options.joinToken);
    if (joinToken === undefined)
      throw new MusterError(
        'INVALID_CONFIG',
        '--join-token is not a join token (mjt_…, from muster agents tokens create)',
      );
  }
  return {
    url: url.origin,
    ...(joinToken === undefined ? {} : { joinToken }),
    ...(options.joinTokenFile === undefined
      ? {}
      : { joinTokenFile: resolve(options.joinTokenFile) }),
  };
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new MusterError('INVALID_CONFIG', `${what} must be a whole number of at least 1`);
  }
  return value;
}

/** `auto` is on exactly when the agent runs as root; `on` insists (and refuses to start otherwise). */
function compileTaskUsers(mode = 'auto'): boolean {
  const root = process.getuid?.() === 0;
  if (mode === 'auto') return root;
  if (mode === 'off') return false;
  if (mode === 'on') {
    if (!root) {
      throw new MusterError(
        'INVALID_CONFIG',
        '--task-users on needs the agent to run as root (it creates a user per instance)',
      );
    }
    return true;
  }
  throw new MusterError('INVALID_CONFIG', `--task-users must be auto, on or off (got "${mode}")`);
}
