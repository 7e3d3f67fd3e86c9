/**
 * What an agent that dials out said of its machine when it last connected, in one short line
 * (system, architecture, cores, memory); the host name, compilers and version on hover.
 */
import type { AgentFactsView } from './api.js';

const GIB = 1024 ** 3;

export function factsLine(facts: AgentFactsView): string {
  const memory = facts.memoryBytes / GIB;
  return [
    `${facts.os}/${facts.arch}`,
    `${facts.cores} ${facts.cores === 1 ? 'core' : 'cores'}`,
    `${memory >= 10 ? memory.toFixed(0) : memory.toFixed(1)} GiB`,
  ].join(' · ');
}

export function AgentFacts({ name, facts }: { name: string; facts: AgentFactsView }) {
  const compilers = facts.compilers.length > 0 ? facts.compilers.join(', ') : 'none found';
  return (
    <div
      class="muted small"
      data-testid={`facts-${name}`}
      title={`host ${facts.hostname}; compilers: ${compilers}; agent ${facts.agentVersion}`}
    >
      {factsLine(facts)}
    </div>
  );
}
