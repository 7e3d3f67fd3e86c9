/**
 * The web UI's shell: the session (login page until there is one), the backup banner on every
 * page, the navigation, and the pages. Paths are the browser's own (/login, /); the server
 * answers index.html for them.
 */
import { Fragment } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { currentSession, logOut, SESSION_ENDED, type SessionView, type StatusView } from './api.js';
import { AccountPage } from './account-page.js';
import { AdvancedSettings } from './advanced-settings.js';
import { AgentsPage } from './agents-page.js';
import { Backups } from './backups.js';
import { Banner } from './banner.js';
import { BuildPage } from './build-page.js';
import { BuildsPage } from './builds-page.js';
import { Certificates } from './certificates.js';
import { Dashboard } from './dashboard.js';
import { ExtensionsPage } from './extensions-page.js';
import { JoinTokensPage } from './join-tokens-page.js';
import { Login } from './login.js';
import { useLive } from './live.js';
import { onLink, usePath } from './router.js';
import { SecretsPage } from './secrets-page.js';
import { UsersPage } from './users-page.js';
import { AuditPage } from './audit-page.js';

export function App() {
  const [session, setSession] = useState<SessionView | null | undefined>(undefined);
  const [failure, setFailure] = useState<string | undefined>(undefined);

  const [ended, setEnded] = useState<string>();
  const current = useRef<SessionView | null | undefined>(undefined);
  current.current = session;

  useEffect(() => {
    const onEnded = (): void => {
      // Only a session that was open ends (not a late answer after "Log out").
      if (!current.current) return;
      current.current = null;
      setSession(null);
      setEnded(
        'Your session has ended (logged out elsewhere, a new password, or expired): log in again.',
      );
    };
    window.addEventListener(SESSION_ENDED, onEnded);
    return () => window.removeEventListener(SESSION_ENDED, onEnded);
  }, []);

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
  if (session === null)
    return (
      <Login
        notice={ended}
        onLoggedIn={(s) => {
          setEnded(undefined);
          setSession(s);
        }}
      />
    );
  return (
    <Shell
      session={session}
      onLogOut={() => {
        // From now on a refused request is this logout's doing, not a session that ended.
        current.current = null;
        void logOut().finally(() => setSession(null));
      }}
    />
  );
}

/**
 * The navigation: the work, then the administration (under /admin/). `adminOnly` pages are
 * listed for admins only (viewers may not read them).
 */
const PAGES: { path: string; title: string; adminOnly?: boolean }[] = [
  { path: '/', title: 'Dashboard' },
  { path: '/agents', title: 'Agents' },
  { path: '/builds', title: 'Builds' },
  { path: '/admin/settings', title: 'Settings' },
  { path: '/admin/users', title: 'Users', adminOnly: true },
  { path: '/admin/tokens', title: 'Join tokens', adminOnly: true },
  { path: '/admin/extensions', title: 'Extensions' },
  { path: '/admin/certificates', title: 'Certificates' },
  { path: '/admin/secrets', title: 'Secrets', adminOnly: true },
  { path: '/admin/audit', title: 'Audit', adminOnly: true },
];

function Shell({ session, onLogOut }: { session: SessionView; onLogOut: () => void }) {
  const live = useLive();
  const status: StatusView | undefined = live.status;
  const path = usePath();
  const page = PAGES.find((p) => p.path === path) ?? (path === '/account' ? ACCOUNT : undefined);
  const buildId = /^\/builds\/(\d+)$/.exec(path)?.[1];
  const admin = session.user.role === 'admin';
  // Changes need an admin, on the primary; a backup shows everything and changes nothing.
  const onPrimary = status?.role === 'primary';
  const canEdit = admin && onPrimary;
  const canBuild = admin && status?.role !== 'backup-standby';
  // With the page's content, not a frame later: what announces or tests the new page sees both.
  useLayoutEffect(() => {
    document.title = `${page?.title ?? (buildId ? `Build ${buildId}` : 'No such page')} · Muster`;
  }, [page, buildId]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to the page
      </a>
      <Banner status={status} />
      <header class="top">
        <span class="brand">Muster</span>
        <nav aria-label="Pages">
          {PAGES.filter((p) => admin || !p.adminOnly).map((p) => (
            <Fragment key={p.path}>
              {p.path === '/admin/settings' ? (
                <span class="nav-group" aria-hidden="true">
                  Admin
                </span>
              ) : null}
              <a
                href={p.path}
                aria-current={p.path === path ? 'page' : undefined}
                onClick={(e) => onLink(e, p.path)}
              >
                {p.title}
              </a>
            </Fragment>
          ))}
        </nav>
        <span class="who">
          <a
            href="/account"
            aria-current={path === '/account' ? 'page' : undefined}
            onClick={(e) => onLink(e, '/account')}
            title="Your account and password"
          >
            {session.user.name}
          </a>{' '}
          ({session.user.role}){' '}
          <a href="/api/docs" title="The REST API's reference (OpenAPI)">
            API
          </a>{' '}
          <button type="button" class="link" onClick={onLogOut}>
            Log out
          </button>
        </span>
      </header>
      <main class="page" id="main" tabIndex={-1}>
        {page?.path === '/' ? <Dashboard live={live} /> : null}
        {page?.path === '/agents' ? (
          <AgentsPage
            agents={live.agents}
            canEdit={canEdit}
            standby={status?.role === 'backup-standby'}
          />
        ) : null}
        {page?.path === '/builds' ? <BuildsPage canBuild={canBuild} refresh={live.builds} /> : null}
        {page?.path === '/admin/settings' ? (
          <>
            <h1>Settings › General</h1>
            <Backups status={status} canEdit={canEdit} />
            <AdvancedSettings
              canEdit={canEdit}
              viewOnly={
                status !== undefined && !onPrimary
                  ? 'View only: this coordinator is a backup. Settings are changed on the primary and copied here.'
                  : 'View only: admins change settings.'
              }
            />
          </>
        ) : null}
        {page?.path === '/admin/users' ? <UsersPage session={session} canEdit={canEdit} /> : null}
        {page?.path === '/admin/tokens' ? <JoinTokensPage canEdit={canEdit} /> : null}
        {page?.path === '/admin/extensions' ? <ExtensionsPage canEdit={canEdit} /> : null}
        {page?.path === '/admin/certificates' ? (
          <Certificates status={status} isAdmin={admin} />
        ) : null}
        {page?.path === '/admin/secrets' ? <SecretsPage canEdit={canEdit} /> : null}
        {page?.path === '/admin/audit' ? <AuditPage /> : null}
        {page === ACCOUNT ? <AccountPage session={session} onPrimary={onPrimary} /> : null}
        {buildId !== undefined ? (
          <BuildPage id={Number(buildId)} status={status} canBuild={admin} />
        ) : null}
        {page === undefined && buildId === undefined ? (
          <>
            <h1>No such page</h1>
            <p>
              There is no page at <code>{path}</code>.{' '}
              <a href="/" onClick={(e) => onLink(e, '/')}>
                Go to the dashboard
              </a>
              .
            </p>
          </>
        ) : null}
      </main>
    </>
  );
}

const ACCOUNT = { path: '/account', title: 'Your account' };
