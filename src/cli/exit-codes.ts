/**
 * The CLI's exit codes (DESIGN, "Interfaces that users and tests rely on") and how an error is
 * printed: `muster: <message> [CODE]` on stderr, then every problem of a PLAN_INVALID.
 */
import { CommanderError } from 'commander';
import { MusterError, type ErrorCode } from '../protocol/errors.js';

export const EXIT_OK = 0;
/** The build failed or was cancelled, or an unexpected error. */
export const EXIT_FAILED = 1;
/** Bad usage or input: flags, plan, paths, credentials, names that do not exist. */
export const EXIT_USAGE = 2;
/** The coordinator cannot be reached. */
export const EXIT_UNREACHABLE = 3;
/** Ctrl-C while following a build (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

const usageCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'VALIDATION_FAILED',
  'PLAN_INVALID',
  'INVALID_CONFIG',
  'NOT_FOUND',
  // A plan or a change naming a secret nobody set.
  'SECRET_NOT_FOUND',
  'CONFLICT',
  // An agent admin's request that names an instance in use.
  'INSTANCE_IN_USE',
  'UNAUTHORIZED',
  'FORBIDDEN',
  // A change asked of a backup (READ_ONLY), or a build of one standing by (STANDBY): use the primary.
  'READ_ONLY',
  'STANDBY',
  'BLOB_HASH_MISMATCH',
  'INVALID_PATH',
  // An input that leads outside the plan's directory; outputs it will not write there.
  'INPUT_ESCAPES',
  'OUTPUT_UNDECLARED',
  'OUTPUT_IN_GIT',
  'OUTPUT_THROUGH_SYMLINK',
  'LAST_ADMIN',
  'WRONG_PASSWORD',
  // A certificate and key that cannot be used, or a coordinator without TLS.
  'TLS_NOT_ENABLED',
  'CERT_INVALID',
  'CERT_KEY_INVALID',
  'CERT_KEY_ENCRYPTED',
  'CERT_KEY_MISMATCH',
  'CERT_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_HOST_MISMATCH',
  // A coordinator certificate that is not the pinned (or given) one, or not confirmed: retrying
  // does not help; the user checks the fingerprint and logs in again.
  'TLS_FINGERPRINT_MISMATCH',
  'TLS_UNTRUSTED',
]);

export function exitCodeForErrorCode(code: ErrorCode): number {
  if (code === 'UNREACHABLE') return EXIT_UNREACHABLE;
  return usageCodes.has(code) ? EXIT_USAGE : EXIT_FAILED;
}

/** The exit code for anything a command threw. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  if (err instanceof MusterError) return exitCodeForErrorCode(err.code);
  return EXIT_FAILED;
}

/** What to print on stderr for an error (empty for commander's, which prints its own). */
export function formatError(err: unknown): string {
  if (err instanceof CommanderError) return '';
  if (err instanceof MusterError) {
    // The code ends the first line; a multi-line message (a list of problems) follows it.
    const [first, ...rest] = err.message.split('\n');
    let text = `muster: ${first ?? ''} [${err.code}]\n`;
    for (const line of rest) text += `${line}\n`;
    const problems = err.details?.problems;
    if (Array.isArray(problems)) {
      // parsePlan's message already lists them; print the ones it left out.
      for (const problem of problems.map(String)) {
        if (!err.message.includes(problem)) text += `  - ${problem}\n`;
      }
    }
    return text;
  }
  return `muster: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`;
}

/** Prints the error and returns the exit code: `process.exit(reportError(err))` in main's catch. */
export function reportError(err: unknown): number {
  const text = formatError(err);
  if (text !== '') process.stderr.write(text);
  return exitCodeFor(err);
}
