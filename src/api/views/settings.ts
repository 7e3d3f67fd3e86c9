/** Settings as the API shows them (/api/v1/settings, /api/v1/setting-definitions). */

/**
 * GET /api/v1/settings: every setting set, by key, as stored (text, a number or true/false; ""
 * when cleared); never a secret one, nor an admin-only one to a viewer.
 */
export type SettingsView = Record<string, unknown>;

/** One setting with its explanation (GET /api/v1/settings/{key}). */
export interface SettingView {
  key: string;
  /** As stored; null: never set (its default applies). */
  value: unknown;
  description: string;
}

/** A setting an admin may change, with its value (GET /api/v1/setting-definitions). */
export interface SettingDefinitionView extends SettingView {
  /** Whether it may be cleared (an empty value or null). */
  clearable: boolean;
}

/** PUT /api/v1/settings/{key}: the value stored ("" when cleared). */
export interface SettingChangedView {
  key: string;
  value: unknown;
}
