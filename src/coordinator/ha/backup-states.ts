/**
 * A backup's states and the only ways between them. BackupSide changes state through one
 * function that looks the move up here, refuses any other, and logs it once.
 *
 *   standby ──takeover: the primary unreachable for the failover timeout──▶ taking-over
 *   taking-over ──activate: every connected agent's lease is ours (and at least one)──▶ active
 *   taking-over ──abandon: the primary answers again──▶ standby
 *   active, taking-over ──handback: the primary asks for its history (handback/begin)──▶ handing-back
 *   standby ──handback: the same, while a takeover's history is still kept here──▶ handing-back
 *   handing-back ──handback-done: the primary has it all (handback/done)──▶ standby (a new snapshot)
 *   handing-back ──primary-lost: the primary unreachable for the failover timeout──▶ standby
 *
 * Stopping the coordinator is no move: the loops end where they are, and a backup always starts
 * in standby (a takeover's record, kept in the store, says whether it has history to hand back).
 * A taking-over backup whose agents' leases are still live elsewhere stays taking-over.
 */
export type BackupState = 'standby' | 'taking-over' | 'active' | 'handing-back';

export type BackupEvent =
  'takeover' | 'activate' | 'abandon' | 'handback' | 'handback-done' | 'primary-lost';

/** Every allowed move: from these states, on this event, to that state. */
export const BACKUP_TRANSITIONS: readonly {
  event: BackupEvent;
  from: readonly BackupState[];
  to: BackupState;
}[] = [
  { event: 'takeover', from: ['standby'], to: 'taking-over' },
  { event: 'activate', from: ['taking-over'], to: 'active' },
  { event: 'abandon', from: ['taking-over'], to: 'standby' },
  { event: 'handback', from: ['standby', 'taking-over', 'active'], to: 'handing-back' },
  { event: 'handback-done', from: ['handing-back'], to: 'standby' },
  { event: 'primary-lost', from: ['handing-back'], to: 'standby' },
];

/** Where `event` takes a backup in state `from`; undefined when the move is not allowed. */
export function nextBackupState(from: BackupState, event: BackupEvent): BackupState | undefined {
  return BACKUP_TRANSITIONS.find((t) => t.event === event && t.from.includes(from))?.to;
}
