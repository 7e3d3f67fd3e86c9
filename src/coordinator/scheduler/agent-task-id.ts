/**
 * The id an attempt runs under on its agent: `b<build>:<task>:<attempt>:<tag>.<nonce>`, where
 * `tag` is 8 hex digits of the SHA-256 of the build's uid and `nonce` 8 random hex digits made
 * at each dispatch.
 *
 * Why: build id, task and attempt number do not name one dispatch. A primary and its backup
 * number attempts each from its own store, and a store can fall behind what happened. After a
 * double failure (the active backup dies, the primary returns without the backup's history) the
 * primary's next attempt N of a task may be one the backup already started as N; and the ids of
 * the backup's builds (after its gap of 1000) are ids the primary reaches later, for other
 * builds, while the agent may still keep those tasks for its task grace. Without the nonce the
 * agent refused such a start with TASK_EXISTS and the attempt failed; with it every dispatch has
 * an id of its own. The tag tells two builds with one id apart, so an attempt is adopted only
 * into the build it ran for (the uid is the same on the primary and its backup).
 *
 * The readable part stays: adoption (ha/adopt.ts at a takeover, the scheduler when an agent
 * connects) reads which build, task and attempt an unknown id belongs to. Ids without the
 * suffix (made by earlier versions, maybe still on an agent across an upgrade) are read too.
 */
import { createHash, randomBytes } from 'node:crypto';

export interface AgentTaskId {
  buildId: number;
  task: string;
  attempt: number;
  /** The build's tag; absent in ids made by earlier versions. */
  buildTag?: string;
}

const PATTERN =
  /^b(\d{1,15}):([A-Za-z0-9][A-Za-z0-9._-]{0,63}):(\d{1,9})(?::([0-9a-f]{8})\.[0-9a-f]{8})?$/;

/** 8 hex digits that tell a build from another with the same id (primary's vs backup's). */
export function buildTag(uid: string): string {
  return createHash('sha256').update(uid).digest('hex').slice(0, 8);
}

/** A fresh id for one dispatch of `attempt` of `task` in `build`. */
export function newAgentTaskId(
  build: { id: number; uid: string },
  task: string,
  attempt: number,
  nonce = randomBytes(4).toString('hex'),
): string {
  return `b${build.id}:${task}:${attempt}:${buildTag(build.uid)}.${nonce}`;
}

/** Which build, task and attempt an agent task id names, or undefined for one not made here. */
export function parseAgentTaskId(taskId: string): AgentTaskId | undefined {
  const match = PATTERN.exec(taskId);
  if (!match) return undefined;
  const buildId = Number(match[1]);
  const attempt = Number(match[3]);
  if (!Number.isSafeInteger(buildId) || buildId < 1 || attempt < 1) return undefined;
  return {
    buildId,
    task: match[2] ?? '',
    attempt,
    ...(match[4] === undefined ? {} : { buildTag: match[4] }),
  };
}

/** Whether a parsed id may belong to this build (an id without a tag: by its id alone). */
export function isOfBuild(id: AgentTaskId, build: { id: number; uid: string }): boolean {
  return (
    id.buildId === build.id && (id.buildTag === undefined || id.buildTag === buildTag(build.uid))
  );
}
