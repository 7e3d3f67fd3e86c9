#!/usr/bin/env node
/** The `muster` command. Exit codes: 0 success, 1 build failed, 2 usage or input error, 3 cannot reach coordinator. */
import { Command } from 'commander';
import { MUSTER_VERSION } from '../common/version.js';
import { registerAgentCommand } from './agent-command.js';
import { registerAgentsCommand } from './agents-command.js';
import { registerBackupCommand } from './backup-command.js';
import { registerBuildCommand } from './build-command.js';
import { registerCcCommand } from './cc-command.js';
import { registerCertificateCommand } from './certificate-command.js';
import { registerBuildsCommand } from './builds-command.js';
import { registerCoordinatorCommand } from './coordinator-command.js';
import { reportError } from './exit-codes.js';
import { registerExtensionsCommand } from './extensions-command.js';
import { registerLoginCommand } from './login-command.js';
import { registerRunCommand } from './run-command.js';
import { registerSettingsCommand } from './settings-command.js';
import { registerStatusCommand } from './status-command.js';
import { registerUpCommand } from './up-command.js';
import { registerUsersCommand } from './users-command.js';

const program = new Command()
  .name('muster')
  .description('Muster: a distributed build environment')
  .version(MUSTER_VERSION)
  .enablePositionalOptions()
  .exitOverride()
  .showHelpAfterError();

registerUpCommand(program);
registerCoordinatorCommand(program);
registerAgentCommand(program);
registerLoginCommand(program);
registerAgentsCommand(program);
registerExtensionsCommand(program);
registerRunCommand(program);
registerCcCommand(program);
registerBuildCommand(program);
registerBuildsCommand(program);
registerSettingsCommand(program);
registerBackupCommand(program);
registerUsersCommand(program);
registerCertificateCommand(program);
registerStatusCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exit(reportError(err));
}
