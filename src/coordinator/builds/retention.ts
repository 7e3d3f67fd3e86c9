/**
 * Build retention (issue 14): the setting Builds.Retention (a duration such as 30d; unset, empty
 * or 0 keeps builds forever) and the pass the housekeeping loop runs on a primary, which deletes
 * ended builds whose end is older than it, with their tasks, attempts and logs
 * (store.deleteBuild). Their blobs that nothing else lists go at the next blob sweep.
 *
 * A pass works in batches of `batch` builds, one transaction each with its audit row
 * (`builds.retention`, actor system), and yields to the event loop between batches, so a huge
 * backlog (a retention set for the first time on years of builds) never blocks requests for
 * long. Queued and running builds and open compile sessions are never listed.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { parseDuration } from '../../common/duration.js';
import { MusterError } from '../../protocol/errors.js';
import type { Store } from '../store/store.js';

export const BUILDS_RETENTION_SETTING = 'Builds.Retention';

/** Builds deleted per transaction (and audit row). */
export const DEFAULT_RETENTION_BATCH = 100;

/** A duration as text ("30d", "12h"; "0" keeps builds forever); a number without a unit is refused. */
export const buildsRetentionSchema = z.string().superRefine((text, context) => {
  try {
    parseDuration(text, BUILDS_RETENTION_SETTING);
  } catch (err) {
    context.addIssue({
      code: 'custom',
      message: err instanceof MusterError ? err.message : String(err),
    });
  }
});

/** The retention in ms from the setting's stored value; undefined keeps builds forever. */
export function buildsRetentionMs(setting: unknown): number | undefined {
  if (typeof setting !== 'string' || setting.trim() === '') return undefined;
  try {
    const ms = parseDuration(setting, BUILDS_RETENTION_SETTING);
    return ms > 0 ? ms : undefined;
  } catch {
    return undefined;
  }
}

export interface RetentionPassResult {
  deleted: number;
  /** The end before which builds were deleted (ISO), when a retention is set. */
  endedBefore?: string;
}

export class BuildRetention {
  constructor(
    private readonly store: Pick<
      Store,
      'getSetting' | 'listBuildsEndedBefore' | 'deleteBuild' | 'transaction' | 'audit'
    >,
    private readonly log: Logger,
    private readonly options: { batch?: number; now?: () => number } = {},
  ) {}

  /**
   * Deletes every ended build older than Builds.Retention, a batch at a time, while `keepGoing`
   * says so (it is asked before each batch: a coordinator stopping ends the pass between two).
   */
  async pass(keepGoing: () => boolean = () => true): Promise<RetentionPassResult> {
    const setting = this.store.getSetting(BUILDS_RETENTION_SETTING);
    const retentionMs = buildsRetentionMs(setting);
    if (retentionMs === undefined) return { deleted: 0 };
    const now = this.options.now?.() ?? Date.now();
    const endedBefore = new Date(now - retentionMs).toISOString();
    const batch = this.options.batch ?? DEFAULT_RETENTION_BATCH;
    let deleted = 0;
    while (keepGoing()) {
      const ids = this.store.listBuildsEndedBefore(endedBefore, batch);
      if (ids.length === 0) break;
      this.store.transaction(() => {
        for (const id of ids) this.store.deleteBuild(id);
        this.store.audit.record({
          actor: 'system',
          actorKind: 'system',
          ip: null,
          action: 'builds.retention',
          target: 'builds',
          details: { deleted: ids.length, retention: setting, endedBefore },
        });
      });
      deleted += ids.length;
      this.log.info(
        { deleted: ids.length, first: ids[0], last: ids.at(-1), retention: setting, endedBefore },
        'deleted builds older than the retention',
      );
      if (ids.length < batch) break;
      // Requests go first between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { deleted, endedBefore };
  }
}
