/**
 * Rows (store) and snapshots (pool) to views (API): the one place that shapes what users and
 * tests see.
 */
import type { PlanTask } from '../../api/plan/types.js';
import type { AgentView } from '../../api/views/agents.js';
import type { AgentSnapshot } from '../pool/agent-snapshot.js';
import type { CacheEntryView, ToolchainView } from '../../api/views/compile.js';
import type { BuildRow, CacheEntryRow, TaskRow, ToolchainSummary } from '../store/types.js';
import type {
  BuildSummary,
  BuildView,
  CompileSummaryView,
  TaskView,
} from '../../api/views/builds.js';

export function taskView(task: TaskRow, planTask: PlanTask | undefined): TaskView {
  return {
    name: task.name,
    status: task.status,
    exitCode: task.exitCode,
    agent: task.agent,
    attempts: task.attempts,
    needs: planTask?.needs ?? [],
    startedAt: task.startedAt,
    finishedAt: task.finishedAt,
    durationMs:
      task.startedAt && task.finishedAt
        ? Date.parse(task.finishedAt) - Date.parse(task.startedAt)
        : null,
    outputs: task.outputs,
    error: task.error,
    label: task.label,
    cache: task.cache,
    placement: task.placement,
    fallback: task.fallback,
    ...(planTask?.secrets?.length ? { secrets: planTask.secrets } : {}),
  };
}

/** A compile session's counts: as its client reported them at close, else from its jobs. */
export function compileSummary(build: BuildRow, tasks: TaskRow[]): CompileSummaryView | null {
  if (build.kind !== 'compile') return null;
  if (build.summary) return build.summary;
  const summary = { jobs: tasks.length, remote: 0, local: 0, cacheHits: 0, fallbacks: 0 };
  for (const t of tasks) {
    if (t.placement === 'remote') summary.remote++;
    else if (t.placement === 'local') summary.local++;
    if (t.cache === 'hit') summary.cacheHits++;
    if (t.fallback !== null) summary.fallbacks++;
  }
  return summary;
}

/** What a build view and a build summary both say about the build itself. */
function buildHeader(build: BuildRow): Omit<BuildSummary, 'counts'> {
  return {
    id: build.id,
    kind: build.kind,
    name: build.plan.name ?? null,
    status: build.status,
    createdBy: build.createdBy,
    createdAt: build.createdAt,
    startedAt: build.startedAt,
    finishedAt: build.finishedAt,
  };
}

export function buildView(build: BuildRow, tasks: TaskRow[]): BuildView {
  const order = new Map(build.plan.tasks.map((t, i) => [t.name, i]));
  const plans = new Map(build.plan.tasks.map((t) => [t.name, t]));
  return {
    ...buildHeader(build),
    error: build.error,
    tasks: [...tasks]
      .sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0))
      .map((t) => taskView(t, plans.get(t.name))),
    summary: compileSummary(build, tasks),
  };
}

export function buildSummary(build: BuildRow, tasks: TaskRow[]): BuildSummary {
  const counts = { total: tasks.length, succeeded: 0, failed: 0, running: 0, pending: 0 };
  for (const t of tasks) {
    if (t.status === 'succeeded') counts.succeeded++;
    else if (t.status === 'failed') counts.failed++;
    else if (t.status === 'running') counts.running++;
    else if (t.status === 'pending' || t.status === 'queued') counts.pending++;
  }
  return { ...buildHeader(build), counts };
}

export function agentView(agent: AgentSnapshot): AgentView {
  return {
    name: agent.name,
    // One that dials out: where it last connected from (it has no port to dial).
    address: agent.dialsOut
      ? agent.host
      : `${agent.host.includes(':') ? `[${agent.host}]` : agent.host}:${agent.port}`,
    status: agent.status,
    slots: agent.slots,
    slotsFrom: agent.slotsFrom,
    busySlots: agent.busySlots,
    labels: agent.labels,
    tls: agent.tls,
    fingerprint: agent.fingerprint,
    lastError: agent.lastError,
    agentVersion: agent.agentVersion,
    instanceKey: agent.instanceKey,
    lastConnectedAt: agent.lastConnectedAt,
    dialsOut: agent.dialsOut,
    approved: agent.approved,
    facts: agent.facts,
  };
}

export function cacheEntryView(entry: CacheEntryRow): CacheEntryView {
  return {
    key: entry.key,
    kind: entry.kind,
    outputs: entry.outputs.map(({ name, sha256, size, mode }) => ({ name, sha256, size, mode })),
    stderr: entry.stderr && { sha256: entry.stderr.sha256, size: entry.stderr.size },
    exitCode: entry.exitCode,
    toolchain: entry.toolchain,
    source: entry.source,
    createdAt: entry.createdAt,
  };
}

export function toolchainView(
  toolchain: ToolchainSummary,
  agents: AgentSnapshot[],
  shipped: ReadonlySet<string>,
): ToolchainView {
  return {
    id: toolchain.id,
    info: toolchain.info,
    createdAt: toolchain.createdAt,
    agents: agents.filter((a) => a.toolchains.includes(toolchain.id)).map((a) => a.name),
    createdBy: toolchain.createdBy,
    lastUsedAt: toolchain.lastUsedAt,
    files: toolchain.files,
    bytes: toolchain.bytes,
    shipped: shipped.has(toolchain.id),
  };
}
