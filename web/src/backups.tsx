/**
 * Admin › Settings › General › Backup: the backup coordinators registered with this primary,
 * with health and last contact, and which one is selected (or none). On a backup, or for a
 * viewer, everything is shown but nothing can be changed (the server refuses it anyway).
 */
import { useEffect, useState } from 'preact/hooks';
import { getBackups, selectBackup, type BackupView, type StatusView } from './api.js';
import { Notice } from './notice.js';

function ago(iso: string | null): string {
  if (iso === null) return 'never';
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return new Date(iso).toLocaleString();
}

export function Backups({ status, canEdit }: { status: StatusView | undefined; canEdit: boolean }) {
  const [backups, setBackups] = useState<BackupView[] | undefined>(undefined);
  const [choice, setChoice] = useState<string>('');
  // The primary's last automatic deselection (HA state, in its status).
  const deselected = status?.lastDeselected ?? undefined;
  const [message, setMessage] = useState<{ error: boolean; text: string }>();
  const [saving, setSaving] = useState(false);
  const onBackup = status !== undefined && status.role !== 'primary';

  useEffect(() => {
    if (onBackup) return;
    const load = (): void => {
      getBackups()
        .then((list) => {
          setBackups(list);
          setChoice((c) => (c === '' ? (list.find((b) => b.selected)?.name ?? 'none') : c));
        })
        .catch((err: unknown) => setMessage({ error: true, text: String((err as Error).message) }));
    };
    load();
    const timer = window.setInterval(load, 5000);
    return () => window.clearInterval(timer);
  }, [onBackup]);

  if (onBackup) {
    return (
      <section aria-labelledby="backup-title">
        <h2 id="backup-title">Backup</h2>
        <p class="muted">
          View only: this coordinator is a backup. Its primary ({status?.primary?.url ?? 'unknown'})
          lists and selects backups.
        </p>
      </section>
    );
  }

  const selected = backups?.find((b) => b.selected)?.name ?? 'none';
  const save = async (): Promise<void> => {
    setSaving(true);
    setMessage(undefined);
    try {
      const list = await selectBackup(choice === 'none' ? null : choice);
      setBackups(list);
      setMessage({
        error: false,
        text:
          choice === 'none'
            ? 'No backup is selected: none receives this coordinator’s state.'
            : `${choice} is selected: it receives this coordinator’s state and may take over.`,
      });
    } catch (err) {
      setMessage({ error: true, text: (err as Error).message });
    } finally {
      setSaving(false);
    }
  };

  return (
    <section aria-labelledby="backup-title">
      <h2 id="backup-title">Backup</h2>
      {deselected && selected === 'none' ? (
        <p class="error" role="alert">
          Backup {deselected.name} was deselected {ago(deselected.at)}: {deselected.reason}. Select
          a backup again to be protected.
        </p>
      ) : null}
      {backups && backups.length === 0 ? (
        <p class="muted">
          No backup has registered. Start one with{' '}
          <code>muster coordinator --backup-of {window.location.origin}</code> on another machine.
        </p>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
        >
          <fieldset disabled={!canEdit || saving}>
            <legend>Select the backup that receives this coordinator’s state</legend>
            <table>
              <thead>
                <tr>
                  <th>Selected</th>
                  <th>Name</th>
                  <th>URL</th>
                  <th>Health</th>
                  <th>Last contact</th>
                  <th>Lag</th>
                  <th>Certificate fingerprint</th>
                </tr>
              </thead>
              <tbody>
                {(backups ?? []).map((b) => (
                  <tr key={b.name} data-testid={`backup-${b.name}`}>
                    <td>
                      <input
                        type="radio"
                        name="backup"
                        aria-label={`Select ${b.name}`}
                        checked={choice === b.name}
                        onChange={() => setChoice(b.name)}
                      />
                    </td>
                    <td>{b.name}</td>
                    <td>{b.url}</td>
                    <td>
                      <span class={`pill ${b.health === 'healthy' ? 'connected' : 'unreachable'}`}>
                        {b.health}
                      </span>
                      {b.healthReason ? (
                        <div class="small" data-testid={`backup-${b.name}-reason`}>
                          {b.healthReason}
                        </div>
                      ) : null}
                    </td>
                    <td>{ago(b.lastContact)}</td>
                    <td>{b.lagSeconds === null ? '—' : `${b.lagSeconds} s`}</td>
                    <td>
                      <code class="small">{b.fingerprint ?? 'no TLS'}</code>
                    </td>
                  </tr>
                ))}
                <tr>
                  <td>
                    <input
                      type="radio"
                      name="backup"
                      aria-label="Select none"
                      checked={choice === 'none'}
                      onChange={() => setChoice('none')}
                    />
                  </td>
                  <td colSpan={6}>None</td>
                </tr>
              </tbody>
            </table>
            <p class="muted">
              Compare the fingerprint with the backup’s certificate before you select it: selecting
              is what makes it trusted.
            </p>
            <button type="submit">{saving ? 'Saving…' : 'Save'}</button>
          </fieldset>
        </form>
      )}
      <Notice notice={message} />
    </section>
  );
}
