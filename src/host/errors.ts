import type { ErrorCode } from '../protocol/errors.js';

/**
 * The host cannot import src/protocol at run time (only its own folder is shipped), so it keeps
 * its own copy of the code list. `Record<ErrorCode, true>` makes the compiler insist that the
 * copy matches src/protocol/errors.ts exactly.
 */
const knownCodes: Record<ErrorCode, true> = {
  FRAME_TOO_LARGE: true,
  MALFORMED_FRAME: true,
  INVALID_MESSAGE: true,
  UNKNOWN_MESSAGE: true,
  UNEXPECTED_MESSAGE: true,
  UNSUPPORTED_PROTOCOL: true,
  AUTH_FAILED: true,
  HANDSHAKE_TIMEOUT: true,
  INSTANCE_CLAIM_INVALID: true,
  INSTANCE_BOUND: true,
  INSTANCE_IN_USE: true,
  TLS_FINGERPRINT_MISMATCH: true,
  TLS_UNTRUSTED: true,
  INVALID_PATH: true,
  INVALID_MANIFEST: true,
  BLOB_HASH_MISMATCH: true,
  BLOB_SIZE_MISMATCH: true,
  BLOB_NOT_FOUND: true,
  UNEXPECTED_BLOB: true,
  STORAGE_ERROR: true,
  NOT_SYNCED: true,
  TASK_EXISTS: true,
  TASK_NOT_FOUND: true,
  UNKNOWN_EXTENSION: true,
  UNKNOWN_OPERATION: true,
  OPERATION_FAILED: true,
  INVALID_INPUT: true,
  OUTPUT_ESCAPES: true,
  OUTPUT_UNDECLARED: true,
  OUTPUT_IN_GIT: true,
  OUTPUT_THROUGH_SYMLINK: true,
  TASK_TIMEOUT: true,
  TASK_CANCELLED: true,
  HOST_CRASHED: true,
  HOST_START_FAILED: true,
  TASK_USER_FAILED: true,
  DUPLICATE_LINK: true,
  RUNTIME_NOT_EXECUTABLE: true,
  TOOLCHAIN_NOT_FOUND: true,
  TOOLCHAIN_INCOMPATIBLE: true,
  AGENT_SHUTTING_DOWN: true,
  LEASE_NOT_HELD: true,
  CONNECTION_CLOSED: true,
  REQUEST_TIMEOUT: true,
  INTERNAL: true,
  INVALID_CONFIG: true,
  INPUT_ESCAPES: true,
  UNAUTHORIZED: true,
  FORBIDDEN: true,
  NOT_FOUND: true,
  CONFLICT: true,
  LAST_ADMIN: true,
  WRONG_PASSWORD: true,
  VALIDATION_FAILED: true,
  PLAN_INVALID: true,
  RATE_LIMITED: true,
  PAYLOAD_TOO_LARGE: true,
  UPLOAD_QUOTA_EXCEEDED: true,
  STORE_SCHEMA_TOO_NEW: true,
  READ_ONLY: true,
  UNREACHABLE: true,
  STANDBY: true,
  NOT_SELECTED: true,
  SNAPSHOT_REQUIRED: true,
  BACKUP_UNVERIFIED: true,
  TLS_NOT_ENABLED: true,
  CERT_INVALID: true,
  CERT_KEY_INVALID: true,
  CERT_KEY_ENCRYPTED: true,
  CERT_KEY_MISMATCH: true,
  CERT_EXPIRED: true,
  CERT_NOT_YET_VALID: true,
  CERT_HOST_MISMATCH: true,
  CERT_WRITE_FAILED: true,
  COMPILE_SESSION_CLOSED: true,
  BUILD_NOT_ENDED: true,
  TOO_MANY_COMPILE_SESSIONS: true,
  CACHE_CLIENT_RESULTS_REFUSED: true,
  LOCAL_CACHE_UNREADABLE: true,
  TOO_MANY_TOOLCHAINS: true,
  SECRET_NOT_FOUND: true,
  SECRET_UNREADABLE: true,
};

export function isKnownCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(knownCodes, value);
}

/** An Error with a stable code, the shape extensions are asked to throw too. */
export interface CodedError extends Error {
  code: ErrorCode;
}

export function codedError(code: ErrorCode, message: string, cause?: unknown): CodedError {
  const err = new Error(message, cause === undefined ? undefined : { cause }) as CodedError;
  err.code = code;
  return err;
}

/** What a task result carries for anything thrown: a known code or OPERATION_FAILED. */
export function toTaskError(
  err: unknown,
  fallback: ErrorCode = 'OPERATION_FAILED',
): { code: ErrorCode; message: string } {
  const code = (err as { code?: unknown } | null)?.code;
  const rawMessage = (err as { message?: unknown } | null)?.message;
  const message = typeof rawMessage === 'string' ? rawMessage : String(err);
  return { code: isKnownCode(code) ? code : fallback, message };
}

/** The errno code of a Node system error, if it is one. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
