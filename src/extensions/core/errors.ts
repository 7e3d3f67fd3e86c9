/** Errors the host turns into task errors: `code` is one of Muster's error codes. */
export type CoreErrorCode = 'INVALID_INPUT' | 'INVALID_PATH' | 'OPERATION_FAILED';

export function coreError(code: CoreErrorCode, message: string): Error & { code: CoreErrorCode } {
  return Object.assign(new Error(message), { code });
}

export function invalidInput(message: string): Error & { code: CoreErrorCode } {
  return coreError('INVALID_INPUT', message);
}

/** The input as a plain object whose keys are all in `allowed` (typos are errors, not ignored). */
export function inputObject(
  input: unknown,
  operation: string,
  allowed: readonly string[],
): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalidInput(`${operation}: input must be an object`);
  }
  const unknownKey = Object.keys(input).find((k) => !allowed.includes(k));
  if (unknownKey !== undefined) {
    throw invalidInput(
      `${operation}: unknown input field "${unknownKey}" (allowed: ${allowed.join(', ')})`,
    );
  }
  return input as Record<string, unknown>;
}
