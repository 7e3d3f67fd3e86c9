/** `muster settings get [KEY] | set KEY VALUE | unset KEY`: the coordinator's admin settings. */
import type { Command } from 'commander';
import { connect } from './api-client.js';
import { formatTable } from '../api/format.js';
import { printJson } from './print-json.js';

export function registerSettingsCommand(program: Command): void {
  const settings = program
    .command('settings')
    .description("read and change the coordinator's settings (e.g. Agent.InstanceId)");

  settings
    .command('get')
    .description('print one setting, or every setting without KEY')
    .argument('[key]', 'the setting')
    .option('--json', 'print JSON')
    .action(async (key: string | undefined, opts: { json?: boolean }) => {
      const client = await connect();
      if (key === undefined) {
        const all = await client.listSettings();
        if (opts.json) {
          printJson(all);
          return;
        }
        const keys = Object.keys(all).sort();
        if (keys.length === 0) {
          process.stdout.write('No settings yet: muster settings set KEY VALUE\n');
          return;
        }
        process.stdout.write(
          formatTable(
            ['KEY', 'VALUE'],
            keys.map((k) => [k, formatValue(all[k])]),
          ),
        );
        return;
      }
      const setting = await client.getSetting(key);
      if (opts.json) printJson(setting);
      else process.stdout.write(`${formatValue(setting.value)}\n`);
    });

  settings
    .command('set')
    .description(
      'change a setting; VALUE is read as JSON when it parses (true, 3, ["a"]), else as text',
    )
    .argument('<key>', 'the setting')
    .argument('<value>', 'the new value')
    .option('--json', 'print the setting as JSON')
    .action(async (key: string, raw: string, opts: { json?: boolean }) => {
      const client = await connect();
      const setting = await client.setSetting(key, parseValue(raw));
      if (opts.json) printJson(setting);
      else process.stdout.write(`${setting.key} = ${formatValue(setting.value)}\n`);
    });

  settings
    .command('unset')
    .description(
      "clear a setting that may be empty (Agent.InstanceId: agents key this coordinator by its address); the same as set KEY ''",
    )
    .argument('<key>', 'the setting')
    .option('--json', 'print the setting as JSON')
    .action(async (key: string, opts: { json?: boolean }) => {
      const client = await connect();
      const setting = await client.setSetting(key, null);
      if (opts.json) printJson(setting);
      else process.stdout.write(`${setting.key} cleared\n`);
    });
}

/** JSON when it parses (numbers, booleans, null, lists, objects, "quoted"), else the text. */
export function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/** Text as it is, anything else as compact JSON. */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return value;
  return value === undefined ? '' : JSON.stringify(value);
}
