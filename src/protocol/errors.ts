/**
 * Every error that crosses a boundary (wire, host IPC, CLI) carries one of these stable codes.
 * The message is for people; the code is for programs and tests. Keep docs/errors.md in step
 * (test/unit/errors.test.ts checks it).
 */
export const errorCodes = {
  // framing and messages
  FRAME_TOO_LARGE: 'A frame is larger than the limit; the connection is closed.',
  MALFORMED_FRAME: 'A frame could not be decoded (bad kind, bad header or invalid JSON).',
  INVALID_MESSAGE: 'A message does not match its schema.',
  UNKNOWN_MESSAGE: 'A message type this peer does not know.',
  UNEXPECTED_MESSAGE: 'A message that is not allowed in the current state of the connection.',
  // handshake
  UNSUPPORTED_PROTOCOL: 'No protocol version is supported by both peers.',
  AUTH_FAILED: 'The peer could not prove knowledge of the access key.',
  HANDSHAKE_TIMEOUT: 'The handshake did not complete in time.',
  INSTANCE_CLAIM_INVALID:
    "A claim of an instance or cluster id is missing or not signed by the coordinator's instance key.",
  INSTANCE_BOUND:
    "The instance (or cluster) is bound to another coordinator's key; an agent admin can unbind it.",
  INSTANCE_IN_USE:
    'The instance has a live connection or tasks, so an agent admin cannot remove it now.',
  TLS_FINGERPRINT_MISMATCH:
    "A peer's certificate (an agent's, a primary's, a backup's, or a coordinator's for the CLI) does not match the pinned fingerprint.",
  TLS_UNTRUSTED:
    "The coordinator's certificate is not trusted by this machine and was not confirmed: check its fingerprint and pass it with muster login --fingerprint.",
  // files
  INVALID_PATH: 'A path is absolute, contains "..", or is otherwise not a safe relative path.',
  INVALID_MANIFEST: 'A manifest is malformed or lists a path twice.',
  BLOB_HASH_MISMATCH: 'Received content does not match its SHA-256.',
  BLOB_SIZE_MISMATCH: 'Received content is larger or smaller than declared.',
  BLOB_NOT_FOUND: 'The blob is not in the store.',
  UNEXPECTED_BLOB: 'A blob chunk that no pending upload asked for.',
  STORAGE_ERROR: 'The agent could not write to its storage (disk full, permissions).',
  NOT_SYNCED: 'Operations need a synced host version on this connection first.',
  // tasks
  TASK_EXISTS: 'A task with this id already exists in this instance.',
  TASK_NOT_FOUND: 'No task with this id in this instance (never started, or expired).',
  UNKNOWN_EXTENSION: 'The host has no extension of that name.',
  UNKNOWN_OPERATION: 'The extension has no operation of that name.',
  OPERATION_FAILED: 'The operation threw an error.',
  INVALID_INPUT: "The operation's input is not valid.",
  OUTPUT_ESCAPES: 'A declared output resolves outside the work directory.',
  OUTPUT_UNDECLARED: "An output path that none of its task's declared outputs patterns match.",
  OUTPUT_IN_GIT:
    'An output path inside a .git directory (any case): outputs are never written there.',
  OUTPUT_THROUGH_SYMLINK:
    "An output's destination goes through a symlink already there; muster run does not follow it.",
  TASK_TIMEOUT: 'The task ran longer than its timeout and was killed.',
  TASK_CANCELLED: 'The task was cancelled.',
  HOST_CRASHED: 'The host process exited while the task was running.',
  HOST_START_FAILED: 'The host process could not be started.',
  TASK_USER_FAILED:
    "The agent runs tasks as a user of the instance's own and could not create or prepare it; the instance's tasks are refused.",
  RUNTIME_NOT_EXECUTABLE:
    "The agent runs tasks as users of their own and they cannot run the agent's Node.js (a directory on its path, or the program, is closed to other users); the agent does not start.",
  TOOLCHAIN_NOT_FOUND:
    "The compiler toolchain a compile names is not in the agent's synced files (not registered, or not synced there yet).",
  TOOLCHAIN_INCOMPATIBLE:
    "The agent's C library (glibc) is older than the one the compiler toolchain needs; its compiles run elsewhere.",
  // daemon
  AGENT_SHUTTING_DOWN: 'The agent is draining and accepts no new work.',
  LEASE_NOT_HELD:
    "This coordinator does not hold the agent's lease for its cluster; another one does.",
  DUPLICATE_LINK:
    'An agent that dials out already has a link to this coordinator (dialed at another of its URLs): the new one is closed.',
  CONNECTION_CLOSED: 'The connection closed before the request completed.',
  REQUEST_TIMEOUT: 'The peer did not answer in time.',
  INTERNAL: 'An unexpected error; see the log.',
  // configuration
  INVALID_CONFIG: 'A command-line option or configuration value is invalid.',
  INPUT_ESCAPES:
    "An input of the plan resolves, through a symlink, outside the plan's directory; nothing is uploaded.",
  // coordinator: API, store, plans
  UNAUTHORIZED: 'No valid credentials: log in (muster login) or pass a token.',
  FORBIDDEN: 'Your role does not allow this (admin only).',
  NOT_FOUND: 'No such thing (build, task, agent, user, setting or route).',
  CONFLICT: 'The thing already exists or was changed concurrently.',
  LAST_ADMIN: 'The change would leave the coordinator without an admin.',
  WRONG_PASSWORD: 'The current password given is wrong.',
  VALIDATION_FAILED: 'The request body or parameters are not valid.',
  PLAN_INVALID: 'The build plan has problems; every one is listed.',
  RATE_LIMITED: 'Too many attempts; wait and try again.',
  PAYLOAD_TOO_LARGE: 'The upload is larger than the limit.',
  UPLOAD_QUOTA_EXCEEDED:
    'Uploaded blobs that no build or extension uses yet would exceed the quota (per user or in all).',
  STORE_SCHEMA_TOO_NEW:
    'The database was written by a newer Muster; upgrade Muster or restore a backup.',
  READ_ONLY: 'This coordinator is a backup: changes are made on the primary.',
  UNREACHABLE: 'The coordinator cannot be reached.',
  STANDBY: 'This coordinator is a backup standing by: use the primary while it is healthy.',
  NOT_SELECTED:
    'This backup is registered but not selected: it gets no state and cannot take over.',
  SNAPSHOT_REQUIRED: 'The replication stream cannot resume from that point: fetch a snapshot.',
  BACKUP_UNVERIFIED:
    'The primary cannot reach the backup at its advertised URL with a verified certificate, so it cannot be selected.',
  // coordinator: its own TLS certificate (Admin › Certificates)
  TLS_NOT_ENABLED:
    'This coordinator serves plain HTTP (--no-tls, or a loopback address), so it has no certificate.',
  CERT_INVALID: 'The certificate is not PEM, cannot be read, or its chain is out of order.',
  CERT_KEY_INVALID: 'The private key is not a PEM private key or cannot be read.',
  CERT_KEY_ENCRYPTED: 'The private key is encrypted with a passphrase; upload it decrypted.',
  CERT_KEY_MISMATCH: 'The private key does not belong to the certificate.',
  CERT_EXPIRED: 'The certificate has expired.',
  CERT_NOT_YET_VALID: 'The certificate is not valid yet.',
  CERT_HOST_MISMATCH:
    'The certificate does not cover the host name clients use to reach the coordinator.',
  CERT_WRITE_FAILED: 'The certificate files could not be written; nothing was changed.',
  COMPILE_SESSION_CLOSED:
    'The compile session has ended (closed, cancelled, or silent too long): open a new one.',
  BUILD_NOT_ENDED:
    'The build is queued, running or an open compile session: cancel it first, then delete it.',
  TOO_MANY_COMPILE_SESSIONS:
    'You have as many compile sessions open as allowed; close one (or wait for an idle one to end).',
  CACHE_CLIENT_RESULTS_REFUSED:
    'This coordinator stores only cache results it obtained from agents (Cache.AcceptClientResults is false).',
  LOCAL_CACHE_UNREADABLE:
    'The compile cache on this machine (its SQLite database) cannot be read now: locked past the wait, or the file or its folder not readable.',
  TOO_MANY_TOOLCHAINS:
    'As many toolchains are registered as allowed (yours, or in all); an admin removes unused ones, and long-unused ones go.',
  // coordinator: secrets
  SECRET_NOT_FOUND:
    'No secret of that name (a plan names it, or a change asks for it): an admin sets it with muster secrets set NAME.',
  SECRET_UNREADABLE:
    "A secret cannot be decrypted with this coordinator's key (the data dir's secrets.key is missing or another one); set it again.",
} as const;

export type ErrorCode = keyof typeof errorCodes;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(errorCodes, value);
}

/** The one error class of Muster: a stable code, a message for people, optional structured details. */
export class MusterError extends Error {
  override readonly name = 'MusterError';
  constructor(
    readonly code: ErrorCode,
    message: string = errorCodes[code],
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  toWire(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** Wraps anything thrown into a MusterError, keeping the original as `cause`. */
export function toMusterError(err: unknown, fallback: ErrorCode = 'INTERNAL'): MusterError {
  if (err instanceof MusterError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MusterError(fallback, message, undefined, { cause: err });
}
