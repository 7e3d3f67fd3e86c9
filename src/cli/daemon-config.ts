/**
 * The daemons' settings (docs/operations.md, "Configuration"), from four places, the first that
 * has one winning: the command line; the environment, `MUSTER_` and the flag's name
 * (`--drain-timeout` → `MUSTER_DRAIN_TIMEOUT`, `--no-tls` → `MUSTER_TLS=false`); a YAML config
 * file (`--config FILE`, or `MUSTER_CONFIG`) whose `agent:` or `coordinator:` section holds the
 * flags' names as keys (`drain-timeout: 30s`, `tls: false`); the flag's default. Every value
 * goes through its flag's own parser and then the daemon's one validation
 * (compileAgentOptions, compileCoordinatorOptions), so a file says nothing a flag could not.
 * Unknown sections and keys are refused with the closest name; every problem is reported at
 * once.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Command, Option } from 'commander';
import { isMap, isScalar, parseDocument } from 'yaml';
import { closest } from '../api/plan/suggest.js';
import { MusterError } from '../protocol/errors.js';

export const DAEMON_SECTIONS = ['agent', 'coordinator'] as const;
export type DaemonSection = (typeof DAEMON_SECTIONS)[number];

/** The flag that names the file, itself read from the command line or MUSTER_CONFIG only. */
export const CONFIG_FLAG = 'config';
/** A config file larger than this is refused (a few dozen keys are a few KB). */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** A flag as a config key: its long name without the dashes, `tls` for `--no-tls`. */
export function configKey(option: Option): string {
  const long = (option.long ?? '').replace(/^--/, '');
  return option.negate ? long.replace(/^no-/, '') : long;
}

/** The environment variable of a flag: `drain-timeout` → `MUSTER_DRAIN_TIMEOUT`. */
export function envName(key: string): string {
  return `MUSTER_${key.toUpperCase().replace(/-/g, '_')}`;
}

/** The daemon's flags that a file or the environment may set (not --config, --help). */
export function configurableOptions(command: Command): Option[] {
  return command.options.filter((o) => {
    const key = configKey(o);
    return key !== '' && key !== CONFIG_FLAG && key !== 'help' && key !== 'version';
  });
}

/** A config file's sections, each a mapping of key → plain value, as written. */
export type ConfigFile = Partial<Record<DaemonSection, Map<string, unknown>>> & {
  readonly path: string;
};

/** Reads and checks the shape of a config file: YAML, a mapping of known sections of mappings. */
export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    // The size first: a config file named by mistake (a device, a log) is not read whole.
    const info = statSync(path);
    if (!info.isFile())
      throw new MusterError('INVALID_CONFIG', `config file ${path} is not a regular file`);
    if (info.size > MAX_CONFIG_BYTES)
      throw new MusterError('INVALID_CONFIG', `config file ${path} is larger than 1 MiB`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof MusterError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new MusterError(
      'INVALID_CONFIG',
      `cannot read the config file ${path}${code === undefined ? '' : ` (${code})`}`,
    );
  }
  // Every value as written (YAML's failsafe schema): `join-token: 0123` stays "0123", and each
  // flag's own parser reads numbers, booleans and durations as it reads them on the command line.
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, schema: 'failsafe' });
  const problems: string[] = doc.errors.map((e) => {
    const line = e.linePos?.[0]?.line;
    return `${e.message.split('\n')[0] ?? e.message}${line === undefined ? '' : ` (line ${line})`}`;
  });
  const file: { path: string } & Partial<Record<DaemonSection, Map<string, unknown>>> = { path };
  const root: unknown = doc.contents;
  if (problems.length === 0 && root !== null && root !== undefined) {
    if (!isMap(root)) problems.push('the file must be a mapping with agent: and/or coordinator:');
    else {
      for (const pair of root.items) {
        const name = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        if (!(DAEMON_SECTIONS as readonly string[]).includes(name)) {
          const near = closest(name, DAEMON_SECTIONS);
          problems.push(
            `${name}: not a section${near === undefined ? '' : `; did you mean "${near}"?`} (sections: ${DAEMON_SECTIONS.join(', ')})`,
          );
          continue;
        }
        const section = new Map<string, unknown>();
        if (
          pair.value === null ||
          pair.value === undefined ||
          (isScalar(pair.value) && (pair.value.value === null || pair.value.value === ''))
        ) {
          file[name as DaemonSection] = section;
          continue;
        }
        if (!isMap(pair.value)) {
          problems.push(`${name}: must be a mapping of options (${name}:\\n  listen: …)`);
          continue;
        }
        for (const item of pair.value.items) {
          const key = isScalar(item.key) ? String(item.key.value) : String(item.key);
          const value: unknown = isScalar(item.value)
            ? item.value.value
            : item.value === null
              ? null
              : (item.value as { toJSON(): unknown }).toJSON();
          section.set(key, value);
        }
        file[name as DaemonSection] = section;
      }
    }
  }
  if (problems.length > 0) throw configError(path, problems);
  return file;
}

function configError(where: string, problems: readonly string[]): MusterError {
  const list = problems.map((p) => `  - ${p}`).join('\n');
  return new MusterError(
    'INVALID_CONFIG',
    `${where}: ${problems.length === 1 ? '1 problem' : `${problems.length} problems`}\n${list}`,
    { problems },
  );
}

/** Where a daemon's option values come from besides the defaults. */
export interface ConfigSources {
  /** Values given on the command line, by attribute name (they win). */
  readonly cli: ReadonlySet<string>;
  readonly env: NodeJS.ProcessEnv;
  readonly file?: ConfigFile | undefined;
}

/**
 * Options that only make sense together: the highest place that sets any of them (command line,
 * then environment, then file) sets the group, and what lower places say of it is not used —
 * `--no-tls` on the command line is not refused for a file's `tls-cert`, and a command line's
 * `--tls-cert` is not paired with a file's `tls-key`.
 */
const OPTION_GROUPS: readonly (readonly string[])[] = [
  ['tls', 'tls-cert', 'tls-key'],
  ['access-key', 'access-key-file'],
  ['peer-ca', 'primary-ca'],
];

/** A value given as text (command line, environment) or as YAML wrote it, through the flag's parser. */
function valueOf(option: Option, given: unknown, where: string): unknown {
  const takesValue = option.required || option.optional;
  if (!takesValue) {
    if (typeof given === 'boolean') return given;
    if (given === 'true') return true;
    if (given === 'false') return false;
    throw new Error(`${where} must be true or false`);
  }
  let text: string;
  if (typeof given === 'string') text = given;
  else if (typeof given === 'number' && Number.isFinite(given)) text = String(given);
  else throw new Error(`${where} must be a single value (${option.flags})`);
  const parse = (option as Option & { parseArg?: (value: string, previous: unknown) => unknown })
    .parseArg;
  if (parse === undefined) return text;
  try {
    return parse(text, undefined);
  } catch (err) {
    throw new Error(`${where}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

/**
 * Fills the daemon's options that the command line left unset from the environment and the
 * file's `section` (command.setOptionValueWithSource: 'env', 'config'). Throws INVALID_CONFIG
 * with every problem: an unknown key (with the closest name), a value its flag's parser refuses.
 */
export function applyConfig(
  command: Command,
  section: DaemonSection,
  sources: ConfigSources,
): void {
  const options = configurableOptions(command);
  const problems: string[] = [];
  const entries = sources.file?.[section];
  const keys = options.map(configKey);
  if (entries !== undefined) {
    for (const key of entries.keys()) {
      if (keys.includes(key)) continue;
      const near = closest(key, [...keys].sort());
      problems.push(
        `${section}.${key}: not an option of muster ${section}${near === undefined ? '' : `; did you mean "${near}"?`}`,
      );
    }
  }
  const given = (key: string): 'cli' | 'env' | 'file' | undefined => {
    const option = options.find((o) => configKey(o) === key);
    if (option === undefined) return undefined;
    if (sources.cli.has(option.attributeName())) return 'cli';
    const fromEnv = sources.env[envName(key)];
    if (fromEnv !== undefined && fromEnv !== '') return 'env';
    return entries?.has(key) === true ? 'file' : undefined;
  };
  const rank = { cli: 3, env: 2, file: 1 } as const;
  /** The place that sets `key`'s group (undefined: the key is in none, or none sets it). */
  const groupSource = (key: string): 'cli' | 'env' | 'file' | undefined => {
    const group = OPTION_GROUPS.find((g) => g.includes(key));
    if (group === undefined) return undefined;
    let best: 'cli' | 'env' | 'file' | undefined;
    for (const member of group) {
      const place = given(member);
      if (place !== undefined && (best === undefined || rank[place] > rank[best])) best = place;
    }
    return best;
  };
  for (const option of options) {
    const attribute = option.attributeName();
    if (sources.cli.has(attribute)) continue;
    const key = configKey(option);
    const variable = envName(key);
    const fromEnv = sources.env[variable];
    const group = groupSource(key);
    try {
      if (group === 'cli') continue;
      if (fromEnv !== undefined && fromEnv !== '') {
        command.setOptionValueWithSource(attribute, valueOf(option, fromEnv, variable), 'env');
      } else if (entries?.has(key) === true && group !== 'env') {
        command.setOptionValueWithSource(
          attribute,
          valueOf(option, entries.get(key), `${section}.${key}`),
          'config',
        );
      }
    } catch (err) {
      problems.push(err instanceof Error ? err.message : String(err));
    }
  }
  if (problems.length > 0)
    throw configError(sources.file === undefined ? 'configuration' : sources.file.path, problems);
}

/** The attributes the command line gave (commander's value source 'cli'). */
export function givenOnCommandLine(command: Command): Set<string> {
  return new Set(
    command.options
      .map((o) => o.attributeName())
      .filter((a) => command.getOptionValueSource(a) === 'cli'),
  );
}

/**
 * The daemon command's options with the environment and config file applied: the one entry
 * point of `muster agent` and `muster coordinator`. Called again at SIGHUP: what the command
 * line did not give goes back to its default first, so a key removed from the file counts as
 * such, and the file is read anew (the variables are the process's own: fixed at its start).
 */
export function daemonOptions<T>(
  command: Command,
  section: DaemonSection,
  env: NodeJS.ProcessEnv,
): T {
  const cli = givenOnCommandLine(command);
  for (const option of configurableOptions(command)) {
    const attribute = option.attributeName();
    if (cli.has(attribute)) continue;
    const initial: unknown =
      option.negate && option.defaultValue === undefined ? true : option.defaultValue;
    command.setOptionValueWithSource(attribute, initial, 'default');
  }
  const path =
    (command.getOptionValue(CONFIG_FLAG) as string | undefined) ??
    (env['MUSTER_CONFIG'] || undefined);
  applyConfig(command, section, {
    cli,
    env,
    file: path === undefined ? undefined : readConfigFile(path),
  });
  return command.opts<Record<string, unknown>>() as T;
}
