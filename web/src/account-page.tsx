/**
 * The user's own account: who they are, and a new password (proved by the current one; their
 * other sessions and CLI tokens end). Passwords change on the primary only.
 */
import { useState } from 'preact/hooks';
import { changePassword, type SessionView } from './api.js';
import { Notice, useReport } from './notice.js';

export function AccountPage({ session, onPrimary }: { session: SessionView; onPrimary: boolean }) {
  const [current, setCurrent] = useState('');
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const [message, report] = useReport();
  const mismatch = repeat !== '' && repeat !== password;
  return (
    <>
      <h1>Your account</h1>
      <p>
        You are <strong>{session.user.name}</strong>, {session.user.role === 'admin' ? 'an' : 'a'}{' '}
        {session.user.role}.
      </p>
      <section aria-labelledby="password-title">
        <h2 id="password-title">Change your password</h2>
        {onPrimary ? null : <p class="muted">Passwords are changed on the primary coordinator.</p>}
        <form
          class="stack"
          onSubmit={(e) => {
            e.preventDefault();
            if (mismatch) return;
            void report(
              changePassword(current, password),
              'Your password is changed. Your other sessions and CLI logins have ended.',
            ).then((ok) => {
              if (!ok) return;
              setCurrent('');
              setPassword('');
              setRepeat('');
            });
          }}
        >
          <fieldset disabled={!onPrimary}>
            <label>
              Current password
              <input
                type="password"
                autocomplete="current-password"
                value={current}
                onInput={(e) => setCurrent(e.currentTarget.value)}
                required
              />
            </label>
            <label>
              New password (at least 8 characters)
              <input
                type="password"
                autocomplete="new-password"
                minLength={8}
                value={password}
                onInput={(e) => setPassword(e.currentTarget.value)}
                required
              />
            </label>
            <label>
              New password again
              <input
                type="password"
                autocomplete="new-password"
                value={repeat}
                aria-invalid={mismatch}
                onInput={(e) => setRepeat(e.currentTarget.value)}
                required
              />
            </label>
            <Notice notice={mismatch ? 'The two new passwords differ.' : undefined} />
            <button type="submit" disabled={mismatch}>
              Change password
            </button>
          </fieldset>
          <Notice notice={message} />
        </form>
      </section>
    </>
  );
}
