/**
 * Admin › Secrets: named values that plans give to tasks (`secrets: [NAME]`). Lists names, who set
 * them and when; sets one (the value field is write-only: the API never sends a value back, so
 * the page cannot show one) and deletes. Changes need an admin on the primary.
 */
import { useState } from 'preact/hooks';
import { SECRET_NAME_TEXT } from '../../src/api/secret-names.js';
import { deleteSecret, listSecrets, setSecret } from './api.js';
import { DangerButton } from './danger-button.js';
import { Notice, type Report } from './notice.js';
import { useList } from './use-list.js';

export function SecretsPage({ canEdit }: { canEdit: boolean }) {
  const { items: secrets, loadError, message, act } = useList(listSecrets);

  return (
    <>
      <h1>Secrets</h1>
      <p class="muted">
        A task gets a secret as an environment variable of its name when its plan lists it (
        <code>secrets: [NAME]</code>). Values are kept encrypted, masked as <code>***</code> in task
        output, and never shown again — not here, not by the API.
      </p>
      <Notice notice={loadError} />
      <Notice notice={message} />
      {secrets && secrets.length === 0 ? <p>No secrets yet.</p> : null}
      {secrets && secrets.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Set by</th>
              <th>Set at</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {secrets.map((s) => (
              <tr key={`${s.name}:${s.setAt}`} data-testid={`secret-${s.name}`}>
                <td>
                  <code>{s.name}</code>
                </td>
                <td>{s.setBy}</td>
                <td>{new Date(s.setAt).toLocaleString()}</td>
                <td>
                  <DangerButton
                    question={`Delete secret ${s.name}? Builds whose plans name it are refused from then on.`}
                    disabled={!canEdit}
                    onConfirmed={() => void act(deleteSecret(s.name), `${s.name} deleted.`)}
                  >
                    Delete
                  </DangerButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <SetSecret canEdit={canEdit} report={act} />
    </>
  );
}

function SetSecret({ canEdit, report }: { canEdit: boolean; report: Report }) {
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  return (
    <section aria-labelledby="set-secret-title">
      <h2 id="set-secret-title">Set a secret</h2>
      <p class="muted small">A name that exists gets the new value.</p>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void report(setSecret(name, value), `${name} set.`).then((ok) => {
            // The value leaves the page either way once sent: it is never kept or shown.
            setValue('');
            if (ok) setName('');
          });
        }}
      >
        <fieldset disabled={!canEdit}>
          <label>
            Name
            <input
              value={name}
              autocomplete="off"
              pattern="[A-Z_][A-Z0-9_]{0,127}"
              title={SECRET_NAME_TEXT}
              onInput={(e) => setName(e.currentTarget.value)}
              required
            />
          </label>
          <label>
            Value
            <input
              type="password"
              autocomplete="off"
              value={value}
              onInput={(e) => setValue(e.currentTarget.value)}
              required
            />
          </label>
          <button type="submit">Set secret</button>
        </fieldset>
      </form>
    </section>
  );
}
