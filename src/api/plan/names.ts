/** What a task name, label, extension or operation name in a plan may be, and how names sort. */
import { describe } from './problems.js';

export const TASK_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const EXTENSION_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const OPERATION_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Code-unit order (not locale order), so plans sort the same everywhere. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The problem text for a task name that is not valid. */
export function badNameText(name: unknown): string {
  return `${typeof name === 'string' ? JSON.stringify(name) : describe(name)} is not a valid task name (1-64 letters, digits, ".", "_" or "-", starting with a letter or digit)`;
}
