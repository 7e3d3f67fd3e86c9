/** `muster agent` and `muster agent instances`. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { sendControlRequest, type ControlRequest } from '../agent/control.js';
import { formatInstances, instanceRows } from './agent-instances.js';
import { readLeaseFile } from '../agent/leases.js';
import { instanceKeyFingerprint } from '../protocol/handshake.js';
import { compileAgentOptions, type AgentOptions } from '../agent/options.js';
import { MUSTER_VERSION } from '../common/version.js';
import { MusterError } from '../protocol/errors.js';
import { daemonOptions, readConfigFile } from './daemon-config.js';
import { holdReloadSignal, onReloadSignal, onShutdownSignals, reloadMessage } from './signals.js';

export function registerAgentCommand(program: Command): void {
  const agent = program
    .command('agent')
    .description('run the agent daemon on a build machine')
    .enablePositionalOptions()
    .option(
      '--config <file>',
      'read options from the agent: section of this YAML file (flags and MUSTER_* variables win)',
    )
    .option(
      '--listen <host:port>',
      'address to listen on for coordinators (default 0.0.0.0:7420; with --connect: none)',
    )
    .option('--connect <url>', 'dial out to this coordinator (https://HOST:PORT): no open port')
    .option(
      '--join-token <token>',
      'the join token that admits this agent (muster agents tokens create)',
    )
    .option('--join-token-file <file>', 'read the join token from this file')
    .option(
      '--metrics-listen <host:port>',
      'serve Prometheus metrics (plain HTTP GET /metrics, no login) on this address; off by default',
    )
    .option(
      '--data <dir>',
      'data dir: identity, key, certificate, instance records',
      '.muster/agent',
    )
    .option(
      '--temp-dir <dir>',
      'where received files, versions and work dirs live (default <data>/temp)',
    )
    .option(
      '--access-key <key>',
      'access key coordinators must prove (default: generated, in <data>/access-key)',
    )
    .option('--access-key-file <file>', 'read the access key from this file')
    .option('--tls-cert <file>', 'TLS certificate (PEM) instead of the self-signed one')
    .option('--tls-key <file>', 'TLS private key (PEM)')
    .option('--no-tls', 'plain TCP (only on trusted networks)')
    .option('--task-grace <duration>', 'how long an ended task waits for its coordinator', '30m')
    .option(
      '--lease-ttl <duration>',
      'a cluster lease expires this long after its holder last renewed it',
      '15s',
    )
    .option('--host-idle <duration>', 'stop a host process after this long without tasks', '10m')
    .option('--drain-timeout <duration>', 'on shutdown, how long running tasks may finish', '30s')
    .option('--gc-interval <duration>', 'how often unused versions and blobs are collected', '1h')
    .option('--version-retention <duration>', 'keep versions synced within this period', '7d')
    .option('--blob-retention <duration>', 'keep unreferenced blobs this long', '1h')
    .option(
      '--instance-idle-ttl <duration>',
      'remove an instance with no connection and no task for this long (0: never)',
      '30d',
    )
    .option('--handshake-timeout <duration>', 'how long a peer may take to authenticate', '10s')
    .option(
      '--max-unauthenticated <n>',
      'connections not yet authenticated, in all (the oldest is dropped beyond)',
      wholeNumber,
      256,
    )
    .option(
      '--max-unauthenticated-per-address <n>',
      'connections not yet authenticated, per source address (refused beyond)',
      wholeNumber,
      16,
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
    .option(
      '--task-users <mode>',
      "auto, on or off: run each instance's tasks as a user of its own (auto: when root)",
      'auto',
    )
    .action(async (_opts: unknown, command: Command) => {
      holdReloadSignal();
      await runAgent(
        daemonOptions<AgentOptions>(command, 'agent', process.env),
        // SIGHUP: the file and the variables read again.
        () => daemonOptions<AgentOptions>(command, 'agent', process.env),
      );
    });

  withDataDir(
    agent
      .command('instances')
      .description('list the instances this agent keeps, or remove or unbind one'),
  )
    .option(
      '--remove <key>',
      'remove an instance with no connection and no task: its files, record, task user and binding',
    )
    .option('--unbind <key>', 'forget the coordinator key an instance is bound to (agent admins)')
    .option('--json', 'print JSON')
    .action(
      async (given: {
        data?: string;
        config?: string;
        remove?: string;
        unbind?: string;
        json?: boolean;
      }) => {
        const opts = { ...given, data: agentDataDir(given.data, given.config) };
        requireAgentData(opts.data);
        if (opts.remove !== undefined && opts.unbind !== undefined) {
          throw new MusterError('INVALID_CONFIG', 'give --remove or --unbind, not both');
        }
        if (opts.remove !== undefined) {
          await control(opts.data, { action: 'remove-instance', key: opts.remove });
          return;
        }
        if (opts.unbind !== undefined) {
          await control(opts.data, { action: 'unbind-instance', key: opts.unbind });
          return;
        }
        const rows = await instanceRows(opts.data);
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return;
        }
        process.stdout.write(formatInstances(rows));
      },
    );

  withDataDir(
    agent
      .command('leases')
      .description('list the clusters whose leases this agent grants, or reset a stuck one'),
  )
    .option('--reset <cluster>', "forget a cluster's lease, term and key (agent admins)")
    .option('--json', 'print JSON')
    .action(async (given: { data?: string; config?: string; reset?: string; json?: boolean }) => {
      const opts = { ...given, data: agentDataDir(given.data, given.config) };
      requireAgentData(opts.data);
      if (opts.reset !== undefined) {
        await control(opts.data, { action: 'reset-lease', cluster: opts.reset });
        return;
      }
      const rows = (await readLeaseFile(opts.data)).map((l) => ({
        cluster: l.cluster,
        term: l.term,
        boundTo: l.publicKey === null ? null : instanceKeyFingerprint(l.publicKey),
      }));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      if (rows.length === 0) {
        process.stdout.write('No cluster has taken a lease on this agent.\n');
        return;
      }
      for (const row of rows)
        process.stdout.write(
          `${row.cluster}\n  term      ${row.term}\n  bound to  ${row.boundTo ?? 'no key'}\n`,
        );
    });
}

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new MusterError('INVALID_CONFIG', `"${value}" is not a whole number of at least 1`);
  return n;
}

/** The options an agent admin command finds the agent's data dir by (see agentDataDir). */
function withDataDir(command: Command): Command {
  return command
    .option(
      '--data <dir>',
      'the agent data dir (default: $MUSTER_DATA, the config file, .muster/agent)',
    )
    .option(
      '--config <file>',
      "the agent's config file, for its data dir (default: $MUSTER_CONFIG)",
    );
}

/**
 * The agent's data dir for its admin commands, found as the agent finds it: --data, else
 * MUSTER_DATA, else `data` in the agent section of the config file (--config, else MUSTER_CONFIG),
 * else .muster/agent.
 */
function agentDataDir(given: string | undefined, configFile: string | undefined): string {
  if (given !== undefined) return given;
  const fromEnv = process.env['MUSTER_DATA'];
  if (fromEnv) return fromEnv;
  const path = configFile ?? (process.env['MUSTER_CONFIG'] || undefined);
  const data = path === undefined ? undefined : readConfigFile(path).agent?.get('data');
  if (data !== undefined && data !== null) {
    if (typeof data !== 'string')
      throw new MusterError('INVALID_CONFIG', `${path}: agent.data must be a directory`);
    return data;
  }
  return '.muster/agent';
}

function requireAgentData(dataDir: string): void {
  if (!existsSync(join(dataDir, 'agent-id'))) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${resolve(dataDir)} is not an agent data dir (no agent-id): pass the agent's --data`,
    );
  }
}

/** Hands a request to the running agent and prints its answer. */
async function control(dataDir: string, request: ControlRequest): Promise<void> {
  const answer = await sendControlRequest(dataDir, request, 10_000);
  if (answer === undefined) {
    process.stdout.write(
      'The agent did not answer within 10 s (is it running with this --data?): the request is kept and applied when it starts.\n',
    );
    return;
  }
  if (!answer.ok) throw new MusterError(answer.code ?? 'NOT_FOUND', answer.message);
  process.stdout.write(`${answer.message}\n`);
}

async function runAgent(opts: AgentOptions, reread: () => AgentOptions): Promise<void> {
  const options = compileAgentOptions(opts);
  const log = pino({ level: options.logLevel, base: { service: 'muster-agent' } });
  // Loaded here, not at the top: every other command starts faster without the daemon.
  const { Agent } = await import('../agent/agent.js');
  const agent = new Agent(options, log);
  onShutdownSignals(log, () => agent.stop());
  onReloadSignal(log, async () => {
    const { applied, restart } = await agent.reload(compileAgentOptions(reread()));
    log.info({ applied, restart }, reloadMessage(applied, restart));
  });
  await agent.start();
  const identity = agent.identity!;
  if (options.connect !== undefined) {
    process.stderr.write(
      `muster agent: dialing out to ${options.connect.url} (agent id ${identity.agentId})\n`,
    );
    if (options.connect.url.startsWith('http:'))
      process.stderr.write(
        'muster agent: the coordinator is plain HTTP: nothing binds the key to the connection; use only on a trusted network.\n',
      );
  }
  if (!options.listens) {
    log.info(
      {
        connect: options.connect?.url,
        agentId: identity.agentId,
        version: MUSTER_VERSION,
        dataDir: options.dataDir,
        tempDir: options.tempDir,
        taskUsers: options.taskUsers,
        ...(agent.metricsAddress === undefined ? {} : { metricsPort: agent.metricsAddress.port }),
      },
      'dialing out (not listening)',
    );
    return;
  }
  const { host, port } = agent.address;
  if (identity.createdAccessKey) {
    process.stderr.write(
      `muster agent: created an access key (saved in ${join(options.dataDir, 'access-key')}, mode 0600):\n\n    ${identity.accessKey}\n\nGive it to each coordinator that adds this agent.\n`,
    );
  }
  if (identity.tls) {
    process.stderr.write(
      `muster agent: TLS certificate fingerprint (SHA-256):\n\n    ${identity.tls.fingerprint}\n\n`,
    );
  } else {
    process.stderr.write('muster agent: TLS is off (--no-tls): use only on a trusted network.\n');
  }
  log.info(
    {
      host,
      port,
      tls: identity.tls !== undefined,
      fingerprint: identity.tls?.fingerprint,
      agentId: identity.agentId,
      version: MUSTER_VERSION,
      dataDir: options.dataDir,
      tempDir: options.tempDir,
      taskUsers: options.taskUsers,
      ...(agent.metricsAddress === undefined ? {} : { metricsPort: agent.metricsAddress.port }),
    },
    'listening',
  );
}
