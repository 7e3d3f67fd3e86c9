/**
 * What coordinators answer each other (/api/v1/ha/…, docs/high-availability.md): a primary to
 * its backups, a backup to its primary. Database rows travel as they are stored, column by
 * column (WireRowView): the two coordinators run the same schema, which the OpenAPI document
 * does not repeat.
 */
import type { BackupHealth } from '../status.js';
import type { AuditView } from './audit.js';

/** POST /api/v1/ha/register: whether the admin has selected this backup yet. */
export interface BackupRegisteredView {
  selected: boolean;
}

/** A certificate a primary may present. */
export interface AnnouncedCertificateView {
  fingerprint: string;
  /** The server certificate (PEM), which a backup adds to what it trusts for its primary. */
  certificate: string;
}

/** GET /api/v1/ha/heartbeat: the primary's answer to a backup's heartbeat. */
export interface HeartbeatView {
  role: 'primary';
  selected: boolean;
  /** The rest, to the selected backup only. */
  instanceId?: string;
  term?: number;
  stream?: string | null;
  lastSeq?: number;
  /**
   * Every certificate this primary may present: the current one and, while it replaces it, the
   * next. A backup accepts exactly these (and drops other pins) and says so in its next heartbeat.
   */
  certificates: AnnouncedCertificateView[];
  /** To the selected backup: how this primary judges it (see backup-health.ts). */
  health?: { health: BackupHealth; healthReason: string | null; lagSeconds: number | null };
}

/** A database row as replication and failback carry it: column → value. */
export type WireRowView = Record<string, unknown>;

/** One replicated change. */
export interface ChangeView {
  seq: number;
  /** The replicated table. */
  table: string;
  /** The row's primary key, column by column. */
  key: unknown[];
  /** The row as it is now; null when it no longer exists. */
  row: WireRowView | null;
}

/** GET /api/v1/ha/changes: the primary's changes after a sequence number. */
export interface ChangePageView {
  stream: string;
  changes: ChangeView[];
  /** The last sequence number this page covers (resume after it). */
  lastSeq: number;
  /** The primary's last sequence number now (how far behind the backup is). */
  primaryLastSeq: number;
}

/** GET /api/v1/ha/secrets-key: the key secrets are sealed with (base64), for the selected backup. */
export interface SecretsKeyView {
  key: string;
}

/** GET /api/v1/ha/state: where a backup is, for its primary before a failback. */
export interface BackupStateView {
  state: 'standby' | 'taking-over' | 'active' | 'handing-back';
  term: number;
  /** Whether it has history of a takeover to hand back. */
  history: boolean;
}

/** POST /api/v1/ha/handback/begin: the backup stopped; what it has to hand back. */
export interface HandbackView {
  term: number;
  /** The builds it has rows of since its takeover. */
  builds: number[];
  /** Its takeover (when, and the ids it started from); null: it never took over. */
  takeover: Record<string, unknown> | null;
}

/** GET /api/v1/ha/history/builds/{id}: a build and what was recorded under it. */
export interface BuildHistoryView {
  build: WireRowView;
  tasks: WireRowView[];
  attempts: WireRowView[];
  /** Log chunks after `afterLog`, oldest first (a page). */
  logs: WireRowView[];
}

/** GET /api/v1/ha/history/tokens: the tokens made since the takeover, each with its user's name. */
export type HandbackTokensView = WireRowView[];

/**
 * An audit row as stored, and as GET /api/v1/ha/history/audit hands back those written since the
 * takeover (oldest first).
 */
export interface AuditRowView extends Omit<AuditView, 'at'> {
  /** The same on every coordinator: a failback run twice adds each row once. */
  uid: string;
  /** Milliseconds since the epoch. */
  at: number;
}

/** GET /api/v1/ha/history/cache/{table}: a page of a cache table's rows made since the takeover. */
export interface CacheHistoryPageView {
  /** Rows of the table (toolchains, entries or manifest lines), field by field. */
  rows: object[];
  /** The last row's cursor when there may be more (afterAt, afterKey); null on the last page. */
  next: { at: string; key: string } | null;
}
