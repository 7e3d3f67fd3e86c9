/**
 * The status enums that cross the API: what a build, task, attempt, agent, backup or coordinator
 * is doing, and a user's role. The store keeps these values, the API shows them, and the CLI and
 * the web UI switch on them, so they live here, in the layer all three share.
 */

export type Role = 'admin' | 'viewer';

export type BuildStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type TaskStatus =
  'pending' | 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'skipped';
export type AttemptStatus = 'running' | 'succeeded' | 'failed' | 'cancelled' | 'timed-out' | 'lost';

export type AgentStatus =
  | 'connecting'
  | 'syncing'
  | 'connected'
  | 'busy'
  /** Connected, but another coordinator of this cluster holds the agent's lease. */
  | 'fenced'
  | 'unreachable'
  | 'refused'
  | 'disabled'
  /** An agent that dialed out with a join token, waiting for an admin to approve it. */
  | 'pending';

export type CoordinatorRole = 'primary' | 'backup-standby' | 'backup-active';

/**
 * A backup's health, worst first: unreachable (it has not called the primary lately); unverified
 * (the primary cannot call it at its URL with a verified certificate); failback-failing (it ran
 * the cluster and the primary cannot take its history back); replication-failing (its
 * copy cannot apply the primary's changes); lagging (its copy is over a minute behind); healthy.
 */
export type BackupHealth =
  'healthy' | 'unreachable' | 'unverified' | 'failback-failing' | 'replication-failing' | 'lagging';
