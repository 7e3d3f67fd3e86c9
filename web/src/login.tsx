/** The login page: the coordinator's users (the same on a backup), with clear errors. */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getBanner, logIn, type BannerView, type SessionView } from './api.js';
import { Banner } from './banner.js';
import { Notice } from './notice.js';

export function Login({
  onLoggedIn,
  notice,
}: {
  onLoggedIn: (session: SessionView) => void;
  /** Why the login page is shown again, when the session ended under the page. */
  notice?: string | undefined;
}) {
  const [user, setUser] = useState('admin');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [banner, setBanner] = useState<BannerView>();
  useEffect(() => {
    // A coordinator without the route (older) or not answering: no banner, the login still works.
    // eslint-disable-next-line no-restricted-syntax -- see above
    getBanner()
      .then(setBanner)
      .catch(() => undefined);
  }, []);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onLoggedIn(await logIn(user, password));
    } catch (err) {
      setError(
        err instanceof ApiError && err.code === 'UNAUTHORIZED'
          ? 'Wrong user name or password.'
          : err instanceof Error
            ? err.message
            : String(err),
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <Banner status={banner} />
      <main class="login">
        <form onSubmit={(e) => void submit(e)} aria-labelledby="login-title">
          <h1 id="login-title">Log in to Muster</h1>
          {notice && error === undefined ? (
            <Notice notice={{ error: false, text: notice }} />
          ) : null}
          <label>
            User
            <input
              name="user"
              autocomplete="username"
              value={user}
              onInput={(e) => setUser(e.currentTarget.value)}
              required
            />
          </label>
          <label>
            Password
            <input
              name="password"
              type="password"
              autocomplete="current-password"
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
              required
            />
          </label>
          <Notice notice={error} />
          <button type="submit" disabled={busy}>
            {busy ? 'Logging in…' : 'Log in'}
          </button>
        </form>
      </main>
    </>
  );
}
