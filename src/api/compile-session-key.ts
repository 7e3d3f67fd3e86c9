/**
 * How a client names its compile session in …/compile-sessions/{id}/…: by the session's key
 * (the open build's uid, 32 lowercase hex digits, answered as `session` when it opens), or by
 * the build id (coordinators and clients from before the key). The key is the one to use: a
 * failback that finds the id of a build its backup opened taken on the primary gives the build
 * another id, and the uid is what stays the same on both sides. It is not a credential: only the
 * session's own user reports to it, whichever way it is named.
 */

/** A session's key: the build's uid (randomblob(16) as lowercase hex in the store). */
export const COMPILE_SESSION_KEY = /^[0-9a-f]{32}$/;

/**
 * What a client puts in the path for a session opened with this answer: its key, or its build
 * id when the coordinator named no key (an older one) or something that is not one.
 */
export function compileSessionPath(opened: { buildId: number; session?: unknown }): string {
  const key = opened.session;
  return typeof key === 'string' && COMPILE_SESSION_KEY.test(key) ? key : String(opened.buildId);
}
