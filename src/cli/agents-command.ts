/** `muster agents add|list|remove`: the coordinator's pool of build machines. */
import type { Command } from 'commander';
import type { AgentView } from '../api/views/agents.js';
import { connect, type AddAgentRequest } from './api-client.js';
import { parseList, parsePositiveInt } from './args.js';
import { formatTable } from '../api/format.js';
import { printJson } from './print-json.js';

interface AddOptions {
  accessKey: string;
  fingerprint?: string;
  labels?: string;
  slots?: string;
  tls: boolean;
  json?: boolean;
}

export function registerAgentsCommand(program: Command): void {
  const agents = program.command('agents').description("manage the coordinator's agents");

  agents
    .command('add')
    .description('add a build machine running muster agent')
    .argument('<name>', 'a name for it (letters, digits, ".", "_", "-")')
    .argument('<host:port>', "the agent's address (port 7420 by default)")
    .requiredOption('--access-key <key>', 'the access key the agent printed at its first start')
    .option('--fingerprint <sha256>', "the agent's TLS certificate fingerprint, to pin it")
    .option('--labels <a,b>', 'labels tasks can require, comma-separated')
    .option('--slots <n>', "tasks at once (default: the agent's cores)")
    .option('--no-tls', 'plain TCP (the agent runs with --no-tls)')
    .option('--json', 'print the agent as JSON')
    .action(async (name: string, address: string, opts: AddOptions) => {
      const body: AddAgentRequest = { name, address, accessKey: opts.accessKey, tls: opts.tls };
      if (opts.fingerprint !== undefined) body.fingerprint = opts.fingerprint;
      if (opts.labels !== undefined) body.labels = parseList(opts.labels);
      if (opts.slots !== undefined) body.slots = parsePositiveInt(opts.slots, '--slots');
      const client = await connect();
      const agent = await client.addAgent(body);
      if (opts.json) {
        printJson(agent);
        return;
      }
      process.stdout.write(`Added agent ${agent.name} (${agent.address}): ${agent.status}\n`);
      if (!agent.tls) {
        process.stdout.write('TLS is off for this agent: use it only on a trusted network.\n');
      }
    });

  agents
    .command('list')
    .description('list the agents and their state')
    .option('--json', 'print JSON: [ { name, address, status, slots, labels, … } ]')
    .action(async (opts: { json?: boolean }) => {
      const client = await connect();
      const list = await client.listAgents();
      if (opts.json) {
        printJson(list);
        return;
      }
      process.stdout.write(formatAgents(list));
    });

  agents
    .command('remove')
    .description('remove an agent from the pool (tasks running there are retried elsewhere)')
    .argument('<name>', 'the agent')
    .action(async (name: string) => {
      const client = await connect();
      await client.removeAgent(name);
      process.stdout.write(`Removed agent ${name}\n`);
    });
}

export function formatAgents(list: AgentView[]): string {
  if (list.length === 0) {
    return 'No agents yet: muster agents add NAME HOST:PORT --access-key KEY\n';
  }
  const rows = list.map((a) => [
    a.name,
    a.address,
    a.status,
    // Not live (a backup standing by): the count the agent reported when it last connected.
    `${a.busySlots}/${a.slots}${a.slotsFrom === 'last-known' ? ' (last known)' : ''}`,
    a.labels.length > 0 ? a.labels.join(',') : '-',
    a.agentVersion ?? '-',
    a.lastError ?? '',
  ]);
  return formatTable(['NAME', 'ADDRESS', 'STATUS', 'SLOTS', 'LABELS', 'VERSION', 'PROBLEM'], rows);
}
