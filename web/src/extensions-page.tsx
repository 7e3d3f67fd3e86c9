/**
 * Admin › Extensions: what this coordinator ships to its agents (the built-in `core`, then the
 * ones admins added), with versions and sizes; add one from a folder holding its
 * muster-extension.json (or a new version of it), remove one. Changes need an admin on the
 * primary; agents receive the new set on their next sync.
 */
import { useState } from 'preact/hooks';
import { formatBytes } from '../../src/api/format.js';
import { DangerButton } from './danger-button.js';
import { addExtension, listExtensions, removeExtension, type ExtensionView } from './api.js';
import { Notice, type Report } from './notice.js';
import { useList } from './use-list.js';
import { describePicked, pickedFiles, uploadFiles, type PickedFile } from './uploads.js';

const MANIFEST = 'muster-extension.json';

export function ExtensionsPage({ canEdit }: { canEdit: boolean }) {
  const { items: extensions, loadError, message, act } = useList(listExtensions);

  return (
    <>
      <h1>Extensions</h1>
      <p class="muted">
        Extensions provide the operations a task names with <code>uses: extension/operation</code>.
        This coordinator ships them to every agent with its host runtime; another coordinator on the
        same agent never sees them.
      </p>
      <Notice notice={loadError} />
      <Notice notice={message} />
      {extensions ? (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Version</th>
              <th>Files</th>
              <th>Size</th>
              <th>Added</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {extensions.map((x) => (
              <tr key={x.name} data-testid={`extension-${x.name}`}>
                <td>{x.name}</td>
                <td>{x.version}</td>
                <td>{x.files}</td>
                <td>{formatBytes(x.bytes)}</td>
                <td>{x.builtIn ? 'built in' : new Date(x.addedAt).toLocaleString()}</td>
                <td>
                  {x.builtIn ? null : (
                    <DangerButton
                      question={`Remove extension ${x.name}? Tasks that use it fail until it is added again.`}
                      disabled={!canEdit}
                      onConfirmed={() => void act(removeExtension(x.name), `${x.name} removed.`)}
                    >
                      Remove
                    </DangerButton>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {extensions && extensions.length === 1 ? (
        <p class="muted">Only the built-in core extension so far: add your own below.</p>
      ) : null}
      <AddExtension canEdit={canEdit} report={act} />
    </>
  );
}

/** The manifest's name and version, or an error saying what is wrong with the folder. */
async function readManifest(picked: PickedFile[]): Promise<{ name: string; version: string }> {
  const file = picked.find((p) => p.path === MANIFEST)?.file;
  if (!file)
    throw new Error(`the folder has no ${MANIFEST} at its top: pick the extension's folder`);
  let manifest: { name?: unknown; version?: unknown; main?: unknown };
  try {
    manifest = JSON.parse(await file.text()) as typeof manifest;
  } catch {
    throw new Error(`${MANIFEST} is not valid JSON`);
  }
  const { name, version, main } = manifest;
  if (typeof name !== 'string' || typeof version !== 'string' || typeof main !== 'string')
    throw new Error(`${MANIFEST} needs "name", "version" and "main" (strings)`);
  const entry = main.replace(/^\.\//, '');
  if (!picked.some((p) => p.path === entry))
    throw new Error(`${MANIFEST} names main "${main}", which is not in the folder`);
  return { name, version };
}

function AddExtension({ canEdit, report }: { canEdit: boolean; report: Report }) {
  const [picked, setPicked] = useState<PickedFile[]>([]);
  const [progress, setProgress] = useState<string>();
  const [busy, setBusy] = useState(false);
  const add = async (): Promise<ExtensionView> => {
    const { name, version } = await readManifest(picked);
    return addExtension(name, version, await uploadFiles(picked, setProgress));
  };
  return (
    <section aria-labelledby="add-extension-title">
      <h2 id="add-extension-title">Add an extension</h2>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          void report(
            add(),
            (x) => `${x.name} ${x.version} added: the agents receive it now.`,
          ).finally(() => {
            setBusy(false);
            setProgress(undefined);
          });
        }}
      >
        <fieldset disabled={!canEdit || busy}>
          <label>
            The extension's folder (with its {MANIFEST}; everything in it is shipped, its
            node_modules too, .git left out)
            <input
              type="file"
              {...{ webkitdirectory: true }}
              onChange={(e) => setPicked(pickedFiles(e.currentTarget.files, new Set(['.git'])))}
            />
          </label>
          <p class="muted small" data-testid="extension-files">
            {picked.length === 0 ? 'No folder picked yet.' : describePicked(picked)}
          </p>
          {progress ? (
            <p class="muted" role="status">
              {progress}
            </p>
          ) : null}
          <button type="submit" disabled={picked.length === 0}>
            Add extension
          </button>
        </fieldset>
      </form>
    </section>
  );
}
