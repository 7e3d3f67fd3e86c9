/**
 * How `muster build` has the per-user compile service host its build (docs/compile.md "Where
 * the compile service runs"): a control connection on the service's socket, JSON frames as the
 * shim's (shim-protocol.ts), the first frame `build-open` instead of a hello.
 *
 *   front end → service  build-open   { v, version, launcher, command, cwd, env, placement,
 *                                       noCache, dir, socket? }
 *   service → front end  build-accepted { tag, env }    the build is open; `env` is the command's
 *                                                       environment (the front end's, with the
 *                                                       launcher in place: launch-env.ts, and
 *                                                       BUILD_ENV=tag, which routes its compiles)
 *                        build-refused  { reason }      (then closes) the front end hosts the
 *                                                       build in its own process instead
 *                        say            { text }        a line for the build's stderr, any time
 *   front end → service  build-close  { exitCode, summary? }   the command ended; summary
 *                                       { startedAt, code } asks for the summary's text
 *   service → front end  build-closed { counts, buildId, offline, early?, summary?, json? }
 *                                       (then closes; early: the service closed it first, as
 *                                       it stopped; summary and json: what `muster build` prints,
 *                                       when asked)
 *
 * A control connection that drops before `build-close` closes the build as failed. This file
 * holds what the front end needs without loading the service (no schema library): the
 * service's messages, checked by hand.
 */
import type { BuildCounts } from './build-summary.js';

/** Names the hosted build a compile belongs to, in the command's environment. */
export const BUILD_ENV = 'MUSTER_CC_BUILD';
/** The build's private directory: `<tmpdir>/muster-build-XXXXXX` (mkdtemp). */
export const BUILD_DIR_PREFIX = 'muster-build-';
/** `muster build` hosts its build in its own process when this is `in-process`. */
export const BUILD_SERVICE_ENV = 'MUSTER_BUILD_SERVICE';

export type ControlMessage =
  | {
      readonly type: 'build-accepted';
      readonly tag: string;
      /** The command's environment, `NAME=value`. */
      readonly env: readonly string[];
    }
  | { readonly type: 'build-refused'; readonly reason: string }
  | { readonly type: 'say'; readonly text: string }
  | {
      readonly type: 'build-closed';
      readonly counts: BuildCounts;
      /** The build's id on the coordinator at its close (a failback may have renumbered it). */
      readonly buildId: number | null;
      /** No coordinator was reached for this build. */
      readonly offline: boolean;
      /** The service closed the build before `build-close` (it is stopping). */
      readonly early?: boolean;
      /** The summary line and the `--json` document, when `build-close` asked for them. */
      readonly summary?: string;
      readonly json?: string;
    };

const MAX_TEXT = 64 * 1024;
/** An environment as execve(2) takes it: far under Linux's 2 MiB for arguments and environment. */
const MAX_ENV_ENTRIES = 100_000;
const COUNT_FIELDS = [
  'jobs',
  'compiles',
  'remote',
  'local',
  'cacheHits',
  'cacheMisses',
  'fallbacks',
  'errors',
  'reruns',
] as const;

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function checkedCounts(value: unknown): BuildCounts | null {
  if (typeof value !== 'object' || value === null) return null;
  const record = value as Record<string, unknown>;
  const reasons = record['fallbackReasons'];
  if (typeof reasons !== 'object' || reasons === null || Array.isArray(reasons)) return null;
  const fallbackReasons: Record<string, number> = {};
  for (const [name, n] of Object.entries(reasons as Record<string, unknown>)) {
    if (!isCount(n) || name.length > 64) return null;
    fallbackReasons[name] = n;
  }
  const counts: Partial<Record<(typeof COUNT_FIELDS)[number], number>> = {};
  for (const field of COUNT_FIELDS) {
    const n = record[field];
    if (!isCount(n)) return null;
    counts[field] = n;
  }
  return { ...(counts as Record<(typeof COUNT_FIELDS)[number], number>), fallbackReasons };
}

/** A message from the service, or null when it is not one (the front end then gives up on it). */
export function parseControlMessage(value: unknown): ControlMessage | null {
  if (typeof value !== 'object' || value === null) return null;
  const m = value as Record<string, unknown>;
  const text = (field: string): string | null => {
    const v = m[field];
    return typeof v === 'string' && v.length <= MAX_TEXT ? v : null;
  };
  switch (m['type']) {
    case 'build-accepted': {
      const tag = text('tag');
      const env = m['env'];
      if (tag === null || !/^[A-Za-z0-9_-]{8,64}$/.test(tag)) return null;
      if (!Array.isArray(env) || env.length > MAX_ENV_ENTRIES) return null;
      if (!env.every((entry): entry is string => typeof entry === 'string' && entry.includes('=')))
        return null;
      return { type: 'build-accepted', tag, env };
    }
    case 'build-refused': {
      const reason = text('reason');
      return reason === null ? null : { type: 'build-refused', reason };
    }
    case 'say': {
      const said = text('text');
      return said === null ? null : { type: 'say', text: said };
    }
    case 'build-closed': {
      const counts = checkedCounts(m['counts']);
      const buildId = m['buildId'];
      if (counts === null || typeof m['offline'] !== 'boolean') return null;
      if (buildId !== null && !(isCount(buildId) && buildId > 0)) return null;
      const early = m['early'];
      if (early !== undefined && typeof early !== 'boolean') return null;
      const summary = m['summary'] === undefined ? undefined : text('summary');
      const json = m['json'] === undefined ? undefined : text('json');
      if (summary === null || json === null) return null;
      return {
        type: 'build-closed',
        counts,
        buildId,
        offline: m['offline'],
        ...(early === true ? { early } : {}),
        ...(summary === undefined ? {} : { summary }),
        ...(json === undefined ? {} : { json }),
      };
    }
    default:
      return null;
  }
}

/** What `muster build` asks of whoever hosts its build (the per-user service, or itself). */
export interface BuildRequest {
  readonly command: readonly string[];
  readonly placement: 'auto' | 'local' | 'remote';
  readonly noCache: boolean;
  /** Writes to the build's stderr. */
  readonly say: (text: string) => void;
}

export interface BuildOutcome {
  readonly counts: BuildCounts;
  /** The build's id on the coordinator at its close; undefined without one. */
  readonly buildId: number | undefined;
  /** Why the summary has no build: no coordinator, the service lost. */
  readonly note: string | undefined;
}

export interface BuildHost {
  /** The command's environment: its compiles go to the host. */
  readonly env: NodeJS.ProcessEnv;
  /** The command ended (its exit code; null when a signal ended it): the build closes. */
  finish(exitCode: number | null): Promise<BuildOutcome>;
}
