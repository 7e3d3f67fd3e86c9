/**
 * Where this package's files are: the folder of its package.json, found by walking up from this
 * module's own place. The compiled tree (dist/src/…) and the bundled CLI (dist/cli/ and
 * dist/cli/chunks/, scripts/bundle-cli.js) put the same code at different depths, so a path
 * written relative to a module's file would name the right place from one of them only.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'muster';

let found: string | undefined;

function isOurs(manifest: string): boolean {
  try {
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME;
  } catch {
    return false;
  }
}

/** The package's root folder (thrown when there is none above this file: a broken install). */
export function packageRoot(): string {
  if (found !== undefined) return found;
  const self = fileURLToPath(import.meta.url);
  for (let dir = dirname(self); ;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && isOurs(manifest)) {
      found = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json of ${PACKAGE_NAME} above ${self}`);
    dir = up;
  }
}

/** A path inside the package (`packagePath('dist', 'native', 'muster-cc')`). */
export function packagePath(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}

/** The `muster` command's Node entry: the bundled CLI (bin/muster runs it). */
export function cliEntry(): string {
  return packagePath('dist', 'cli', 'muster.js');
}
