/**
 * The REST API's request bodies (zod, validated by the server) and response shapes (types the
 * CLI and UI rely on). Paths are under /api/v1; errors are `{ error: { code, message, details? } }`
 * with the codes of docs/errors.md. docs/api.md and the served OpenAPI document describe these.
 */
import { z } from 'zod';
import { sha256Hex } from '../../protocol/manifest.js';
import type { AttemptStatus, BuildStatus, Role, TaskStatus } from '../store/types.js';

export const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_", "-"; at most 64');
const label = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a label');

export const buildFileSchema = z.strictObject({
  path: z.string().min(1).max(1024),
  sha256: sha256Hex,
  size: z.number().int().nonnegative(),
  mode: z.number().int().min(0).max(0o777),
});

// ---- requests -------------------------------------------------------------------------------

export const loginBody = z.strictObject({
  user: z.string().min(1).max(64),
  password: z.string().min(1).max(1024),
});

export const addAgentBody = z.strictObject({
  name,
  /** HOST:PORT; the port defaults to 7420. */
  address: z.string().min(1).max(300),
  accessKey: z.string().min(16).max(1024),
  /** SHA-256 fingerprint of the agent's certificate (colon hex, as `muster agent` prints it). */
  fingerprint: z.string().max(200).optional(),
  /** false: plain TCP (the agent runs with --no-tls). */
  tls: z.boolean().optional(),
  labels: z.array(label).max(64).optional(),
  slots: z.number().int().min(1).max(1024).optional(),
});

/** POST /api/v1/agents/probe: the certificate an agent presents, before adding it. */
export const probeAgentBody = z.strictObject({ address: z.string().min(1).max(300) });

export const updateAgentBody = z.strictObject({
  labels: z.array(label).max(64).optional(),
  slots: z.number().int().min(1).max(1024).nullable().optional(),
});

export const addExtensionBody = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  version: z.string().min(1).max(64),
  files: z.array(buildFileSchema).min(1).max(10_000),
});

/** PUT /api/v1/certificate: a new certificate (chain) and its key, PEM. */
export const putCertificateBody = z.object({
  certificate: z.string().min(1, 'paste or choose the certificate (PEM)'),
  key: z.string().min(1, 'paste or choose the private key (PEM)'),
});

export const missingBlobsBody = z.strictObject({ hashes: z.array(sha256Hex).max(100_000) });

export const createBuildBody = z.strictObject({
  /** The plan's YAML text. */
  plan: z
    .string()
    .min(1)
    .max(1024 * 1024),
  /** The input files the client uploaded, paths relative to the plan's directory. */
  files: z.array(buildFileSchema).max(100_000).default([]),
});

export const listBuildsQuery = z.strictObject({
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  before: z.coerce.number().int().positive().optional(),
  /** Builds whose name or user contains this (any case), or whose number it is. */
  q: z.string().max(100).optional(),
});

export const logsQuery = z.strictObject({
  task: z.string().max(64).optional(),
  after: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

export const setSettingBody = z.strictObject({ value: z.unknown() });

const password = z.string().min(8, 'at least 8 characters').max(1024);
const role = z.enum(['admin', 'viewer']);

export const createUserBody = z.strictObject({ name, password, role });

/** An admin changes another user's role or password (or both). */
export const updateUserBody = z
  .strictObject({ role: role.optional(), password: password.optional() })
  .refine((b) => b.role !== undefined || b.password !== undefined, 'give a role or a password');

/** Anyone changes their own password, proving the current one. */
export const changePasswordBody = z.strictObject({
  current: z.string().min(1).max(1024),
  password,
});

// ---- responses ------------------------------------------------------------------------------

export type AgentStatus =
  | 'connecting'
  | 'syncing'
  | 'connected'
  | 'busy'
  /** Connected, but another coordinator of this cluster holds the agent's lease. */
  | 'fenced'
  | 'unreachable'
  | 'refused'
  | 'disabled';

export interface AgentView {
  name: string;
  address: string;
  status: AgentStatus;
  /** Slots this coordinator may use there (configured, or the agent's cores once known). */
  slots: number;
  /**
   * Where `slots` comes from: configured (--slots), the agent's cores on the live connection,
   * the cores it reported when it last connected (last-known: a backup standing by has no
   * connections), or unknown (1 until it connects).
   */
  slotsFrom: 'configured' | 'agent' | 'last-known' | 'unknown';
  busySlots: number;
  labels: string[];
  tls: boolean;
  fingerprint: string | null;
  /** Why it is unreachable or refused, in words. */
  lastError: string | null;
  agentVersion: string | null;
  /** This coordinator's instance key on the agent. */
  instanceKey: string | null;
  lastConnectedAt: string | null;
}

export interface TaskView {
  name: string;
  status: TaskStatus;
  exitCode: number | null;
  agent: string | null;
  attempts: number;
  needs: string[];
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  outputs: { path: string; sha256: string; size: number; mode: number }[];
  error: string | null;
}

export interface BuildView {
  id: number;
  name: string | null;
  status: BuildStatus;
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  tasks: TaskView[];
}

export interface UserView {
  name: string;
  role: Role;
  createdAt: string;
}

export interface BuildSummary {
  id: number;
  name: string | null;
  status: BuildStatus;
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  counts: { total: number; succeeded: number; failed: number; running: number; pending: number };
}

export interface AttemptView {
  task: string;
  number: number;
  agent: string;
  status: AttemptStatus;
  startedAt: string;
  finishedAt: string | null;
  exitCode: number | null;
  error: string | null;
}

export interface LogChunkView {
  id: number;
  task: string;
  attempt: number;
  stream: 'stdout' | 'stderr' | 'log';
  /** UTF-8 text (invalid sequences replaced). */
  text: string;
  at: string;
}

export interface LogsView {
  chunks: LogChunkView[];
  /** Pass as `after` to continue. */
  next: number;
}

export interface ExtensionView {
  name: string;
  version: string;
  files: number;
  bytes: number;
  addedAt: string;
  builtIn: boolean;
}

/** PUT /api/v1/backups/selected: a registered backup's name, or null for none. */
export const selectBackupBody = z.object({
  name: name.nullable(),
});

export type CoordinatorRole = 'primary' | 'backup-standby' | 'backup-active';

/** A backup coordinator as the primary lists it (GET /api/v1/backups). */
export interface BackupView {
  name: string;
  /** Where the backup serves its API and UI. */
  url: string;
  /** SHA-256 of the backup's TLS certificate (colon hex), or null without TLS. */
  fingerprint: string | null;
  selected: boolean;
  /** Measured both ways; see BackupHealth. */
  health: BackupHealth;
  /** Why it is not healthy, with the fix where one is known (null when healthy). */
  healthReason: string | null;
  /** When the backup last called this primary (ISO), or null. */
  lastContact: string | null;
  /**
   * When this primary last reached the backup at its URL with a verified certificate (ISO);
   * null when it has not (it calls only the selected backup and ones owed their history).
   */
  lastReached: string | null;
  /** The replication error the backup reports while one repeats (selected backup), or null. */
  replicationError: string | null;
  registeredAt: string;
  /** How far its copy is behind, as this primary sees it (seconds; null when not replicating). */
  lagSeconds: number | null;
}

/**
 * A backup's health, worst first: unreachable (it has not called the primary lately); unverified
 * (the primary cannot call it at its URL with a verified certificate); failback-failing (it ran
 * the cluster and the primary cannot take its history back); replication-failing (its
 * copy cannot apply the primary's changes); lagging (its copy is over a minute behind); healthy.
 */
export type BackupHealth =
  'healthy' | 'unreachable' | 'unverified' | 'failback-failing' | 'replication-failing' | 'lagging';

/** Why no backup is selected when one was deselected automatically. */
export interface DeselectionView {
  name: string;
  at: string;
  reason: string;
}

export interface StatusView {
  role: CoordinatorRole;
  version: string;
  /** Admins only. */
  instanceId?: string;
  /** The fencing term this coordinator holds (or last held) on the agents. */
  term: number;
  agents: { total: number; connected: number };
  builds: { queued: number; running: number };
  /** On a primary: the selected backup, or null when none is selected. */
  backup?: {
    name: string;
    url: string;
    health: BackupView['health'];
    healthReason: string | null;
    lastContact: string | null;
    lagSeconds: number | null;
  } | null;
  /** On a primary with no backup selected: the last automatic deselection, if any. */
  lastDeselected?: DeselectionView | null;
  /** On a backup: its primary and how far behind this copy is. */
  primary?: {
    url: string;
    reachable: boolean;
    lastContact: string | null;
    /** Seconds since the last change received was current (null before the first). */
    lagSeconds: number | null;
    selected: boolean;
    /** Finer than role: taking-over (waiting for the agents' leases), handing-back (failback). */
    state: 'standby' | 'taking-over' | 'active' | 'handing-back';
    /** Since when this backup runs the cluster (null while standing by). */
    activeSince: string | null;
    /** This backup's replication error while one repeats (`replication failing: …`), or null. */
    replicationError: string | null;
    /**
     * How the primary last judged this backup (its heartbeat answer, selected backups only):
     * health measured both ways and the lag as the primary sees it. Null before the first.
     */
    seenByPrimary: {
      health: BackupHealth;
      healthReason: string | null;
      lagSeconds: number | null;
    } | null;
  };
}

/**
 * GET /api/v1/banner, public: what the login page of a backup says about it. Only the role, the
 * primary's URL and since when a backup is active: nothing a stranger could use (no ids, keys,
 * counts or health).
 */
export interface BannerView {
  role: StatusView['role'];
  primary?: { url: string; activeSince: string | null };
}

/** The web UI's session (POST /api/v1/session/login, GET /api/v1/session). */
export interface SessionView {
  user: { name: string; role: Role };
  /** Send as x-csrf-token with every change made with the session cookie. */
  csrf: string;
  expiresAt: string | null;
}

export interface LoginView {
  token: string;
  expiresAt: string;
  user: { name: string; role: Role };
}

/** Server-sent events on GET /api/v1/events[?build=ID]: `event:` is the key, `data:` the JSON. */
export interface EventMap {
  build: BuildSummary;
  task: { buildId: number; task: TaskView };
  log: { buildId: number } & LogChunkView;
  agent: AgentView;
}

export interface ApiErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/** GET /api/v1/certificate on a TLS coordinator: the certificate it serves. */
export interface CertificateView {
  tls: true;
  subject: string;
  issuer: string;
  subjectAltName: { dns: string[]; ips: string[] };
  validFrom: string;
  validTo: string;
  fingerprint256: string;
  selfSigned: boolean;
  /** Certificates in the file: the server's own plus its intermediates. */
  chainLength: number;
  files: { certificate: string; key: string };
}

/** GET /api/v1/certificate on a plain-HTTP coordinator. */
export interface PlainHttpView {
  tls: false;
  message: string;
}

/** PUT /api/v1/certificate: the new certificate, and whether the selected backup accepted it. */
export interface CertificateReplacedView {
  certificate: CertificateView;
  /** null when no backup is selected. */
  backup: { name: string; confirmed: boolean; message: string } | null;
}
