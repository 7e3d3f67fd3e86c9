/**
 * A coordinator's role: primary, or backup of a primary (--backup-of). The coordinator
 * (coordinator.ts) makes what both share, hands it to one role, and drives the role's lifecycle:
 * start() once the server listens; at stop, quiesce() before the server closes, then stop().
 */
import type { StatusView } from '../../api/views/status.js';
import type { Engine } from '../engine.js';
import type { BackupSide } from '../ha/backup-side.js';
import type { PrimarySide } from '../ha/primary-side.js';
import type { HaSample } from '../metrics.js';

export interface Role {
  /** The agent pool and the scheduler: a primary runs them, a backup while it runs the cluster. */
  readonly engine: Engine;
  /** Set when the admin password was generated on this start (a primary's first). */
  readonly generatedAdminPassword: string | undefined;
  /** Its side of high availability: the primary's or the backup's (one of them). */
  readonly ha: { primary: PrimarySide | undefined; backup: BackupSide | undefined };
  /** What /metrics shows of high availability. */
  readonly haSample: HaSample;
  /** The role as the API shows it. */
  role(): StatusView['role'];
  /** The fencing term this coordinator works under. */
  term(): number;
  /** Whether it can serve once running (a backup: once it holds a copy of its primary's state). */
  ready(): boolean;
  /** Its own fields in the "listening" log line. */
  logFields(): Record<string, unknown>;
  /** Once the server listens. */
  start(): Promise<void>;
  /** Before the server closes: nothing of this role holds a request open any more. */
  quiesce(): void;
  /** After the server closed: its loops and its engine (tasks keep running on the agents). */
  stop(): Promise<void>;
}
