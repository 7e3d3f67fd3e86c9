/**
 * One build: its tasks (status, agent, attempts, duration, outputs to download) or a compile
 * session's jobs (where each ran, its cache result), the log of the whole build or of one task,
 * following as it is written (the event stream's log events), and cancel. Changes are disabled
 * for viewers and on a standing-by backup.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import {
  blobUrl,
  cancelBuild,
  deleteBuild,
  getBuild,
  getLogs,
  type BuildView,
  type StatusView,
} from './api.js';
import { DangerButton } from './danger-button.js';
import { navigate } from './router.js';
import { Notice } from './notice.js';
import { TaskGraph } from './task-graph.js';

interface Line {
  id: number;
  task: string;
  stream: string;
  text: string;
}

function duration(ms: number | null): string {
  if (ms === null) return '';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function BuildPage({
  id,
  status,
  canBuild,
}: {
  id: number;
  status: StatusView | undefined;
  canBuild: boolean;
}) {
  const [build, setBuild] = useState<BuildView | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [task, setTask] = useState<string | undefined>(undefined);
  const [lines, setLines] = useState<Line[]>([]);
  const logBox = useRef<HTMLPreElement>(null);

  // The build, reloaded on its task and build events: one request at a time, and one more after
  // it for whatever came meanwhile (a compile session reports its jobs in batches of hundreds).
  useEffect(() => {
    let stopped = false;
    let loading = false;
    let again = false;
    const load = (): void => {
      if (loading) {
        again = true;
        return;
      }
      loading = true;
      getBuild(id)
        .then((b) => {
          if (!stopped) setBuild(b);
        })
        .catch((err: unknown) => !stopped && setError((err as Error).message))
        .finally(() => {
          loading = false;
          if (again && !stopped) {
            again = false;
            load();
          }
        });
    };
    load();
    const events = new EventSource(`/api/v1/events?build=${id}`);
    // Loaded again once the stream is open (and reopened): nothing in between is missed.
    events.onopen = load;
    events.addEventListener('task', load);
    events.addEventListener('build', load);
    // And now and then, in case the stream is down.
    const timer = window.setInterval(load, 5000);
    return () => {
      stopped = true;
      events.close();
      window.clearInterval(timer);
    };
  }, [id]);

  // The log: what is there, then every new chunk as it comes.
  useEffect(() => {
    let stopped = false;
    let last = 0;
    const seen = new Set<number>();
    const add = (chunks: Line[]): void => {
      const fresh = chunks.filter((c) => !seen.has(c.id) && (!task || c.task === task));
      for (const c of fresh) seen.add(c.id);
      if (fresh.length > 0 && !stopped) setLines((l) => [...l, ...fresh]);
    };
    setLines([]);
    const events = new EventSource(`/api/v1/events?build=${id}`);
    events.addEventListener('log', (event) => {
      const chunk = JSON.parse((event as MessageEvent<string>).data) as Line;
      add([chunk]);
    });
    const backlog = async (): Promise<void> => {
      for (;;) {
        const page = await getLogs(id, task, last);
        add(page.chunks);
        if (page.chunks.length === 0 || page.next === last) return;
        last = page.next;
      }
    };
    // The log so far is read once the stream is open, so no chunk falls between the two; chunks
    // seen both ways are dropped by id.
    events.onopen = () => {
      void backlog().catch((err: unknown) => !stopped && setError((err as Error).message));
    };
    return () => {
      stopped = true;
      events.close();
    };
  }, [id, task]);

  useEffect(() => {
    const box = logBox.current;
    if (box) box.scrollTop = box.scrollHeight;
  }, [lines]);

  if (error && !build) return <p class="error">{error}</p>;
  if (!build) return <p class="muted">Loading…</p>;
  const active = build.status === 'queued' || build.status === 'running';
  // Until the log effect has caught up with a newly chosen task, show none of the others' lines.
  const shown = task ? lines.filter((l) => l.task === task) : lines;
  const standby = status?.role === 'backup-standby';
  return (
    <>
      <h1>
        Build #{build.id}
        {build.name ? ` — ${build.name}` : ''}{' '}
        <span class={`pill ${build.status}`} data-testid="build-status">
          {build.status}
        </span>
      </h1>
      <p class="muted">
        By {build.createdBy}, {new Date(build.createdAt).toLocaleString()}
        {build.error ? ` — ${build.error}` : ''}
      </p>
      {active ? (
        <button
          type="button"
          disabled={!canBuild || standby}
          onClick={() => {
            void cancelBuild(build.id)
              .then(setBuild)
              .catch((err: unknown) => setError((err as Error).message));
          }}
        >
          Cancel build
        </button>
      ) : null}
      {!active && canBuild && status?.role === 'primary' ? (
        <DangerButton
          question={`Delete build #${build.id} with its tasks, logs and outputs? This cannot be undone.`}
          disabled={false}
          onConfirmed={() => {
            void deleteBuild(build.id)
              .then(() => navigate('/builds'))
              .catch((err: unknown) => setError((err as Error).message));
          }}
        >
          Delete build
        </DangerButton>
      ) : null}
      <Notice notice={error} />
      {build.kind === 'compile' ? (
        <CompileJobs build={build} />
      ) : (
        <section aria-labelledby="tasks-title">
          <h2 id="tasks-title">Tasks</h2>
          <TaskGraph tasks={build.tasks} selected={task} onSelect={setTask} duration={duration} />
          <table>
            <thead>
              <tr>
                <th>Task</th>
                <th>Status</th>
                <th>Agent</th>
                <th>Attempts</th>
                <th>Duration</th>
                <th>Needs</th>
                <th>Outputs</th>
              </tr>
            </thead>
            <tbody>
              {build.tasks.map((t) => (
                <tr key={t.name} data-testid={`task-${t.name}`}>
                  <td>
                    <button
                      type="button"
                      class="link"
                      aria-pressed={task === t.name}
                      onClick={() => setTask(task === t.name ? undefined : t.name)}
                    >
                      {t.name}
                    </button>
                  </td>
                  <td>
                    <span class={`pill ${t.status}`}>{t.status}</span>
                    {t.error ? <span class="muted"> {t.error}</span> : null}
                  </td>
                  <td>{t.agent ?? ''}</td>
                  <td>{t.attempts}</td>
                  <td>{duration(t.durationMs)}</td>
                  <td>
                    {t.needs.join(', ')}
                    {t.secrets ? (
                      <span class="muted small" title="secrets given to the task">
                        {' '}
                        secrets: {t.secrets.join(', ')}
                      </span>
                    ) : null}
                  </td>
                  <td>
                    {t.outputs.map((o) => (
                      <a key={o.path} href={blobUrl(o.sha256)} download={o.path.split('/').pop()}>
                        {o.path}
                      </a>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      <section aria-labelledby="log-title">
        <h2 id="log-title">Log{task ? ` of ${task}` : ''}</h2>
        <pre class="log" ref={logBox} data-testid="log" tabIndex={0}>
          {shown.length === 0
            ? 'Nothing logged yet.'
            : shown.map((l) => (task ? l.text : `[${l.task}] ${l.text}`)).join('')}
        </pre>
      </section>
    </>
  );
}

/**
 * A compile session's jobs (muster build): where each ran (an agent, this machine, the cache),
 * its cache result, and the fallback that sent it local, if one did; the counts above them.
 */
function CompileJobs({ build }: { build: BuildView }) {
  const summary = build.summary;
  return (
    <section aria-labelledby="jobs-title">
      <h2 id="jobs-title">Compile jobs</h2>
      {summary ? (
        <p class="muted" data-testid="compile-summary">
          {summary.jobs} jobs: {summary.remote} on agents, {summary.local} local,{' '}
          {summary.cacheHits} from the cache, {summary.fallbacks} fallbacks
        </p>
      ) : null}
      <table>
        <thead>
          <tr>
            <th>Job</th>
            <th>Status</th>
            <th>Command</th>
            <th>Ran</th>
            <th>Cache</th>
            <th>Duration</th>
          </tr>
        </thead>
        <tbody>
          {build.tasks.map((t) => (
            <tr key={t.name} data-testid={`task-${t.name}`}>
              <td>{t.name}</td>
              <td>
                <span class={`pill ${t.status}`}>{t.status}</span>
                {t.error ? <span class="muted"> {t.error}</span> : null}
              </td>
              <td>
                <code>{t.label ?? ''}</code>
              </td>
              <td>
                {t.placement === 'remote' ? (t.agent ?? 'agent') : (t.placement ?? '')}
                {t.fallback ? <span class="muted"> (fallback: {t.fallback})</span> : null}
              </td>
              <td>{t.cache ?? ''}</td>
              <td>{duration(t.durationMs)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
