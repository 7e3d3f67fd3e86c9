/** An agent's status as a pill, in words a user reads at a glance, with what it means on hover. */
import type { AgentView } from './api.js';

const WORDS: Record<AgentView['status'], { text: string; means: string }> = {
  connecting: { text: 'connecting', means: 'connecting to the agent' },
  syncing: { text: 'syncing', means: 'sending the host runtime and extensions it lacks' },
  connected: { text: 'connected', means: 'ready for tasks' },
  busy: { text: 'busy', means: 'every slot is running a task' },
  fenced: {
    text: 'held elsewhere',
    means: "another coordinator of this cluster holds the agent's lease",
  },
  unreachable: { text: 'unreachable', means: 'cannot connect; retrying with backoff' },
  refused: { text: 'refused', means: 'the agent refused this coordinator; see the error' },
  disabled: { text: 'offline', means: 'this coordinator is not connecting to agents now' },
  pending: { text: 'pending approval', means: 'it joined with a token; an admin must approve it' },
};

/** `standby`: this coordinator is a backup standing by, which leaves the agents to the primary. */
export function AgentStatus({ agent, standby }: { agent: AgentView; standby: boolean }) {
  const words =
    standby && agent.status === 'disabled'
      ? { text: 'standing by', means: 'a backup connects to the agents only when it takes over' }
      : WORDS[agent.status];
  return (
    <span class={`pill ${agent.status}`} title={words.means}>
      {words.text}
    </span>
  );
}
