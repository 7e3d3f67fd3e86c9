/**
 * Admin › Advanced Settings: each setting with a short explanation. Changed on the primary by an
 * admin; elsewhere (a backup, a viewer) shown as text, with why it cannot be changed here.
 */
import { useEffect, useState } from 'preact/hooks';
import { getSettingDefinitions, setSetting, type SettingDefinition } from './api.js';
import { Notice, useReport } from './notice.js';

export function AdvancedSettings({
  canEdit,
  viewOnly,
}: {
  canEdit: boolean;
  /** Why the settings cannot be changed here, said instead of edit controls. */
  viewOnly?: string | undefined;
}) {
  const [settings, setSettings] = useState<SettingDefinition[]>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    getSettingDefinitions()
      .then(setSettings)
      .catch((err: unknown) => setError((err as Error).message));
  }, []);
  return (
    <section aria-labelledby="advanced-title">
      <h2 id="advanced-title">Advanced Settings</h2>
      <Notice notice={error} />
      {!canEdit && viewOnly ? (
        <p class="muted" data-testid="settings-view-only">
          {viewOnly}
        </p>
      ) : null}
      {(settings ?? []).map((s) =>
        canEdit ? <Setting key={s.key} setting={s} /> : <ShownSetting key={s.key} setting={s} />,
      )}
    </section>
  );
}

function textOf(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value ?? '');
}

/** A setting that cannot be changed here: its value as text, no edit controls. */
function ShownSetting({ setting }: { setting: SettingDefinition }) {
  const value = textOf(setting.value);
  return (
    <div class="stack setting">
      <span>
        <strong>{setting.key}</strong>: {setting.description}
      </span>
      <code data-testid={`setting-${setting.key}`}>{value === '' ? '(empty)' : value}</code>
    </div>
  );
}

function Setting({ setting }: { setting: SettingDefinition }) {
  const [value, setValue] = useState(textOf(setting.value));
  const [message, report] = useReport();
  return (
    <form
      class="stack setting"
      onSubmit={(e) => {
        e.preventDefault();
        void report(
          setSetting(setting.key, value),
          value === '' && setting.clearable ? `${setting.key} cleared.` : `${setting.key} saved.`,
        );
      }}
    >
      <label>
        <span>
          <strong>{setting.key}</strong>: {setting.description}
        </span>
        <input value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </label>
      <span class="actions">
        <button type="submit">Save {setting.key}</button>
        {setting.clearable ? (
          <button
            type="button"
            onClick={() => {
              void report(setSetting(setting.key, null), `${setting.key} cleared.`).then((ok) => {
                if (ok) setValue('');
              });
            }}
          >
            Clear {setting.key}
          </button>
        ) : null}
      </span>
      <Notice notice={message} />
    </form>
  );
}
