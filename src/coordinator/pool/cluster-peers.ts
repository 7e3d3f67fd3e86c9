/**
 * The other coordinators of this cluster, as agents that dial out learn them
 * (src/protocol/outbound.ts, PEERS_HEADER): a primary names its selected backup (the URL the
 * backup registered with), a backup its primary (--backup-of). An agent dials each, so it follows
 * a failover and the failback without anyone touching it; the lease decides who drives it.
 */
import type { Store } from '../store/store.js';

export function clusterPeers(
  store: Pick<Store, 'ha' | 'backups'>,
  backupOf: string | undefined,
): string[] {
  if (backupOf !== undefined) return [backupOf];
  const selected = store.ha.selectedBackup();
  const url = selected === undefined ? undefined : store.backups.get(selected)?.url;
  return url === undefined ? [] : [url];
}
