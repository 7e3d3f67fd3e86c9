/**
 * Admin › Join tokens (agents that dial out): the tokens with their labels, whether the agents
 * that join with them work at once or wait for approval, expiry, uses and who made them; create
 * one (its secret and the command that starts an agent with it are shown this once, never
 * again), revoke one (agents that joined with it keep working). Admins only; changes need the
 * primary.
 */
import { useState } from 'preact/hooks';
import {
  createJoinToken,
  listJoinTokens,
  revokeJoinToken,
  type CreatedJoinTokenView,
  type JoinTokenExpiry,
  type JoinTokenView,
} from './api.js';
import { DangerButton } from './danger-button.js';
import { labelsOf } from './labels.js';
import { Notice, type Report } from './notice.js';
import { useList } from './use-list.js';

const EXPIRIES: { value: JoinTokenExpiry; text: string }[] = [
  { value: '24h', text: 'in 24 hours' },
  { value: '7d', text: 'in 7 days' },
  { value: 'never', text: 'never (revoke it when done)' },
];

export function JoinTokensPage({ canEdit }: { canEdit: boolean }) {
  const { items: tokens, loadError, message, act } = useList(listJoinTokens);
  const [created, setCreated] = useState<CreatedJoinTokenView>();

  return (
    <>
      <h1>Join tokens</h1>
      <p class="muted">
        An agent this coordinator cannot reach dials out to it with a join token:{' '}
        <code>muster agent --connect URL --join-token TOKEN</code>. It then waits on the Agents page
        for an admin to approve it, unless its token approves agents at once. Revoking a token
        admits no new agent with it; agents that joined with it keep working.
      </p>
      <Notice notice={loadError} />
      <Notice notice={message} />
      {created ? <NewToken token={created} onHide={() => setCreated(undefined)} /> : null}
      {tokens && tokens.length === 0 ? <p class="muted">No join tokens.</p> : null}
      {tokens && tokens.length > 0 ? (
        <table data-testid="join-tokens">
          <thead>
            <tr>
              <th>Token</th>
              <th>Labels</th>
              <th>Agents that join</th>
              <th>Expires</th>
              <th>Uses</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <TokenRow key={t.id} token={t} canEdit={canEdit} report={act} />
            ))}
          </tbody>
        </table>
      ) : null}
      <CreateToken canEdit={canEdit} report={act} onCreated={setCreated} />
    </>
  );
}

function TokenRow({
  token,
  canEdit,
  report,
}: {
  token: JoinTokenView;
  canEdit: boolean;
  report: Report;
}) {
  return (
    <tr data-testid={`token-${token.id}`}>
      <td>
        <code class="small">{token.id}</code>
      </td>
      <td>{token.labels.length > 0 ? token.labels.join(', ') : '—'}</td>
      <td>{token.autoApprove ? 'work at once' : 'wait for approval'}</td>
      <td title={token.expiresAt ?? undefined}>
        {token.expired ? (
          <span class="pill refused">expired</span>
        ) : token.expiresAt === null ? (
          'never'
        ) : (
          new Date(token.expiresAt).toLocaleString()
        )}
      </td>
      <td data-testid={`uses-${token.id}`}>{token.uses}</td>
      <td title={token.createdAt}>
        {token.createdBy}
        <div class="muted small">{new Date(token.createdAt).toLocaleString()}</div>
      </td>
      <td>
        <DangerButton
          question={`Revoke join token ${token.id}? No new agent can join with it; agents that joined with it keep working.`}
          disabled={!canEdit}
          onConfirmed={() => void report(revokeJoinToken(token.id), `Token ${token.id} revoked.`)}
        >
          Revoke
        </DangerButton>
      </td>
    </tr>
  );
}

/** The token just created: the only time its secret is shown. */
function NewToken({ token, onHide }: { token: CreatedJoinTokenView; onHide: () => void }) {
  const [copied, setCopied] = useState<string>();
  const copy = (text: string, what: string): void => {
    // The clipboard needs a secure context; the text stays selectable without it.
    const clipboard = window.isSecureContext ? navigator.clipboard : undefined;
    if (clipboard === undefined) {
      setCopied('Copying needs HTTPS here: select the text and copy it.');
      return;
    }
    clipboard.writeText(text).then(
      () => setCopied(`${what} copied.`),
      () => setCopied('The browser did not allow copying: select the text and copy it.'),
    );
  };
  return (
    <section class="confirm" aria-labelledby="new-token-title" data-testid="new-token">
      <h2 id="new-token-title">Token {token.id} created</h2>
      <p>Copy it now: it is shown only this once. On the agent's machine, run:</p>
      <pre class="copy" data-testid="new-token-command">
        {token.command}
      </pre>
      <p class="muted small">The token alone:</p>
      <pre class="copy" data-testid="new-token-secret">
        {token.token}
      </pre>
      <div class="actions">
        <button type="button" onClick={() => copy(token.command, 'The command')}>
          Copy the command
        </button>
        <button type="button" onClick={() => copy(token.token, 'The token')}>
          Copy the token
        </button>
        <button type="button" class="secondary" onClick={onHide}>
          Done
        </button>
      </div>
      {copied ? (
        <p class="muted small" role="status">
          {copied}
        </p>
      ) : null}
    </section>
  );
}

function CreateToken({
  canEdit,
  report,
  onCreated,
}: {
  canEdit: boolean;
  report: Report;
  onCreated: (token: CreatedJoinTokenView | undefined) => void;
}) {
  const [labels, setLabels] = useState('');
  const [autoApprove, setAutoApprove] = useState(false);
  const [expires, setExpires] = useState<JoinTokenExpiry>('24h');
  return (
    <section aria-labelledby="create-token-title">
      <h2 id="create-token-title">Create a join token</h2>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          onCreated(undefined);
          void report(
            createJoinToken({ labels: labelsOf(labels), autoApprove, expires }).then((token) => {
              onCreated(token);
              return token;
            }),
            (token) => `Token ${token.id} created: copy it below, it is not shown again.`,
          ).then((ok) => {
            if (!ok) return;
            setLabels('');
            setAutoApprove(false);
          });
        }}
      >
        <fieldset disabled={!canEdit}>
          <label>
            Labels the agents get (comma-separated; their system, architecture, cores, memory and
            compilers are added)
            <input value={labels} onInput={(e) => setLabels(e.currentTarget.value)} />
          </label>
          <label>
            Expires
            <select
              value={expires}
              onChange={(e) => setExpires(e.currentTarget.value as JoinTokenExpiry)}
            >
              {EXPIRIES.map((x) => (
                <option key={x.value} value={x.value}>
                  {x.text}
                </option>
              ))}
            </select>
          </label>
          <label class="check">
            <input
              type="checkbox"
              checked={autoApprove}
              onChange={(e) => setAutoApprove(e.currentTarget.checked)}
            />
            Agents that join with it work at once, without an admin's approval
          </label>
          <button type="submit">Create token</button>
        </fieldset>
      </form>
    </section>
  );
}
