/**
 * `muster secrets set|list|delete`: named secrets that plans give to tasks (`secrets: [NAME]`),
 * admins only. A value is read from stdin, or typed on the terminal without echo — never taken as
 * an argument, where it would sit in the shell's history and in ps — and never shown again.
 */
import type { Command } from 'commander';
import { formatTable, formatTimestamp } from '../api/format.js';
import { secretNameProblem } from '../api/secret-names.js';
import { MusterError } from '../protocol/errors.js';
import { connect } from './api-client.js';
import { promptPassword, readStdin } from './password-input.js';
import { printJson } from './print-json.js';

function checkName(name: string): string {
  const problem = secretNameProblem(name);
  if (problem !== undefined) throw new MusterError('INVALID_CONFIG', problem);
  return name;
}

/** The value: piped in (one trailing newline dropped), or asked for on the terminal. */
async function readValue(name: string): Promise<string> {
  const value = process.stdin.isTTY
    ? await promptPassword(`Value of ${name}: `)
    : await readStdin();
  if (value === '') throw new MusterError('INVALID_CONFIG', `the value of ${name} is empty`);
  return value;
}

export function registerSecretsCommand(program: Command): void {
  const secrets = program
    .command('secrets')
    .description("named secrets given to the tasks that list them in a plan's secrets: (admin)");

  secrets
    .command('set <name>')
    .description('set a secret (its value from stdin, or typed without echo on a terminal)')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  muster secrets set REGISTRY_TOKEN            # asks for the value',
        '  muster secrets set REGISTRY_TOKEN < token.txt',
        '',
        'A trailing newline of piped input is dropped. The value is never shown again: list',
        'gives names only. A task gets it as an environment variable when its plan says',
        'secrets: [REGISTRY_TOKEN]; exact values are masked (***) in task output.',
      ].join('\n'),
    )
    .action(async (name: string) => {
      checkName(name);
      const value = await readValue(name);
      const set = await (await connect()).setSecret(name, value);
      process.stdout.write(`Secret ${set.name} set.\n`);
    });

  secrets
    .command('list')
    .description('the secrets: names, who set them and when (never values)')
    .option('--json', 'print JSON: [ { name, setBy, setAt } ]')
    .action(async (opts: { json?: boolean }) => {
      const rows = await (await connect()).listSecrets();
      if (opts.json) {
        printJson(rows);
        return;
      }
      if (rows.length === 0) {
        process.stdout.write('No secrets.\n');
        return;
      }
      process.stdout.write(
        formatTable(
          ['NAME', 'SET BY', 'SET AT'],
          rows.map((r) => [r.name, r.setBy, formatTimestamp(r.setAt)]),
        ),
      );
    });

  secrets
    .command('delete <name>')
    .description('delete a secret (builds that name it are refused from then on)')
    .action(async (name: string) => {
      checkName(name);
      await (await connect()).deleteSecret(name);
      process.stdout.write(`Secret ${name} deleted.\n`);
    });
}
