/** Errors the host turns into task errors: `code` is one of Muster's error codes. */
export type CcErrorCode =
  | 'INVALID_INPUT'
  | 'INVALID_PATH'
  | 'OPERATION_FAILED'
  | 'TOOLCHAIN_NOT_FOUND'
  | 'TOOLCHAIN_INCOMPATIBLE';

export type CcError = Error & { code: CcErrorCode };

export function ccError(code: CcErrorCode, message: string): CcError {
  return Object.assign(new Error(message), { code });
}

export function invalidInput(message: string): CcError {
  return ccError('INVALID_INPUT', message);
}

/** The input as a plain object whose keys are all in `allowed` (typos are errors, not ignored). */
export function inputObject(
  input: unknown,
  what: string,
  allowed: readonly string[],
): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalidInput(`${what} must be an object`);
  }
  const unknownKey = Object.keys(input).find((k) => !allowed.includes(k));
  if (unknownKey !== undefined) {
    throw invalidInput(`${what}: unknown field "${unknownKey}" (allowed: ${allowed.join(', ')})`);
  }
  return input as Record<string, unknown>;
}
