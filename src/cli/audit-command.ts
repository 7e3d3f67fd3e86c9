/**
 * `muster audit`: the coordinator's log of administrative changes (admin), newest first: who
 * changed what, when and from which address. Passwords, tokens and keys never appear in it.
 */
import type { Command } from 'commander';
import { formatDetails, formatTable, formatTimestamp } from '../api/format.js';
import { connect } from './api-client.js';
import { parsePositiveInt } from './args.js';
import { printJson } from './print-json.js';

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description('the log of administrative changes, newest first (admin)')
    .option('--limit <n>', 'at most this many (up to 1000)', '50')
    .option('--before <id>', 'only rows older than this one (for paging)')
    .option('--action <code>', 'only this action, e.g. user.create or setting.set')
    .option('--actor <name>', 'only changes made by this user (or "system")')
    .option('--json', 'print JSON: [ { id, at, actor, actorKind, ip, action, target, details } ]')
    .addHelpText(
      'after',
      [
        '',
        'Changes to users, passwords, agents, settings, extensions, toolchains, the certificate',
        'and the backup selection are recorded, with the user, the address the request came from',
        'and what changed. The newest 100,000 rows are kept; the log is replicated to the backup.',
      ].join('\n'),
    )
    .action(
      async (opts: {
        limit: string;
        before?: string;
        action?: string;
        actor?: string;
        json?: boolean;
      }) => {
        const limit = parsePositiveInt(opts.limit, '--limit');
        const before =
          opts.before === undefined ? undefined : parsePositiveInt(opts.before, '--before');
        const rows = await (
          await connect()
        ).listAudit({ limit, before, action: opts.action, actor: opts.actor });
        if (opts.json) {
          printJson(rows);
          return;
        }
        if (rows.length === 0) {
          process.stdout.write('No changes recorded.\n');
          return;
        }
        process.stdout.write(
          formatTable(
            ['ID', 'WHEN', 'WHO', 'FROM', 'ACTION', 'TARGET', 'DETAILS'],
            rows.map((r) => [
              String(r.id),
              formatTimestamp(r.at),
              r.actor,
              r.ip ?? '-',
              r.action,
              r.target,
              formatDetails(r.details),
            ]),
          ),
        );
      },
    );
}
