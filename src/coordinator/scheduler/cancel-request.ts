import type { BuildRow } from '../store/types.js';

/**
 * A build whose cancel is under way keeps it in its `error` field, which is what users see in the
 * build view while the cancel lasts; stored, so a restart mid-cancel goes on cancelling. Only this
 * file knows how it is kept: the rest asks `isCancelRequested`.
 */
const CANCEL_REQUESTED = 'cancel requested';

/** The build-status fields that record a requested cancel (see Store.setBuildStatus). */
export const cancelRequestedFields = { error: CANCEL_REQUESTED } as const;

/** Whether the build's cancel was requested and is not finished yet. */
export function isCancelRequested(build: Pick<BuildRow, 'error'>): boolean {
  return build.error === CANCEL_REQUESTED;
}
