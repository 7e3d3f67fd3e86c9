/** Daemon options from the command line, MUSTER_* variables and a config file (daemon-config.ts). */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Command } from 'commander';
import { registerAgentCommand } from '../../src/cli/agent-command.js';
import { registerCoordinatorCommand } from '../../src/cli/coordinator-command.js';
import {
  applyConfig,
  configKey,
  configurableOptions,
  daemonOptions,
  envName,
  readConfigFile,
} from '../../src/cli/daemon-config.js';
import { hostEnvironment } from '../../src/agent/host-process.js';
import { compileAgentOptions, type AgentOptions } from '../../src/agent/options.js';

const dir = await mkdtemp(join(tmpdir(), 'muster-config-test-'));
after(() => rm(dir, { recursive: true, force: true }));
let files = 0;
async function file(text: string): Promise<string> {
  const path = join(dir, `config-${++files}.yml`);
  await writeFile(path, text);
  return path;
}

/** `muster agent` as main.ts defines it, parsed from `argv` (its action not run). */
function agentCommand(argv: string[] = []): Command {
  const program = new Command().exitOverride();
  registerAgentCommand(program);
  const agent = program.commands.find((c) => c.name() === 'agent')!;
  agent.exitOverride();
  agent.parseOptions(argv);
  return agent;
}

function cliSet(command: Command): Set<string> {
  return new Set(
    command.options
      .map((o) => o.attributeName())
      .filter((a) => command.getOptionValueSource(a) === 'cli'),
  );
}

describe('daemon configuration', () => {
  it('names every flag as a key and a MUSTER_ variable', () => {
    const agent = agentCommand();
    const keys = configurableOptions(agent).map(configKey);
    assert.ok(keys.includes('drain-timeout'));
    assert.ok(keys.includes('tls'), '--no-tls is the key tls');
    assert.ok(!keys.includes('config'), '--config names the file: not a key');
    assert.equal(envName('drain-timeout'), 'MUSTER_DRAIN_TIMEOUT');
    const program = new Command();
    registerCoordinatorCommand(program);
    const coordinator = program.commands.find((c) => c.name() === 'coordinator')!;
    const coordinatorKeys = configurableOptions(coordinator).map(configKey);
    assert.ok(coordinatorKeys.includes('join-token'), 'MUSTER_JOIN_TOKEN as before');
    assert.ok(coordinatorKeys.includes('password-cost'), 'MUSTER_PASSWORD_COST as before');
  });

  it('takes the command line first, then the environment, then the file, then the default', async () => {
    const path = await file(
      'agent:\n  listen: 127.0.0.1:7001\n  data: /srv/from-file\n  drain-timeout: 1m\n  tls: false\n  max-unauthenticated: 12\n',
    );
    const agent = agentCommand(['--listen', '127.0.0.1:7003']);
    applyConfig(agent, 'agent', {
      cli: cliSet(agent),
      env: { MUSTER_LISTEN: '127.0.0.1:7002', MUSTER_DATA: '/srv/from-env', MUSTER_LOG_LEVEL: '' },
      file: readConfigFile(path),
    });
    const opts = agent.opts<AgentOptions>();
    assert.equal(opts.listen, '127.0.0.1:7003', 'the command line wins');
    assert.equal(opts.data, '/srv/from-env', 'the environment beats the file');
    assert.equal(opts.drainTimeout, '1m', 'the file beats the default');
    assert.equal(opts.tls, false);
    assert.equal(opts.maxUnauthenticated, 12, "through the flag's own parser");
    assert.equal(opts.logLevel, 'info', 'an empty variable is unset: the default');
    assert.equal(agent.getOptionValueSource('drainTimeout'), 'config');
    assert.equal(agent.getOptionValueSource('data'), 'env');
    const compiled = compileAgentOptions(opts);
    assert.equal(compiled.drainTimeoutMs, 60_000);
    assert.equal(compiled.tls, false);
  });

  it('refuses unknown keys and sections with the closest name, every problem at once', async () => {
    const path = await file(
      'agent:\n  drain-timout: 30s\n  max-unauthenticated: twelve\n  tls: maybe\n  listen: [a, b]\n',
    );
    const agent = agentCommand();
    assert.throws(
      () => applyConfig(agent, 'agent', { cli: new Set(), env: {}, file: readConfigFile(path) }),
      (err: Error & { code?: string; details?: { problems: string[] } }) => {
        assert.equal(err.code, 'INVALID_CONFIG');
        const problems = err.details?.problems ?? [];
        assert.equal(problems.length, 4, problems.join('\n'));
        assert.match(
          err.message,
          /agent\.drain-timout: not an option of muster agent; did you mean "drain-timeout"\?/,
        );
        assert.match(err.message, /agent\.max-unauthenticated: "twelve" is not a whole number/);
        assert.match(err.message, /agent\.tls must be true or false/);
        assert.match(err.message, /agent\.listen must be a single value/);
        return true;
      },
    );
    const sections = await file('agents:\n  listen: 127.0.0.1:1\n');
    assert.throws(() => readConfigFile(sections), /agents: not a section; did you mean "agent"\?/);
    const flat = await file('listen: 127.0.0.1:1\n');
    assert.throws(() => readConfigFile(flat), /listen: not a section/);
    const broken = await file('agent:\n  listen: [1, 2\n');
    assert.throws(() => readConfigFile(broken), {
      code: 'INVALID_CONFIG',
      message: /\(line \d+\)/,
    });
    const twice = await file('agent:\n  listen: a\n  listen: b\n');
    assert.throws(() => readConfigFile(twice), { code: 'INVALID_CONFIG', message: /unique/i });
    assert.throws(
      () => readConfigFile(join(dir, 'missing.yml')),
      /cannot read the config file .*ENOENT/,
    );
  });

  it('refuses a bad variable as it refuses a bad flag, naming the variable', () => {
    const agent = agentCommand();
    assert.throws(
      () =>
        applyConfig(agent, 'agent', { cli: new Set(), env: { MUSTER_TLS: 'no' }, file: undefined }),
      /MUSTER_TLS must be true or false/,
    );
  });

  it('leaves a number without a unit to the one duration check, which refuses it', async () => {
    const path = await file('agent:\n  lease-ttl: 30\n');
    const agent = agentCommand();
    applyConfig(agent, 'agent', { cli: new Set(), env: {}, file: readConfigFile(path) });
    assert.throws(() => compileAgentOptions(agent.opts<AgentOptions>()), {
      code: 'INVALID_CONFIG',
      message: /--lease-ttl "30" has no unit: write 30s/,
    });
  });
});

describe('daemon configuration: groups, reloads, host processes', () => {
  it('takes options that go together from the highest place that sets any of them', async () => {
    const path = await file(
      'agent:\n  tls-cert: /srv/file-cert.pem\n  tls-key: /srv/file-key.pem\n  access-key-file: /srv/key\n',
    );
    const agent = agentCommand(['--no-tls']);
    applyConfig(agent, 'agent', {
      cli: cliSet(agent),
      env: { MUSTER_ACCESS_KEY: 'from-env-0123456789' },
      file: readConfigFile(path),
    });
    const opts = agent.opts<AgentOptions>();
    assert.equal(opts.tls, false);
    assert.equal(opts.tlsCert, undefined, "the command line's --no-tls hides the file's tls-cert");
    assert.equal(opts.tlsKey, undefined);
    assert.equal(opts.accessKey, 'from-env-0123456789');
    assert.equal(opts.accessKeyFile, undefined, "the variable hides the file's access-key-file");
    assert.doesNotThrow(() => compileAgentOptions(opts));
  });

  it('reads values as written, not as YAML numbers', async () => {
    const path = await file(
      'agent:\n  access-key: 0123456\n  tls: false\n  max-unauthenticated: 12\n',
    );
    const agent = agentCommand();
    applyConfig(agent, 'agent', { cli: new Set(), env: {}, file: readConfigFile(path) });
    const opts = agent.opts<AgentOptions>();
    assert.equal(opts.accessKey, '0123456');
    assert.equal(opts.tls, false);
    assert.equal(opts.maxUnauthenticated, 12);
  });

  it('at a reload, a key removed from the file goes back to its default', async () => {
    const path = join(dir, 'reloaded.yml');
    await writeFile(path, 'agent:\n  drain-timeout: 2m\n  log-level: debug\n');
    const agent = agentCommand(['--config', path, '--listen', '127.0.0.1:9']);
    const first = daemonOptions<AgentOptions>(agent, 'agent', {});
    assert.equal(first.drainTimeout, '2m');
    assert.equal(first.logLevel, 'debug');
    await writeFile(path, 'agent:\n  log-level: warn\n');
    const second = daemonOptions<AgentOptions>(agent, 'agent', {});
    assert.equal(second.drainTimeout, '30s', 'back to the default');
    assert.equal(second.logLevel, 'warn');
    assert.equal(second.listen, '127.0.0.1:9', 'the command line stays');
    assert.equal(second.tls, true, "--no-tls's default");
  });

  it("keeps the agent's MUSTER_* variables out of its host processes", () => {
    const env = hostEnvironment({
      PATH: '/usr/bin',
      MUSTER_ACCESS_KEY: 'secret',
      MUSTER_JOIN_TOKEN: 'secret too',
      MUSTER_HOST_TEST_HOOKS: '1',
    });
    assert.deepEqual(env, { PATH: '/usr/bin', MUSTER_HOST_TEST_HOOKS: '1' });
  });
});
