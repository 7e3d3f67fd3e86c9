/** `muster agents add|list|remove`: the coordinator's pool of build machines. */
import type { Command } from 'commander';
import type { AgentView } from '../api/views/agents.js';
import { connect, type AddAgentRequest, type CreateJoinTokenRequest } from './api-client.js';
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
    .command('approve')
    .description('let an agent that joined with a token work (it waits as pending until then)')
    .argument('<name>', 'the agent (muster agents list shows pending ones)')
    .option('--json', 'print the agent as JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const client = await connect();
      const agent = await client.approveAgent(name);
      if (opts.json) {
        printJson(agent);
        return;
      }
      process.stdout.write(`Approved agent ${agent.name}: ${agent.status}\n`);
    });

  registerTokensCommand(agents);

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

function registerTokensCommand(agents: Command): void {
  const tokens = agents
    .command('tokens')
    .description('join tokens: what admits agents that dial out (muster agent --connect)');

  tokens
    .command('create')
    .description('create a join token (its secret is shown this once)')
    .option('--labels <a,b>', 'labels the agents that join with it get, comma-separated')
    .option('--auto-approve', 'agents that join with it work at once, without approval')
    .option('--expires <duration>', 'how long it admits agents (24h, 7d…) or never', '24h')
    .option('--json', 'print JSON: { token, id, labels, autoApprove, expiresAt, command, … }')
    .action(
      async (opts: { labels?: string; autoApprove?: boolean; expires: string; json?: boolean }) => {
        const body: CreateJoinTokenRequest = { expires: opts.expires };
        if (opts.labels !== undefined) body.labels = parseList(opts.labels);
        if (opts.autoApprove) body.autoApprove = true;
        const client = await connect();
        const token = await client.createJoinToken(body);
        if (opts.json) {
          printJson(token);
          return;
        }
        process.stdout.write(
          `Join token ${token.id} (${token.autoApprove ? 'approves its agents' : 'agents wait for approval'}, ${token.expiresAt === null ? 'does not expire' : `expires ${token.expiresAt}`}):\n\n    ${token.token}\n\nOn each build machine:\n\n    ${token.command}\n\nIt is shown this once; keep it like a password.\n`,
        );
      },
    );

  tokens
    .command('list')
    .description('list the join tokens (never their secrets)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const client = await connect();
      const list = await client.listJoinTokens();
      if (opts.json) {
        printJson(list);
        return;
      }
      if (list.length === 0) {
        process.stdout.write('No join tokens: muster agents tokens create\n');
        return;
      }
      process.stdout.write(
        formatTable(
          ['ID', 'LABELS', 'APPROVE', 'EXPIRES', 'USES', 'CREATED BY'],
          list.map((t) => [
            t.id,
            t.labels.length > 0 ? t.labels.join(',') : '-',
            t.autoApprove ? 'auto' : 'admin',
            t.expired ? 'expired' : (t.expiresAt ?? 'never'),
            String(t.uses),
            t.createdBy,
          ]),
        ),
      );
    });

  tokens
    .command('revoke')
    .description('revoke a join token (agents that joined with it keep working)')
    .argument('<id>', 'the token id (muster agents tokens list)')
    .action(async (id: string) => {
      const client = await connect();
      await client.revokeJoinToken(id);
      process.stdout.write(`Revoked join token ${id}\n`);
    });
}

export function formatAgents(list: AgentView[]): string {
  if (list.length === 0) {
    return 'No agents yet: muster agents add NAME HOST:PORT --access-key KEY, or start agents with muster agent --connect (muster agents tokens create)\n';
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
