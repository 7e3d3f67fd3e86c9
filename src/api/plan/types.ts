/**
 * A build plan after parsing and validation: what the scheduler runs. The YAML format is in
 * docs/plans.md; parsePlan() (plan/parse.ts) turns text into this or throws PLAN_INVALID listing
 * every problem.
 */

export interface PlanTask {
  name: string;
  /** `run:` tasks become core/run; `uses: ext/op` tasks run that extension operation. */
  extension: string;
  operation: string;
  /** core/run input ({ command } or { args }) or the `with:` value. */
  input: unknown;
  /** Globs relative to the plan's directory, resolved by the client to files it uploads. */
  inputs: string[];
  /** Globs relative to the task's work dir; matched files are collected after a success. */
  outputs: string[];
  needs: string[];
  env: Record<string, string>;
  timeoutMs: number | undefined;
  /** Extra attempts after a failure (agent loss is retried regardless, see scheduler). */
  retries: number;
  /** Labels an agent must all have. */
  requires: string[];
  /**
   * `cache: true`: skipped when the shared cache knows its outputs for the same inputs (design
   * §6, scheduler/task-cache.ts). Absent in plans stored before it existed: not cached.
   */
  cache?: boolean;
  /**
   * `secrets: [NAME]`: secrets (set by admins on the coordinator) given to the task as environment
   * variables of those names at dispatch. Names only: a plan never holds a value. Absent: none.
   */
  secrets?: string[];
}

export interface Plan {
  name: string | undefined;
  /** In a stable topological order (dependencies first, then by name). */
  tasks: PlanTask[];
}

/** A file the client uploaded for the build: path relative to the plan's directory. */
export interface BuildFile {
  path: string;
  sha256: string;
  size: number;
  mode: number;
}
