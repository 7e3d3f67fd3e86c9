/**
 * What `muster build` says about the pool before the command and about the jobs after it
 * (docs/compile.md): a hint for `-j` (the job count stays the user's), and one summary line —
 * `muster: 34 jobs (34 compiles): 12 remote, 22 local, 0 from cache, 1 fallback (agent-lost 1),
 * 1 re-run here; 6.1 s — build 123` (the re-runs only when there are some).
 */
import { formatDuration, plural } from '../../api/format.js';
import type { CompileSessionView } from '../../api/views/compile.js';
import type { CompileStats } from './stats.js';

export interface BuildCounts {
  /** Every compiler invocation the command made. */
  jobs: number;
  /** Those that were compiles (the rest — links, probes — ran unchanged). */
  compiles: number;
  remote: number;
  local: number;
  cacheHits: number;
  cacheMisses: number;
  fallbacks: number;
  errors: number;
  /** Remote results replaced by a compile here (the compiler failed or printed something). */
  reruns: number;
  /** Why the fallbacks fell back (`agent-lost`, `no-agent-slot`, …). */
  fallbackReasons: Record<string, number>;
}

/** A build's counts from its service's counters and the shims' fallbacks it folded. */
export function countsOf(stats: Readonly<CompileStats>, shimFallbacks: number): BuildCounts {
  return {
    jobs: stats.compiles + stats.passthrough + shimFallbacks,
    compiles: stats.compiles,
    remote: stats.remote,
    local: stats.local,
    cacheHits: stats.cacheHits,
    cacheMisses: stats.cacheMisses,
    fallbacks: stats.fallbacks,
    errors: stats.errors,
    reruns: stats.reruns,
    fallbackReasons: { ...stats.fallbackReasons },
  };
}

export interface PoolHint {
  /** Agent slots on other machines: what adds cores to this one. */
  remoteSlots: number;
  /** Agent slots on this machine (they share its cores). */
  sameMachineSlots: number;
  localCores: number;
  /** The suggested -j. */
  jobs: number;
}

export function poolHint(capacity: CompileSessionView['capacity'], localCores: number): PoolHint {
  let remoteSlots = 0;
  let sameMachineSlots = 0;
  for (const agent of capacity.agents) {
    if (agent.sameMachine === true) sameMachineSlots += agent.slots;
    else remoteSlots += agent.slots;
  }
  return { remoteSlots, sameMachineSlots, localCores, jobs: localCores + remoteSlots };
}

export function formatPoolHint(hint: PoolHint, buildId: number): string {
  const parts = [`${plural(hint.localCores, 'local core')}`];
  if (hint.remoteSlots > 0)
    parts.push(`${plural(hint.remoteSlots, 'agent slot')} on other machines`);
  if (hint.sameMachineSlots > 0)
    parts.push(
      `${plural(hint.sameMachineSlots, 'agent slot')} on this machine (sharing its cores)`,
    );
  const shared =
    hint.remoteSlots === 0 && hint.sameMachineSlots > 0
      ? "; every agent shares this machine's cores, so placement auto compiles here"
      : '';
  return `muster: build ${buildId}; ${parts.join(', ')}: make -j${hint.jobs} keeps them busy${shared}\n`;
}

/** `agent-lost 2, no-agent-slot 1`: the most frequent first. */
function reasonList(reasons: Record<string, number>): string {
  return Object.entries(reasons)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
}

export function formatSummary(
  counts: BuildCounts,
  elapsedMs: number,
  buildId: number | undefined,
  note?: string,
): string {
  const build = buildId === undefined ? '' : ` — build ${buildId}`;
  const reasons = reasonList(counts.fallbackReasons);
  const why =
    note !== undefined
      ? ` (${note})`
      : counts.fallbacks > 0 && reasons !== ''
        ? ` (${reasons})`
        : '';
  const reruns = counts.reruns > 0 ? `, ${counts.reruns} re-run here` : '';
  return (
    `muster: ${plural(counts.jobs, 'job')} (${plural(counts.compiles, 'compile')}): ` +
    `${counts.remote} remote, ${counts.local} local, ${counts.cacheHits} from cache, ` +
    `${plural(counts.fallbacks, 'fallback')}${why}${reruns}; ${formatDuration(elapsedMs)}${build}\n`
  );
}

/** What `muster build --json` prints on stdout at the end (with a newline after it). */
export function summaryJson(
  counts: BuildCounts,
  elapsedMs: number,
  buildId: number | undefined,
  code: number,
): string {
  return JSON.stringify(
    { buildId: buildId ?? null, exitCode: code, ...counts, durationMs: elapsedMs },
    null,
    2,
  );
}

/** Why a hosted build's summary names no build or its counts may be short (service-build.ts). */
export function hostedNote(closed: { offline: boolean; early?: boolean }): string | undefined {
  return closed.offline
    ? 'no coordinator'
    : closed.early === true
      ? 'the compile service stopped during the build'
      : undefined;
}
