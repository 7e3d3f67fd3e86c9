/**
 * The web UI's shell: the session (login page until there is one), the backup banner on every
 * page, the navigation, and the pages. Paths are the browser's own (/login, /); the server
 * answers index.html for them.
 */
import { useEffect, useState } from 'preact/hooks';
import { currentSession, logOut, type SessionView, type StatusView } from './api.js';
import { AdvancedSettings } from './advanced-settings.js';
import { AgentsPage } from './agents-page.js';
import { Backups } from './backups.js';
import { Banner } from './banner.js';
import { BuildPage } from './build-page.js';
import { BuildsPage } from './builds-page.js';
import { Certificates } from './certificates.js';
import { Dashboard } from './dashboard.js';
import { Login } from './login.js';
import { useLive } from './live.js';
import { onLink, usePath } from './router.js';

export function App() {
  const [session, setSession] = useState<SessionView | null | undefined>(undefined);
  const [failure, setFailure] = useState<string | undefined>(undefined);

  useEffect(() => {
    currentSession()
      .then((s) => setSession(s ?? null))
      .catch((err: unknown) => setFailure(err instanceof Error ? err.message : String(err)));
  }, []);

  useEffect(() => {
    if (session === undefined) return;
    const path = window.location.pathname;
    // Logged out: the login page. Logged in on the login page: the dashboard.
    const want = session === null ? '/login' : path === '/login' ? '/' : path;
    if (want !== path) {
      window.history.replaceState(null, '', want);
      window.dispatchEvent(new Event('muster:navigate'));
    }
  }, [session]);

  if (failure) return <p class="error page">{failure}</p>;
  if (session === undefined) return <p class="page muted">Loading…</p>;
  if (session === null) return <Login onLoggedIn={setSession} />;
  return (
    <Shell
      session={session}
      onLoggedOut={() => {
        setSession(null);
      }}
    />
  );
}

const PAGES = [
  { path: '/', title: 'Dashboard' },
  { path: '/agents', title: 'Agents' },
  { path: '/builds', title: 'Builds' },
  { path: '/admin/settings', title: 'Settings' },
  { path: '/admin/certificates', title: 'Certificates' },
];

function Shell({ session, onLoggedOut }: { session: SessionView; onLoggedOut: () => void }) {
  const live = useLive();
  const status: StatusView | undefined = live.status;
  const path = usePath();
  const page = PAGES.find((p) => p.path === path);
  const buildId = /^\/builds\/(\d+)$/.exec(path)?.[1];
  // Changes need an admin, on the primary; a backup shows everything and changes nothing.
  const canEdit = session.user.role === 'admin' && status?.role === 'primary';
  return (
    <>
      <Banner status={status} />
      <header class="top">
        <span class="brand">Muster</span>
        <nav>
          {PAGES.map((p) => (
            <a
              key={p.path}
              href={p.path}
              aria-current={p.path === path ? 'page' : undefined}
              onClick={(e) => onLink(e, p.path)}
            >
              {p.title}
            </a>
          ))}
        </nav>
        <span class="who">
          {session.user.name} ({session.user.role})
          <button
            type="button"
            class="link"
            onClick={() => {
              void logOut().finally(onLoggedOut);
            }}
          >
            Log out
          </button>
        </span>
      </header>
      <main class="page">
        {page?.path === '/' ? <Dashboard live={live} /> : null}
        {page?.path === '/agents' ? <AgentsPage agents={live.agents} canEdit={canEdit} /> : null}
        {page?.path === '/builds' ? (
          <BuildsPage
            canBuild={session.user.role === 'admin' && status?.role !== 'backup-standby'}
            refresh={live.builds}
          />
        ) : null}
        {page?.path === '/admin/settings' ? (
          <>
            <h1>Settings › General</h1>
            <Backups status={status} canEdit={canEdit} />
            <AdvancedSettings canEdit={canEdit} />
          </>
        ) : null}
        {page?.path === '/admin/certificates' ? (
          <Certificates status={status} isAdmin={session.user.role === 'admin'} />
        ) : null}
        {buildId !== undefined ? (
          <BuildPage
            id={Number(buildId)}
            status={status}
            canBuild={session.user.role === 'admin'}
          />
        ) : null}
        {page === undefined && buildId === undefined ? (
          <p>
            There is no page {path}.{' '}
            <a href="/" onClick={(e) => onLink(e, '/')}>
              Go to the dashboard
            </a>
            .
          </p>
        ) : null}
      </main>
    </>
  );
}
