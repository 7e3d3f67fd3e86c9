/** The dashboard: this coordinator, its agents and recent builds, as they change. */
import { AgentStatus } from './agent-status.js';
import { BuildsTable } from './builds-table.js';
import type { Live } from './live.js';
import { Notice } from './notice.js';

const ROLE: Record<string, string> = {
  primary: 'Primary',
  'backup-standby': 'Backup, standing by',
  'backup-active': 'Backup, active',
};

export function Dashboard({ live }: { live: Live }) {
  const { status, agents, builds, error } = live;
  return (
    <>
      <Notice notice={error} />
      <section aria-labelledby="coordinator-title">
        <h2 id="coordinator-title">Coordinator</h2>
        {status ? (
          <dl class="facts">
            <dt>Role</dt>
            <dd data-testid="role">{ROLE[status.role] ?? status.role}</dd>
            <dt>Version</dt>
            <dd>{status.version}</dd>
            <dt>Agents</dt>
            <dd>
              {status.agents.connected} connected of {status.agents.total}
            </dd>
            <dt>Builds</dt>
            <dd>
              {status.builds.running} running, {status.builds.queued} queued
            </dd>
            {status.primary ? (
              <>
                <dt>Primary</dt>
                <dd data-testid="primary">
                  {status.primary.url}: {status.primary.reachable ? 'reachable' : 'unreachable'}
                  {status.primary.lastContact
                    ? `, last contact ${new Date(status.primary.lastContact).toLocaleString()}`
                    : ''}
                  {status.primary.selected
                    ? status.primary.lagSeconds !== null && status.primary.state === 'standby'
                      ? `; this copy is ${status.primary.lagSeconds} s behind`
                      : ''
                    : '; this backup is not selected: it receives no state and cannot take over'}
                  {status.primary.replicationError ? (
                    <div class="error" data-testid="replication-error">
                      replication failing: {status.primary.replicationError}
                    </div>
                  ) : null}
                  {status.primary.seenByPrimary ? (
                    <div class="small" data-testid="seen-by-primary">
                      The primary sees this backup as {status.primary.seenByPrimary.health}
                      {status.primary.seenByPrimary.lagSeconds !== null
                        ? `, ${status.primary.seenByPrimary.lagSeconds} s behind`
                        : ''}
                      {status.primary.seenByPrimary.healthReason
                        ? `: ${status.primary.seenByPrimary.healthReason}`
                        : ''}
                    </div>
                  ) : null}
                </dd>
              </>
            ) : null}
            {status.backup !== undefined ? (
              <>
                <dt>Backup</dt>
                <dd data-testid="backup">
                  {status.backup
                    ? `${status.backup.name} (${status.backup.url}): ${status.backup.health}${
                        status.backup.healthReason ? ` — ${status.backup.healthReason}` : ''
                      }`
                    : status.lastDeselected
                      ? `none selected: ${status.lastDeselected.name} was deselected automatically at ${new Date(status.lastDeselected.at).toLocaleString()} (${status.lastDeselected.reason})`
                      : 'none selected'}
                </dd>
              </>
            ) : null}
          </dl>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </section>
      <section aria-labelledby="agents-title">
        <h2 id="agents-title">Agents</h2>
        {agents && agents.length === 0 ? (
          <p class="muted">
            No agents yet. Add one on the Agents page, or with{' '}
            <code>muster agents add NAME HOST:PORT --access-key KEY</code>.
          </p>
        ) : (
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Address</th>
                <th>Status</th>
                <th>Slots in use</th>
                <th>Labels</th>
                <th>Last error</th>
              </tr>
            </thead>
            <tbody>
              {(agents ?? []).map((a) => (
                <tr key={a.name} data-testid={`agent-${a.name}`}>
                  <td>{a.name}</td>
                  <td>{a.address}</td>
                  <td>
                    <AgentStatus agent={a} standby={status?.role === 'backup-standby'} />
                  </td>
                  <td>
                    {a.busySlots} / {a.slots}
                  </td>
                  <td>{a.labels.join(', ')}</td>
                  <td>{a.lastError ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section aria-labelledby="builds-title">
        <h2 id="builds-title">Recent builds</h2>
        {builds && builds.length === 0 ? (
          <p class="muted">
            No builds yet. Start one on the Builds page, or with <code>muster run plan.yaml</code>.
          </p>
        ) : (
          <BuildsTable builds={builds} />
        )}
      </section>
    </>
  );
}
