/**
 * `muster config check FILE`: whether a daemon config file would start its daemons — each
 * section (`agent:`, `coordinator:`) read as `--config` reads it and validated as the daemon
 * validates its options at start. The file alone: the environment and the command line, which
 * win over it at start, are not looked at.
 */
import { Command } from 'commander';
import { compileAgentOptions } from '../agent/options.js';
import { compileCoordinatorOptions } from '../coordinator/options.js';
import { MusterError } from '../protocol/errors.js';
import { registerAgentCommand } from './agent-command.js';
import { registerCoordinatorCommand } from './coordinator-command.js';
import {
  DAEMON_SECTIONS,
  applyConfig,
  readConfigFile,
  type DaemonSection,
} from './daemon-config.js';

/** A daemon's command as `muster` defines it (its flags and their defaults), not run. */
function daemonCommand(section: DaemonSection): Command {
  const program = new Command();
  if (section === 'agent') registerAgentCommand(program);
  else registerCoordinatorCommand(program);
  const command = program.commands.find((c) => c.name() === section);
  if (command === undefined) throw new MusterError('INTERNAL', `no ${section} command`);
  return command;
}

/** Checks one section; throws INVALID_CONFIG with its problems. */
function checkSection(section: DaemonSection, file: ReturnType<typeof readConfigFile>): void {
  const command = daemonCommand(section);
  applyConfig(command, section, { cli: new Set(), env: {}, file });
  const values = command.opts<Record<string, unknown>>();
  try {
    if (section === 'agent') compileAgentOptions(values);
    else compileCoordinatorOptions(values);
  } catch (err) {
    if (err instanceof MusterError)
      throw new MusterError(err.code, `${file.path}: ${section}: ${err.message}`, err.details);
    throw err;
  }
}

export function registerConfigCommand(program: Command): void {
  const config = program.command('config').description("check the daemons' config files");
  config
    .command('check')
    .description(
      'check a config file (YAML, agent: and coordinator: sections) as the daemons read it at start',
    )
    .argument('<file>', 'the config file')
    .action((path: string) => {
      const file = readConfigFile(path);
      const sections = DAEMON_SECTIONS.filter((s) => file[s] !== undefined);
      if (sections.length === 0)
        throw new MusterError(
          'INVALID_CONFIG',
          `${path}: no agent: or coordinator: section: nothing would be read from it`,
        );
      for (const section of sections) checkSection(section, file);
      process.stdout.write(
        `${path}: ${sections.map((s) => `${s}: ${file[s]!.size} option${file[s]!.size === 1 ? '' : 's'}, ok`).join('; ')}\n`,
      );
    });
}
