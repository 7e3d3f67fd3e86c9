/**
 * How a session answers bad input: error frames that name what was wrong without echoing (or
 * recursing into) what a peer sent, and stay within what the protocol's schema accepts.
 */
import type { z } from 'zod';
import { MusterError } from '../protocol/errors.js';

/**
 * The id to answer an invalid request with: only one a client could have chosen. An error frame
 * with `re: -1`, `1.5` or `1e999` (Infinity, written as null) breaks the protocol's schema, and
 * a client drops it unread.
 */
export function requestIdOf(id: unknown): number | undefined {
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : undefined;
}

/** Names what a peer sent as a message type without echoing (or recursing into) all of it. */
export function describeType(t: unknown): string {
  if (typeof t === 'string') return JSON.stringify(t.length > 64 ? `${t.slice(0, 64)}…` : t);
  return t === null || t === undefined
    ? 'none'
    : `of type ${Array.isArray(t) ? 'array' : typeof t}`;
}

/** Error frames echo what peers sent; keep them within what the schema (and a reader) accepts. */
export function boundedWire(err: MusterError): ReturnType<MusterError['toWire']> {
  const wire = err.toWire();
  const message = wire.message.length > 2000 ? `${wire.message.slice(0, 2000)}…` : wire.message;
  let details = wire.details;
  try {
    if (details !== undefined && JSON.stringify(details).length > 8192) details = undefined;
  } catch {
    details = undefined;
  }
  return details === undefined
    ? { code: wire.code, message }
    : { code: wire.code, message, details };
}

export function invalid(type: string, error: z.ZodError): MusterError {
  const problems = error.issues
    .slice(0, 10)
    .map(
      (i) =>
        `${i.path.slice(0, 8).join('.').slice(0, 200) || '(message)'}: ${i.message.slice(0, 300)}`,
    );
  return new MusterError('INVALID_MESSAGE', `invalid "${type}" message: ${problems.join('; ')}`, {
    problems,
  });
}
