/** `muster status [--json]`: the coordinator this CLI talks to and how it is doing. */
import type { Command } from 'commander';
import type { StatusView } from '../api/views/status.js';
import { connect } from './api-client.js';
import { formatAgo, formatDuration, formatLag, formatTimestamp } from '../api/format.js';
import { printJson } from './print-json.js';

const ROLE_WORDS: Record<string, string> = {
  primary: 'primary',
  'backup-standby': 'backup, standing by (the primary is healthy)',
  'backup-active':
    'backup, active: the primary is unavailable, this one runs builds (view-only settings)',
};

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('the coordinator: role, term, version, agents, builds and its backup or primary')
    .option(
      '--json',
      'print JSON: { role, version, instanceId, term, agents, builds, backup (on a primary) or primary (on a backup) }',
    )
    .action(async (opts: { json?: boolean }) => {
      // The text's Coordinator line says that the backup answered: the note on stderr would say
      // it a second time. It is kept for JSON, which has no such line, and for an error.
      let note = '';
      const client = await connect(
        process.env,
        opts.json ? {} : { notify: (text) => void (note = text) },
      );
      const status = await client.status().catch((err: unknown) => {
        process.stderr.write(note);
        throw err;
      });
      if (opts.json) {
        printJson(status);
        return;
      }
      const coordinator =
        client.usingBackup === undefined
          ? client.url
          : `${client.url} (the backup of ${client.configuredUrl}, which is unreachable)`;
      process.stdout.write(formatStatus(status, coordinator));
    });
}

export function formatStatus(
  status: StatusView,
  coordinator: string,
  now: number = Date.now(),
): string {
  const lines = [
    `Coordinator  ${coordinator}`,
    `Role         ${ROLE_WORDS[status.role] ?? status.role}`,
  ];
  if (typeof status.term === 'number') lines.push(`Term         ${status.term}`);
  lines.push(`Version      ${status.version}`);
  if (status.instanceId !== undefined) {
    lines.push(
      `Instance id  ${status.instanceId === '' ? 'none (cleared: agents key this coordinator by its source address)' : status.instanceId}`,
    );
  }
  lines.push(
    `Agents       ${status.agents.connected} connected of ${status.agents.total}`,
    `Builds       ${status.builds.running} running, ${status.builds.queued} queued`,
  );
  const backup = status.backup;
  if (backup === null) {
    lines.push('Backup       none selected (muster backup list, muster backup select NAME)');
    const deselected = status.lastDeselected;
    if (deselected)
      lines.push(
        `             ${deselected.name} was deselected automatically at ${formatTimestamp(deselected.at)}: ${deselected.reason}`,
      );
  } else if (backup !== undefined) {
    lines.push(
      `Backup       ${backup.name} at ${backup.url}: ${backup.health}, last contact ${formatAgo(backup.lastContact, now)}, lag ${formatLag(backup.lagSeconds, 'unknown')}`,
    );
    if (backup.healthReason) lines.push(`             ${backup.healthReason}`);
  }
  const primary = status.primary;
  if (primary !== undefined) {
    lines.push(
      `Primary      ${primary.url}: ${primary.reachable ? 'reachable' : 'unreachable'}, last contact ${formatAgo(primary.lastContact, now)}, lag ${formatLag(primary.lagSeconds, 'unknown (nothing received yet)')}`,
    );
    if (primary.replicationError) {
      lines.push(`             replication failing: ${primary.replicationError}`);
    }
    const seen = primary.seenByPrimary;
    if (seen) {
      lines.push(
        `             the primary sees this backup as ${seen.health}, lag ${formatLag(seen.lagSeconds, 'unknown')}${seen.healthReason ? `: ${seen.healthReason}` : ''}`,
      );
    }
    if (primary.state === 'taking-over') {
      lines.push(
        "             taking over: the primary is unreachable from here; waiting for the agents' leases (an agent still leased to the primary means it is alive, and this backup waits)",
      );
    } else if (primary.state === 'handing-back') {
      lines.push('             handing back: the primary is back and takes the cluster over');
    }
    if (!primary.selected) {
      lines.push(
        '             not selected: this backup gets no state and cannot take over (on the primary: muster backup select NAME)',
      );
    }
    if (primary.activeSince) {
      const since = Date.parse(primary.activeSince);
      const forHow = Number.isNaN(since) ? '' : ` (${formatDuration(Math.max(0, now - since))})`;
      lines.push(`Active       since ${formatTimestamp(primary.activeSince)}${forHow}`);
    }
  }
  let text = lines.map((l) => `${l}\n`).join('');
  if (status.agents.total === 0) {
    text += '\nNo agents yet: muster agents add NAME HOST:PORT --access-key KEY\n';
  }
  return text;
}
