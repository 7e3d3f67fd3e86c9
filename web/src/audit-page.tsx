/**
 * Admin › Audit: every administrative change, newest first — who, when, from which address, what
 * and to which name — filtered by action or actor, older pages on request. Admins only; reading
 * works on a backup too (the log is replicated to it).
 */
import { useEffect, useState } from 'preact/hooks';
import { formatDetails } from '../../src/api/format.js';
import { listAudit, type AuditView } from './api.js';
import { Notice } from './notice.js';

const PAGE = 100;

export function AuditPage() {
  const [rows, setRows] = useState<AuditView[]>();
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string>();
  const [action, setAction] = useState('');
  const [actor, setActor] = useState('');
  const [filter, setFilter] = useState({ action: '', actor: '' });

  // One more than a page tells whether there are older rows.
  const load = (before: number | undefined, keep: AuditView[]): void => {
    listAudit({ ...filter, before, limit: PAGE + 1 })
      .then((page) => {
        setRows([...keep, ...page.slice(0, PAGE)]);
        setMore(page.length > PAGE);
        setError(undefined);
      })
      .catch((err: unknown) => setError((err as Error).message));
  };
  useEffect(() => load(undefined, []), [filter]);

  return (
    <>
      <h1>Audit</h1>
      <p class="muted">
        Every change to users, passwords, agents, settings, extensions, toolchains, the certificate
        and the backup selection, with who made it and from where. Passwords, tokens and keys are
        never recorded. The newest 100,000 changes are kept.
      </p>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ action: action.trim(), actor: actor.trim() });
        }}
      >
        <label>
          Action{' '}
          <input
            value={action}
            placeholder="e.g. user.create"
            onInput={(e) => setAction(e.currentTarget.value)}
          />
        </label>{' '}
        <label>
          Who{' '}
          <input
            value={actor}
            placeholder="a user, or system"
            onInput={(e) => setActor(e.currentTarget.value)}
          />
        </label>{' '}
        <button type="submit">Filter</button>
      </form>
      <Notice notice={error} />
      {rows && rows.length === 0 ? <p class="muted">No changes recorded.</p> : null}
      {rows && rows.length > 0 ? (
        <table data-testid="audit">
          <thead>
            <tr>
              <th>When</th>
              <th>Who</th>
              <th>From</th>
              <th>Action</th>
              <th>Target</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-testid={`audit-${r.id}`}>
                <td title={r.at}>{new Date(r.at).toLocaleString()}</td>
                <td>
                  {r.actor}
                  {r.actorKind !== 'user' ? (
                    <span class="muted small"> ({r.actorKind})</span>
                  ) : null}
                </td>
                <td>{r.ip ?? '—'}</td>
                <td>
                  <code>{r.action}</code>
                </td>
                <td>{r.target}</td>
                <td class="small">{formatDetails(r.details)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {more && rows ? (
        <button type="button" onClick={() => load(rows.at(-1)?.id, rows)}>
          Older changes
        </button>
      ) : null}
    </>
  );
}
