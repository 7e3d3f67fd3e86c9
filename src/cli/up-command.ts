/**
 * `muster up` (and `npm start`): a whole Muster on this machine: the coordinator on
 * 127.0.0.1:8000 and N local agents, registered with it; data under ./.muster.
 */
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import type { Agent } from '../agent/agent.js';
import { compileAgentOptions } from '../agent/options.js';
import { compileCoordinatorOptions } from '../coordinator/options.js';
import { MusterError } from '../protocol/errors.js';
import { ApiClient } from './api-client.js';
import { onShutdownSignals } from './signals.js';

interface UpOptions {
  data: string;
  port: string;
  agents: string;
  agentPort: string;
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run Muster locally: a coordinator and local agents, data in ./.muster')
    .option('--data <dir>', 'data dir', '.muster')
    .option('--port <port>', 'coordinator port on 127.0.0.1', '8000')
    .option('--agents <n>', 'how many local agents', '1')
    .option('--agent-port <port>', 'port of the first agent (0: any free port)', '0')
    .action(async (opts: UpOptions) => {
      const count = Number(opts.agents);
      if (!Number.isInteger(count) || count < 1 || count > 64) {
        throw new MusterError('INVALID_CONFIG', '--agents must be a whole number from 1 to 64');
      }
      const agentPort = Number(opts.agentPort);
      if (!Number.isInteger(agentPort) || agentPort < 0 || agentPort > 65535) {
        throw new MusterError('INVALID_CONFIG', '--agent-port must be a port number');
      }
      // Loaded here, not at the top: every other command starts faster without the servers.
      const [{ Agent }, { Coordinator }] = await Promise.all([
        import('../agent/agent.js'),
        import('../coordinator/coordinator.js'),
      ]);
      const dataDir = resolve(opts.data);
      // As root, the agents run tasks as users of their own (docs/agent.md, "Task users"), who
      // must pass through this dir to their instances' dirs: searchable, not listable.
      await mkdir(dataDir, { recursive: true });
      if (process.getuid?.() === 0) await chmod(dataDir, 0o711);
      const log = pino({ level: 'info', base: { service: 'muster-up' } });
      const agents: Agent[] = [];
      const coordinator = new Coordinator(
        compileCoordinatorOptions({
          listen: `127.0.0.1:${opts.port}`,
          data: join(dataDir, 'coordinator'),
          passwordCost: process.env.MUSTER_PASSWORD_COST || undefined,
        }),
        log.child({ component: 'coordinator' }),
      );
      onShutdownSignals(log, async () => {
        await coordinator.stop();
        await Promise.all(agents.map((a) => a.stop()));
      });
      for (let i = 0; i < count; i++) {
        const agent = new Agent(
          compileAgentOptions({
            listen: `127.0.0.1:${agentPort === 0 ? 0 : agentPort + i}`,
            data: join(dataDir, `agent-${i + 1}`),
            logLevel: 'warn',
          }),
          log.child({ component: `agent-${i + 1}` }),
        );
        await agent.start();
        agents.push(agent);
      }
      const { url, generatedAdminPassword } = await coordinator.start();
      const password =
        process.env.MUSTER_ADMIN_PASSWORD ||
        generatedAdminPassword ||
        (
          await readFile(join(dataDir, 'coordinator', 'admin-password'), 'utf8').catch(() => '')
        ).trim();
      await registerAgents(url, password, agents);
      process.stderr.write(
        [
          '',
          `Muster is up: ${url}`,
          `  user      admin`,
          `  password  ${password || '(the one you set with MUSTER_ADMIN_PASSWORD)'}`,
          `  agents    ${agents.map((a, i) => `local-${i + 1} (${a.address.host}:${a.address.port})`).join(', ')}`,
          '',
          `In another terminal:  muster login ${url} --user admin`,
          `                      muster run examples/c-hello/muster.yml`,
          'Ctrl-C stops it.',
          '',
        ].join('\n'),
      );
    });
}

/** Adds each local agent to the coordinator through its API (again after a restart: ports may change). */
async function registerAgents(url: string, password: string, agents: Agent[]): Promise<void> {
  const anonymous = new ApiClient({ url });
  let token: string;
  try {
    ({ token } = await anonymous.login('admin', password));
  } catch (error) {
    if (!(error instanceof MusterError && error.code === 'UNAUTHORIZED')) throw error;
    throw new MusterError(
      'UNAUTHORIZED',
      'cannot log in as admin to register the local agents (was the password changed?)',
    );
  } finally {
    anonymous.close();
  }
  const api = new ApiClient({ url, token });
  try {
    for (const [i, agent] of agents.entries()) {
      const name = `local-${i + 1}`;
      await api.removeAgent(name).catch((error: unknown) => {
        if (!(error instanceof MusterError && error.code === 'NOT_FOUND')) throw error;
      });
      await api.addAgent({
        name,
        address: `${agent.address.host}:${agent.address.port}`,
        accessKey: agent.identity!.accessKey,
        fingerprint: agent.identity!.tls?.fingerprint,
        labels: ['local'],
      });
    }
  } finally {
    api.close();
  }
}
