/** `muster extensions add PATH | list`: the extensions a coordinator ships to its agents. */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import type { ExtensionView } from '../api/views/extensions.js';
import { MusterError } from '../protocol/errors.js';
import { connect } from './api-client.js';
import { describeFiles, displayPath, uploadMissing, walkFiles } from './files.js';
import { formatBytes, formatTable, formatTimestamp, plural } from '../api/format.js';
import { printJson } from './print-json.js';

const MANIFEST = 'muster-extension.json';

const manifestSchema = z.object({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'lower case letters, digits, ".", "_", "-"'),
  version: z.string().min(1).max(64),
  main: z.string().min(1),
});

export function registerExtensionsCommand(program: Command): void {
  const extensions = program
    .command('extensions')
    .description('manage the extensions (operations tasks can use)');

  extensions
    .command('add')
    .description(`upload an extension: a folder with ${MANIFEST} { name, version, main }`)
    .argument('<path>', 'the folder')
    .option('--json', 'print the extension as JSON')
    .action(async (path: string, opts: { json?: boolean }) => {
      const dir = resolve(path);
      const manifest = await readManifest(dir);
      // Everything travels: an extension vendors what it imports, node_modules included.
      const paths = await walkFiles(dir, { skip: new Set(['.git']) });
      const files = await describeFiles(dir, paths);
      const client = await connect();
      await uploadMissing(client, files);
      const extension = await client.addExtension({
        name: manifest.name,
        version: manifest.version,
        files: files.map(({ path: p, sha256, size, mode }) => ({ path: p, sha256, size, mode })),
      });
      if (opts.json) {
        printJson(extension);
        return;
      }
      process.stdout.write(
        `Added extension ${extension.name} ${extension.version} (${plural(extension.files, 'file')}, ${formatBytes(extension.bytes)})\n`,
      );
    });

  extensions
    .command('list')
    .description('list the extensions')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const client = await connect();
      const list = await client.listExtensions();
      if (opts.json) {
        printJson(list);
        return;
      }
      process.stdout.write(formatExtensions(list));
    });
}

async function readManifest(dir: string): Promise<z.infer<typeof manifestSchema>> {
  const where = displayPath(join(dir, MANIFEST));
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${displayPath(dir)} is not a folder: give the folder that holds ${MANIFEST}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8'));
  } catch (err) {
    throw new MusterError(
      'INVALID_CONFIG',
      (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? `${displayPath(dir)} has no ${MANIFEST}: write one with { "name", "version", "main" }`
        : `${where} is not valid JSON: ${(err as Error).message}`,
    );
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${where} is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  const main = await stat(join(dir, parsed.data.main)).catch(() => undefined);
  if (!main?.isFile()) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${where} names main "${parsed.data.main}", which is not a file in ${displayPath(dir)}`,
    );
  }
  return parsed.data;
}

export function formatExtensions(list: ExtensionView[]): string {
  if (list.length === 0) return 'No extensions yet: muster extensions add PATH\n';
  const rows = list.map((e) => [
    e.name,
    e.version,
    String(e.files),
    formatBytes(e.bytes),
    e.builtIn ? 'built in' : formatTimestamp(e.addedAt),
  ]);
  return formatTable(['NAME', 'VERSION', 'FILES', 'SIZE', 'ADDED'], rows);
}
