/** The agents as the API shows them (GET /api/v1/agents, the `agent` event). */
import type { AgentStatus } from '../status.js';

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
