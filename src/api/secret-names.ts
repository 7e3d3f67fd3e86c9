/**
 * What a secret's name and value may be: the plan's `secrets:` list, the API and the CLI check
 * the same. A name is an environment variable's (it becomes one in the task), a value is bounded.
 */
export const SECRET_NAME_PATTERN = /^[A-Z_][A-Z0-9_]{0,127}$/;
export const SECRET_NAME_TEXT =
  '1-128 upper-case letters, digits or "_", not starting with a digit';
/** The largest value, in bytes of UTF-8. */
export const MAX_SECRET_VALUE_BYTES = 32 * 1024;

/** The problem with a name, or undefined when it is valid. */
export function secretNameProblem(name: string): string | undefined {
  return SECRET_NAME_PATTERN.test(name)
    ? undefined
    : `${JSON.stringify(name)} is not a valid secret name (${SECRET_NAME_TEXT})`;
}
