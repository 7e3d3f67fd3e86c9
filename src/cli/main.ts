#!/usr/bin/env node
/** The `muster` command. Exit codes: 0 success, 1 build failed, 2 usage or input error, 3 cannot reach coordinator. */
import { Command } from 'commander';
import { MUSTER_VERSION } from '../common/version.js';
import { reportError } from './exit-codes.js';

type Register = (program: Command) => void;

/**
 * Every command, in the order `muster --help` lists them, each loaded only when needed: a run of
 * one command (`muster build`, above all, whose start is part of every build's time) pays for
 * its own modules, not for the coordinator's and the agent's too.
 */
const COMMANDS: [string, () => Promise<Register>][] = [
  ['up', async () => (await import('./up-command.js')).registerUpCommand],
  [
    'coordinator',
    async () => (await import('./coordinator-command.js')).registerCoordinatorCommand,
  ],
  ['agent', async () => (await import('./agent-command.js')).registerAgentCommand],
  ['config', async () => (await import('./config-command.js')).registerConfigCommand],
  ['login', async () => (await import('./login-command.js')).registerLoginCommand],
  ['agents', async () => (await import('./agents-command.js')).registerAgentsCommand],
  ['extensions', async () => (await import('./extensions-command.js')).registerExtensionsCommand],
  ['toolchains', async () => (await import('./toolchains-command.js')).registerToolchainsCommand],
  ['run', async () => (await import('./run-command.js')).registerRunCommand],
  ['cc', async () => (await import('./cc-command.js')).registerCcCommand],
  ['build', async () => (await import('./build-command.js')).registerBuildCommand],
  // Hidden: the native front end's way to end a build it cannot end itself.
  ['build-finish', async () => (await import('./build-command.js')).registerBuildFinishCommand],
  ['builds', async () => (await import('./builds-command.js')).registerBuildsCommand],
  ['settings', async () => (await import('./settings-command.js')).registerSettingsCommand],
  ['backup', async () => (await import('./backup-command.js')).registerBackupCommand],
  ['users', async () => (await import('./users-command.js')).registerUsersCommand],
  ['audit', async () => (await import('./audit-command.js')).registerAuditCommand],
  ['secrets', async () => (await import('./secrets-command.js')).registerSecretsCommand],
  [
    'certificate',
    async () => (await import('./certificate-command.js')).registerCertificateCommand,
  ],
  ['status', async () => (await import('./status-command.js')).registerStatusCommand],
  ['completion', async () => (await import('./completion-command.js')).registerCompletionCommand],
];

const program = new Command()
  .name('muster')
  .description('Muster: a distributed build environment')
  .version(MUSTER_VERSION)
  .enablePositionalOptions()
  .exitOverride()
  .showHelpAfterError();

try {
  // A known command first on the line: only it. Anything else (help, a typo, no command): all of
  // them, so that help lists every command and an unknown one is reported as it always was.
  // `completion` describes them all, so it needs them all too.
  const named = COMMANDS.find(([name]) => name === process.argv[2] && name !== 'completion');
  for (const [, load] of named === undefined ? COMMANDS : [named]) (await load())(program);
  await program.parseAsync(process.argv);
} catch (err) {
  process.exit(reportError(err));
}
