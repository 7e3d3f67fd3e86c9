/**
 * `muster up`: a local Muster on this machine. Today it runs the local agents (one by default)
 * on 127.0.0.1 with data under ./.muster; the coordinator joins it in the coordinator release.
 */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { Agent } from '../agent/agent.js';
import { compileAgentOptions } from '../agent/options.js';
import { MusterError } from '../protocol/errors.js';

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run Muster locally: the local agents, data in ./.muster')
    .option('--data <dir>', 'data dir', '.muster')
    .option('--agents <n>', 'how many local agents', '1')
    .option('--agent-port <port>', 'port of the first local agent (the next ones count up)', '7420')
    .action(async (opts: { data: string; agents: string; agentPort: string }) => {
      const count = Number(opts.agents);
      const basePort = Number(opts.agentPort);
      if (!Number.isInteger(count) || count < 1 || count > 64) {
        throw new MusterError('INVALID_CONFIG', '--agents must be a whole number from 1 to 64');
      }
      if (!Number.isInteger(basePort) || basePort < 0 || basePort > 65535) {
        throw new MusterError('INVALID_CONFIG', '--agent-port must be a port number');
      }
      const log = pino({ level: 'info', base: { service: 'muster-up' } });
      const agents: Agent[] = [];
      const stop = (): void => {
        void Promise.all(agents.map((a) => a.stop())).then(() => process.exit(0));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      for (let i = 0; i < count; i++) {
        const options = compileAgentOptions({
          listen: `127.0.0.1:${basePort === 0 ? 0 : basePort + i}`,
          data: join(resolve(opts.data), `agent-${i + 1}`),
        });
        const agent = new Agent(options, log.child({ agent: i + 1 }));
        await agent.start();
        agents.push(agent);
        const { host, port } = agent.address;
        process.stderr.write(
          `agent-${i + 1}  ${host}:${port}\n  access key   ${agent.identity!.accessKey}\n  fingerprint  ${agent.identity!.tls?.fingerprint ?? '(no TLS)'}\n  data         ${options.dataDir}\n`,
        );
      }
      process.stderr.write(
        '\nMuster is up (agents only: the coordinator is not part of this release yet). Ctrl-C stops it.\n',
      );
    });
}
