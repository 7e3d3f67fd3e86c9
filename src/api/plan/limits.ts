/** The size limits of a plan: what a hand-written or generated plan stays well inside. */

export const PLAN_LIMITS = {
  /** Largest plan text, in UTF-8 bytes. */
  maxBytes: 1024 * 1024,
  maxTasks: 10_000,
  /**
   * YAML nodes (mappings, lists, keys and values) in the document. Well above what a 1 MiB plan
   * written by hand or by a generator holds (about one node per 7 bytes), well below what a
   * flow-style list of 1-character items packs into 1 MiB (one per 2 bytes).
   */
  maxNodes: 250_000,
  maxRetries: 10,
  /** Largest task timeout (setTimeout cannot go much beyond 24 days anyway). */
  maxTimeoutMs: 7 * 86_400_000,
  maxGlobLength: 1024,
} as const;
