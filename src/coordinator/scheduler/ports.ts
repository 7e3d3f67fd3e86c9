/**
 * What the scheduler needs from the agent pool, its connections and their clients: narrow, so
 * the scheduler's unit tests drive it with fakes (test/unit/scheduler.test.ts), while the
 * coordinator passes the real AgentPool, AgentConnection and AgentClient.
 */
import type { AgentClient } from '../../protocol/client/agent-client.js';

export type SchedulerClient = Pick<
  AgentClient,
  'putBlobs' | 'startTask' | 'attachTask' | 'listTasks' | 'cancelTask' | 'releaseTask' | 'getBlob'
>;

export interface SchedulerAgent {
  readonly name: string;
  readonly row: { readonly labels: readonly string[] };
  readonly freeSlots: number;
  readonly client: SchedulerClient | undefined;
  noteBusy(delta: number): void;
  /**
   * Whether it can run compile jobs with this toolchain now: synced with a bundle that carries
   * it, and not refused as incompatible since (unset: it has none).
   */
  provides?(toolchain: string): boolean;
  /** It refused the toolchain (TOOLCHAIN_INCOMPATIBLE/NOT_FOUND): none of its jobs until its bundle changes. */
  refuseToolchain?(toolchain: string): void;
}

export interface SchedulerPool {
  /** Agents connected and synced, able to take work. */
  ready(): SchedulerAgent[];
}
