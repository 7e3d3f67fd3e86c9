/**
 * The banner on every page of a backup coordinator, the login page too: standing by, or active
 * since when. It needs only what the public GET /api/v1/banner says (a StatusView has it too).
 */
import type { BannerView } from './api.js';

export function Banner({ status }: { status: BannerView | undefined }) {
  if (!status || status.role === 'primary') return null;
  const primary = status.primary;
  if (status.role === 'backup-active') {
    const since = primary?.activeSince ? new Date(primary.activeSince).toLocaleString() : 'now';
    return (
      <div class="banner active" role="status">
        Backup coordinator — active: the primary is unreachable since {since}. Builds run here;
        settings are view-only until the primary returns.
      </div>
    );
  }
  return (
    <div class="banner standby" role="status">
      Backup coordinator — standing by
      {primary ? ` for the primary at ${primary.url}` : ''}. View only: changes are made on the
      primary.
    </div>
  );
}
