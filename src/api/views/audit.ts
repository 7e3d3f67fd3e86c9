/** The audit log as the API shows it (GET /api/v1/audit, `muster audit --json`, Admin › Audit). */

/** Who made a change: a user, the coordinator itself, or a backup (its takeover). */
export type AuditActorKind = 'user' | 'system' | 'backup';

export interface AuditView {
  id: number;
  /** ISO-8601 UTC. */
  at: string;
  /** A user's name; "system"; or the backup's name (actorKind "backup"). */
  actor: string;
  actorKind: AuditActorKind;
  /** The remote address of the request that made the change; null for system changes. */
  ip: string | null;
  /** A stable dotted code, e.g. "user.create" (docs/security.md lists them). */
  action: string;
  /** The name or id changed. */
  target: string;
  /** What changed: field names and new values, never a password, token, key or secret. */
  details: Record<string, unknown>;
}
