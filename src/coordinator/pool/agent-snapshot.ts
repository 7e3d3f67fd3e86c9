/**
 * One agent's connection as the pool reports it (to the `agent` event and to whoever lists the
 * agents): a plain snapshot in the pool's own terms. The API shapes it into its AgentView
 * (api/views.ts); the pool knows nothing of views.
 */
import type { AgentStatus } from '../../api/status.js';
import type { AgentFacts } from '../../protocol/outbound.js';
import type { AgentConnection } from './agent-connection.js';

/**
 * Where an agent's slot count comes from: configured (--slots), the agent's cores on the live
 * connection, the cores it reported when it last connected (last-known: a backup standing by has
 * no connections), or unknown (1 until it connects).
 */
export type SlotsSource = 'configured' | 'agent' | 'last-known' | 'unknown';

export interface AgentSnapshot {
  name: string;
  host: string;
  port: number;
  status: AgentStatus;
  slots: number;
  slotsFrom: SlotsSource;
  busySlots: number;
  labels: string[];
  tls: boolean;
  fingerprint: string | null;
  lastError: string | null;
  agentVersion: string | null;
  instanceKey: string | null;
  lastConnectedAt: string | null;
  /** Dials out (src/protocol/outbound.ts); host is where it last connected from. */
  dialsOut: boolean;
  approved: boolean;
  facts: AgentFacts | null;
  /**
   * The agent's machine (sha256 of its kernel boot id, src/common/boot-id.ts) on the live
   * connection; null when unknown. Compile sessions compare it with the client's: an agent on
   * the client's own machine adds no cores. Not in the public AgentView.
   */
  bootId: string | null;
  /**
   * The compiler toolchains it can run compile jobs with now (synced with its bundle, not
   * refused since); none when not connected. Shown by GET /api/v1/toolchains/{id}.
   */
  toolchains: string[];
}

export function snapshotOf(c: AgentConnection): AgentSnapshot {
  return {
    name: c.row.name,
    host: c.row.host,
    port: c.row.port,
    status: c.status,
    slots: c.slots,
    slotsFrom: c.slotsFrom,
    busySlots: c.busySlots,
    labels: c.row.labels,
    tls: c.row.tls,
    fingerprint: c.row.fingerprint,
    lastError: c.lastError,
    agentVersion: c.client?.agentVersion ?? null,
    instanceKey: c.client?.instance.key ?? null,
    lastConnectedAt: c.lastConnectedAt,
    dialsOut: c.dialsOut,
    approved: c.row.approved,
    facts: c.row.facts,
    bootId: c.bootId,
    toolchains: c.toolchains,
  };
}
