/**
 * Builds: the list, filtered by status, and a new build from a plan pasted or loaded from a file
 * with its input files (a folder standing for the plan's folder, or single files), uploaded by
 * content hash; the coordinator validates the plan and its inputs and lists every problem.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, BUILDS_PAGE, createBuild, listBuilds, type BuildSummary } from './api.js';
import { BuildsTable } from './builds-table.js';
import { navigate } from './router.js';
import { Notice } from './notice.js';
import { describePicked, pickedFiles, uploadFiles, type PickedFile } from './uploads.js';

const STATUSES = ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];

/** `refresh` changes whenever the dashboard's data was reloaded (an event or every 5 s). */
export function BuildsPage({ canBuild, refresh }: { canBuild: boolean; refresh: unknown }) {
  const [status, setStatus] = useState('');
  const [typed, setTyped] = useState('');
  const [q, setQ] = useState('');
  const [builds, setBuilds] = useState<BuildSummary[]>();
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string>();

  // The search applies once typing pauses.
  useEffect(() => {
    const timer = window.setTimeout(() => setQ(typed.trim()), 300);
    return () => window.clearTimeout(timer);
  }, [typed]);

  // The first page when the filters change; older pages are added on request, and a refresh
  // reloads as many as are shown (at most 1,000).
  const shown = useRef(BUILDS_PAGE);
  useEffect(() => {
    shown.current = BUILDS_PAGE;
  }, [status, q]);
  // Each list asks for one build more than it shows: whether that one came back says whether
  // there are older builds (a page that happens to be full says nothing).
  useEffect(() => {
    const limit = Math.min(Math.max(shown.current, BUILDS_PAGE), 1000);
    listBuilds({ status, q, limit: Math.min(limit + 1, 1000) })
      .then((page) => {
        setBuilds(page.slice(0, limit));
        setMore(page.length > limit);
        setError(undefined);
      })
      .catch((err: unknown) => setError((err as Error).message));
  }, [status, q, refresh]);

  const older = (): void => {
    const last = builds?.at(-1);
    if (!last) return;
    listBuilds({ status, q, before: last.id, limit: BUILDS_PAGE + 1 })
      .then((page) => {
        const all = [...(builds ?? []), ...page.slice(0, BUILDS_PAGE)];
        shown.current = all.length;
        setBuilds(all);
        setMore(page.length > BUILDS_PAGE && all.length < 1000);
      })
      .catch((err: unknown) => setError((err as Error).message));
  };

  return (
    <>
      <h1>Builds</h1>
      <NewBuild canBuild={canBuild} />
      <section aria-labelledby="list-title">
        <h2 id="list-title">All builds</h2>
        <div class="filters">
          <label class="filter">
            Status
            <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s === '' ? 'any' : s}
                </option>
              ))}
            </select>
          </label>
          <label class="filter">
            Search
            <input
              type="search"
              value={typed}
              placeholder="name, user or number"
              onInput={(e) => setTyped(e.currentTarget.value)}
            />
          </label>
        </div>
        <Notice notice={error} />
        {builds && builds.length === 0 ? (
          <p class="muted">
            No builds{status ? ` that are ${status}` : ''}
            {q ? ` matching “${q}”` : ''}.
          </p>
        ) : (
          <BuildsTable builds={builds} />
        )}
        {more ? (
          <button type="button" class="more" onClick={older}>
            Show older builds
          </button>
        ) : null}
      </section>
    </>
  );
}

function NewBuild({ canBuild }: { canBuild: boolean }) {
  const [plan, setPlan] = useState('');
  const [problems, setProblems] = useState<string[]>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [inputs, setInputs] = useState<PickedFile[]>([]);
  const [progress, setProgress] = useState<string>();

  const submit = async (): Promise<void> => {
    setBusy(true);
    setProblems(undefined);
    setError(undefined);
    try {
      const files = await uploadFiles(inputs, setProgress);
      setProgress('Starting the build…');
      const build = await createBuild(plan, files);
      navigate(`/builds/${build.id}`);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'PLAN_INVALID' && err.details.problems) {
        setProblems(err.details.problems);
      } else {
        setError((err as Error).message);
      }
    } finally {
      setBusy(false);
      setProgress(undefined);
    }
  };

  return (
    <section aria-labelledby="new-title">
      <h2 id="new-title">Start a build</h2>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <fieldset disabled={!canBuild || busy}>
          <label>
            Plan file
            <input
              type="file"
              accept=".yml,.yaml,text/yaml"
              onChange={(e) => {
                const file = e.currentTarget.files?.[0];
                if (file) void file.text().then(setPlan);
              }}
            />
          </label>
          <label>
            Plan (YAML)
            <textarea
              rows={10}
              value={plan}
              spellcheck={false}
              onInput={(e) => setPlan(e.currentTarget.value)}
              placeholder={'tasks:\n  hello:\n    run: echo hello'}
              required
            />
          </label>
          <div class="inputs">
            <span>
              Input files (the plan's <code>inputs:</code>, relative to the plan's folder)
            </span>
            <label>
              A folder, standing for the plan's folder (node_modules, .git and .muster are left out)
              <input
                type="file"
                {...{ webkitdirectory: true }}
                onChange={(e) => setInputs(pickedFiles(e.currentTarget.files))}
              />
            </label>
            <label>
              Or single files, at the top of the plan's folder
              <input
                type="file"
                multiple
                onChange={(e) => setInputs(pickedFiles(e.currentTarget.files))}
              />
            </label>
            <p class="muted small" data-testid="inputs">
              {inputs.length === 0
                ? 'No input files: fine for a plan without inputs.'
                : `${describePicked(inputs)}: ${inputs
                    .slice(0, 5)
                    .map((i) => i.path)
                    .join(', ')}${inputs.length > 5 ? ', …' : ''}`}
            </p>
          </div>
          {problems ? (
            <div class="error" role="alert">
              <p>
                The plan has {problems.length === 1 ? 'a problem' : `${problems.length} problems`}:
              </p>
              <ul data-testid="problems">
                {problems.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            </div>
          ) : null}
          <Notice notice={error} />
          {progress ? (
            <p class="muted" role="status">
              {progress}
            </p>
          ) : null}
          <button type="submit">{busy ? 'Starting…' : 'Start build'}</button>
        </fieldset>
      </form>
    </section>
  );
}
