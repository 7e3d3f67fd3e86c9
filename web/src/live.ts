/**
 * What the dashboard shows, kept current without a reload: loaded once, then reloaded (at most
 * every half second) whenever the coordinator's event stream says an agent or a build changed,
 * and every 5 s for the role and the backup's health, which have no events.
 */
import { useEffect, useState } from 'preact/hooks';
import {
  getAgents,
  getBuilds,
  getStatus,
  type AgentView,
  type BuildSummary,
  type StatusView,
} from './api.js';

export interface Live {
  status: StatusView | undefined;
  agents: AgentView[] | undefined;
  builds: BuildSummary[] | undefined;
  error: string | undefined;
  /** Whether the event stream is connected. */
  streaming: boolean;
}

export function useLive(): Live {
  const [live, setLive] = useState<Live>({
    status: undefined,
    agents: undefined,
    builds: undefined,
    error: undefined,
    streaming: false,
  });

  useEffect(() => {
    let stopped = false;
    let pending: number | undefined;
    const load = async (): Promise<void> => {
      try {
        const [status, agents, builds] = await Promise.all([getStatus(), getAgents(), getBuilds()]);
        if (!stopped) setLive((l) => ({ ...l, status, agents, builds, error: undefined }));
      } catch (err) {
        if (!stopped)
          setLive((l) => ({ ...l, error: err instanceof Error ? err.message : String(err) }));
      }
    };
    const soon = (): void => {
      if (pending !== undefined) return;
      pending = window.setTimeout(() => {
        pending = undefined;
        void load();
      }, 500);
    };
    void load();
    const events = new EventSource('/api/v1/events');
    events.onopen = () => setLive((l) => ({ ...l, streaming: true }));
    events.onerror = () => setLive((l) => ({ ...l, streaming: false }));
    events.addEventListener('agent', soon);
    events.addEventListener('build', soon);
    const timer = window.setInterval(() => void load(), 5000);
    return () => {
      stopped = true;
      events.close();
      window.clearInterval(timer);
      if (pending !== undefined) window.clearTimeout(pending);
    };
  }, []);

  return live;
}
