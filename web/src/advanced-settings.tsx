/** Admin › Advanced Settings: each setting with a short explanation; changed on the primary. */
import { useEffect, useState } from 'preact/hooks';
import { getSettingDefinitions, setSetting, type SettingDefinition } from './api.js';
import { Notice, useReport } from './notice.js';

export function AdvancedSettings({ canEdit }: { canEdit: boolean }) {
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
      {(settings ?? []).map((s) => (
        <Setting key={s.key} setting={s} canEdit={canEdit} />
      ))}
    </section>
  );
}

function Setting({ setting, canEdit }: { setting: SettingDefinition; canEdit: boolean }) {
  const [value, setValue] = useState(
    typeof setting.value === 'string' ? setting.value : JSON.stringify(setting.value ?? ''),
  );
  const [message, report] = useReport();
  return (
    <form
      class="stack setting"
      onSubmit={(e) => {
        e.preventDefault();
        void report(setSetting(setting.key, value), `${setting.key} saved.`);
      }}
    >
      <fieldset disabled={!canEdit}>
        <label>
          <span>
            <strong>{setting.key}</strong>: {setting.description}
          </span>
          <input value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </label>
        <button type="submit">Save {setting.key}</button>
      </fieldset>
      <Notice notice={message} />
    </form>
  );
}
