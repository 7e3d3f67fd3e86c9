/**
 * `muster backup list|select|none|remove`: the backup coordinators registered with this primary
 * and which one receives its state and may take over. A backup registers itself when started
 * with `muster coordinator --backup-of PRIMARY_URL`.
 */
import type { Command } from 'commander';
import type { BackupView, DeselectionView } from '../api/views/backups.js';
import { connect } from './api-client.js';
import { formatAgo, formatLag, formatTable, formatTimestamp } from '../api/format.js';
import { printJson } from './print-json.js';

const REGISTER_HINT =
  'start muster coordinator --backup-of PRIMARY_URL on the backup machine: it registers itself';

export function registerBackupCommand(program: Command): void {
  const backup = program
    .command('backup')
    .description('list the backup coordinators and select the one that may take over')
    .addHelpText(
      'after',
      [
        '',
        'A backup registers itself: run muster coordinator --backup-of PRIMARY_URL on its machine.',
        'The CLI remembers the selected backup of the coordinator it uses (backups.json next to the',
        'credentials) and switches to it by itself when that coordinator cannot be reached.',
      ].join('\n'),
    );

  backup
    .command('list')
    .description('the registered backups: health, last contact, how far behind')
    .option(
      '--json',
      'print JSON: [ { name, url, selected, health, healthReason, lastContact, lastReached, replicationError, lagSeconds, … } ]',
    )
    .action(async (opts: { json?: boolean }) => {
      const client = await connect();
      const list = await client.listBackups();
      if (opts.json) {
        printJson(list);
        return;
      }
      // Why none is selected, when the primary deselected one by itself.
      const deselected =
        list.length === 0 || list.some((b) => b.selected)
          ? null
          : ((await client.status()).lastDeselected ?? null);
      process.stdout.write(formatBackups(list, Date.now(), deselected));
    });

  backup
    .command('select')
    .description("select a backup: it receives this coordinator's state and may take over (admin)")
    .argument('<name>', 'the backup, as muster backup list shows it')
    .option('--json', 'print the backups as JSON afterwards')
    .action(async (name: string, opts: { json?: boolean }) => {
      const client = await connect();
      const list = await client.selectBackup(name);
      if (opts.json) {
        printJson(list);
        return;
      }
      const selected = list.find((b) => b.selected);
      process.stdout.write(
        `Selected backup ${selected?.name ?? name}: it now receives this coordinator's state and may take over.\n`,
      );
      if (selected && selected.health !== 'healthy') {
        process.stdout.write(
          `It is ${selected.health} at the moment: ${selected.healthReason ?? `last contact ${formatAgo(selected.lastContact)}`}${selected.health === 'unreachable' ? `; check that it runs at ${selected.url}` : ''}.\n`,
        );
      }
    });

  backup
    .command('none')
    .description('select no backup: none receives the state or takes over (admin)')
    .option('--json', 'print the backups as JSON afterwards')
    .action(async (opts: { json?: boolean }) => {
      const client = await connect();
      const list = await client.selectBackup(null);
      if (opts.json) {
        printJson(list);
        return;
      }
      process.stdout.write(
        "No backup selected: no other coordinator receives this one's state or takes over if it fails.\n",
      );
    });

  backup
    .command('remove')
    .description("remove a backup's registration (admin)")
    .argument('<name>', 'the backup')
    .action(async (name: string) => {
      const client = await connect();
      await client.removeBackup(name);
      process.stdout.write(`Removed backup ${name}\n`);
    });
}

export function formatBackups(
  list: BackupView[],
  now: number = Date.now(),
  deselected: DeselectionView | null = null,
): string {
  if (list.length === 0) return `No backups registered: ${REGISTER_HINT}.\n`;
  const rows = list.map((b) => [
    b.name,
    b.url,
    b.selected ? 'yes' : '-',
    b.health,
    formatAgo(b.lastContact, now),
    formatLag(b.lagSeconds, '-'),
    b.fingerprint ?? '-',
  ]);
  let text = formatTable(
    ['NAME', 'URL', 'SELECTED', 'HEALTH', 'LAST CONTACT', 'LAG', 'FINGERPRINT'],
    rows,
  );
  const unhealthy = list.filter((b) => b.healthReason !== null);
  if (unhealthy.length > 0) text += '\n';
  for (const b of unhealthy) text += `${b.name}: ${b.health}: ${b.healthReason}\n`;
  if (!list.some((b) => b.selected)) {
    text += deselected
      ? `\nNone is selected: ${deselected.name} was deselected automatically at ${formatTimestamp(deselected.at)} (${deselected.reason}). muster backup select NAME chooses the one that may take over.\n`
      : '\nNone is selected: muster backup select NAME chooses the one that may take over.\n';
  }
  return text;
}
