/**
 * A coordinator's status (GET /api/v1/status) and the public banner of its login page
 * (GET /api/v1/banner): its role, and on a primary its backup, on a backup its primary.
 */
import type { BackupHealth, CoordinatorRole } from '../status.js';
import type { BackupView, DeselectionView } from './backups.js';

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
