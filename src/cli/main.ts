#!/usr/bin/env node
/** The `muster` command. Exit codes: 0 success, 1 build failed, 2 usage or input error, 3 cannot reach coordinator. */
import { Command, CommanderError } from 'commander';
import { MusterError } from '../protocol/errors.js';
import { MUSTER_VERSION } from '../protocol/version.js';
import { registerAgentCommand } from './agent-command.js';
import { registerCoordinatorCommand } from './coordinator-command.js';
import { registerUpCommand } from './up-command.js';

const program = new Command()
  .name('muster')
  .description('Muster: a distributed build environment')
  .version(MUSTER_VERSION)
  .enablePositionalOptions()
  .exitOverride()
  .showHelpAfterError();

registerAgentCommand(program);
registerCoordinatorCommand(program);
registerUpCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof MusterError) {
    process.stderr.write(`muster: ${err.message} [${err.code}]\n`);
    process.exit(err.code === 'INVALID_CONFIG' ? 2 : 1);
  }
  process.stderr.write(
    `muster: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
}
