/**
 * The automatic labels of an agent that dials out, from the facts it reports at each connect
 * (src/protocol/outbound.ts): its OS, architecture, cores, memory and compilers, so a plan can
 * require `linux`, `arm64` or `gcc-12` without an admin labelling each machine.
 */
import type { AgentFacts } from '../../protocol/outbound.js';

const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function automaticLabels(facts: AgentFacts): string[] {
  const gib = Math.max(1, Math.round(facts.memoryBytes / 1024 ** 3));
  const labels = [facts.os, facts.arch, `cores-${facts.cores}`, `memory-${gib}g`];
  for (const compiler of facts.compilers) {
    labels.push(compiler);
    // gcc-12 also as gcc: a plan may want any version.
    const family = /^(.+)-\d+$/.exec(compiler)?.[1];
    if (family !== undefined) labels.push(family);
  }
  return [...new Set(labels.filter((label) => LABEL.test(label)))];
}

/**
 * The labels after a connect with `facts`: the ones an admin or the join token gave stay, the
 * automatic ones of the previous facts give way to the new ones.
 */
export function relabel(
  labels: readonly string[],
  previous: AgentFacts | null,
  facts: AgentFacts,
): string[] {
  const stale = new Set(previous === null ? [] : automaticLabels(previous));
  const kept = labels.filter((label) => !stale.has(label));
  return [...new Set([...kept, ...automaticLabels(facts)])];
}
