/** What high availability needs from the coordinator's engine (its agent pool and scheduler). */
export interface LeaseSummary {
  /** Registered agents. */
  total: number;
  /** Agents whose lease this coordinator holds. */
  held: number;
  /** Connected agents whose lease another coordinator of the cluster holds, live. */
  liveElsewhere: number;
}

export interface EnginePort {
  readonly running: boolean;
  /** Connects to the agents under this lease term (no scheduling yet). */
  startPool(term: number): void;
  leaseSummary(): LeaseSummary;
  /** Records attempts found on agents that this store does not know (see adopt.ts). */
  adoptOrphans(): Promise<number>;
  /** Starts scheduling: resumes unfinished builds, re-attaches running attempts. */
  startScheduler(): void;
  /** Stops scheduling and drops the agents, giving their leases back when `release`. */
  stop(release: boolean): Promise<void>;
}
