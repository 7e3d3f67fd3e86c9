/**
 * `muster toolchains list | remove ID` (admins): the compiler toolchains `muster build` registered
 * with the coordinator, which of them its agents get (the most recently used), and removing one.
 */
import type { Command } from 'commander';
import type { ToolchainView } from '../api/views/compile.js';
import { formatBytes, formatTable, formatTimestamp } from '../api/format.js';
import { MusterError } from '../protocol/errors.js';
import { connect } from './api-client.js';
import { printJson } from './print-json.js';

export function registerToolchainsCommand(program: Command): void {
  const toolchains = program
    .command('toolchains')
    .description('manage the compiler toolchains muster build registered (admins)');

  toolchains
    .command('list')
    .description('list the toolchains, most recently used first, and whether agents get each')
    .option('--json', 'print JSON: [ { id, info, createdBy, lastUsedAt, bytes, shipped, … } ]')
    .action(async (opts: { json?: boolean }) => {
      const client = await connect();
      const list = await client.listToolchains();
      if (opts.json) {
        printJson(list);
        return;
      }
      process.stdout.write(formatToolchains(list));
    });

  toolchains
    .command('remove')
    .description(
      'remove a toolchain: agents get a bundle without it (its next compiles register it again)',
    )
    .argument('<id>', 'the toolchain id (sha256 hex, as muster toolchains list shows it)')
    .action(async (id: string) => {
      if (!/^[0-9a-f]{64}$/.test(id))
        throw new MusterError('INVALID_CONFIG', `"${id}" is not a toolchain id (64 hex digits)`);
      const client = await connect();
      await client.removeToolchain(id);
      process.stdout.write(`Removed toolchain ${id}\n`);
    });
}

export function formatToolchains(list: ToolchainView[]): string {
  if (list.length === 0) return 'No toolchains yet: muster build registers its compilers\n';
  const rows = list.map((t) => [
    t.id,
    [t.info.driver, t.info.version].filter((v) => typeof v === 'string').join(' ') || '-',
    t.bytes === undefined ? '-' : formatBytes(t.bytes),
    t.createdBy ?? '-',
    t.lastUsedAt === undefined ? '-' : formatTimestamp(t.lastUsedAt),
    t.shipped === undefined ? '-' : t.shipped ? 'yes' : 'no',
  ]);
  return formatTable(['ID', 'COMPILER', 'SIZE', 'BY', 'LAST USED', 'SHIPPED'], rows);
}
