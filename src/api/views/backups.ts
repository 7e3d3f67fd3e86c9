/** Backup coordinators as a primary lists them (GET /api/v1/backups). */
import type { BackupHealth } from '../status.js';

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

/** Why no backup is selected when one was deselected automatically. */
export interface DeselectionView {
  name: string;
  at: string;
  reason: string;
}
