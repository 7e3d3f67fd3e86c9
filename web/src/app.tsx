/**
 * The web UI's shell: the session (login page until there is one), the backup banner on every
 * page, the navigation, and the pages. Paths are the browser's own (/login, /); the server
 * answers index.html for them.
 */
import { useEffect, useState } from 'preact/hooks';
import { currentSession, logOut, type SessionView, type StatusView } from './api.js';
import { Banner } from './banner.js';
import { Dashboard } from './dashboard.js';
import { Login } from './login.js';
import { useLive } from './live.js';

export function App() {
  const [session, setSession] = useState<SessionView | null | undefined>(undefined);
  const [failure, setFailure] = useState<string | undefined>(undefined);

  useEffect(() => {
    currentSession()
      .then((s) => setSession(s ?? null))
      .catch((err: unknown) => setFailure(err instanceof Error ? err.message : String(err)));
  }, []);

  useEffect(() => {
    const want = session ? '/' : '/login';
    if (
      session !== undefined &&
      window.location.pathname !== want &&
      (session === null || window.location.pathname === '/login')
    )
      window.history.replaceState(null, '', want);
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

function Shell({ session, onLoggedOut }: { session: SessionView; onLoggedOut: () => void }) {
  const live = useLive();
  const status: StatusView | undefined = live.status;
  return (
    <>
      <Banner status={status} />
      <header class="top">
        <span class="brand">Muster</span>
        <nav>
          <a href="/" aria-current="page">
            Dashboard
          </a>
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
        <Dashboard live={live} />
      </main>
    </>
  );
}
