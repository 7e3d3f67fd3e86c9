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
  /**
   * An agent that dials out to the coordinator (`muster agent --connect`): its address is where
   * it last connected from. False: the coordinator dials it at its address.
   */
  dialsOut: boolean;
  /** False while an agent that joined with a token waits for an admin (status `pending`). */
  approved: boolean;
  /** What an agent that dials out said of its machine when it last connected; null otherwise. */
  facts: AgentFactsView | null;
}

export interface AgentFactsView {
  hostname: string;
  os: string;
  arch: string;
  cores: number;
  memoryBytes: number;
  compilers: string[];
  agentVersion: string;
}

/** POST /api/v1/agents/probe: what an agent presents, to confirm before adding it. */
export interface ProbedAgentView {
  /** host:port as probed. */
  address: string;
  /** SHA-256 of the agent's TLS certificate (colon hex). */
  fingerprint: string;
}

/** A join token as listed (GET /api/v1/join-tokens): never its secret. */
export interface JoinTokenView {
  id: string;
  labels: string[];
  autoApprove: boolean;
  /** ISO time; null: it does not expire. */
  expiresAt: string | null;
  expired: boolean;
  createdBy: string;
  createdAt: string;
  /** Agents that joined with it. */
  uses: number;
}

/** POST /api/v1/join-tokens: the token itself, shown this once. */
export interface CreatedJoinTokenView extends JoinTokenView {
  token: string;
  /** The command that starts an agent with it, for this coordinator's URL. */
  command: string;
}
