/** `muster status [--json]`: the coordinator this CLI talks to and how it is doing. */
import type { Command } from 'commander';
import { connect } from './api-client.js';
import { printJson } from './format.js';

const ROLE_WORDS: Record<string, string> = {
  primary: 'primary',
  'backup-standby': 'backup, standing by (the primary is healthy)',
  'backup-active':
    'backup, active: the primary is unavailable, this one runs builds (view-only settings)',
};

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('the coordinator: role, version, agents and builds')
    .option('--json', 'print JSON: { role, version, instanceId, agents, builds }')
    .action(async (opts: { json?: boolean }) => {
      const client = await connect();
      const status = await client.status();
      if (opts.json) {
        printJson(status);
        return;
      }
      process.stdout.write(
        [
          `Coordinator  ${client.url}`,
          `Role         ${ROLE_WORDS[status.role] ?? status.role}`,
          `Version      ${status.version}`,
          `Instance id  ${status.instanceId}`,
          `Agents       ${status.agents.connected} connected of ${status.agents.total}`,
          `Builds       ${status.builds.running} running, ${status.builds.queued} queued`,
        ]
          .map((l) => `${l}\n`)
          .join(''),
      );
      if (status.agents.total === 0) {
        process.stdout.write(
          '\nNo agents yet: muster agents add NAME HOST:PORT --access-key KEY\n',
        );
      }
    });
}
