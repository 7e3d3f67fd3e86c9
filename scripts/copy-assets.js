// Run after `tsc` (npm run build). The host runtime (dist/src/host) and each built-in extension
// (dist/src/extensions/<name>) are shipped to agents as plain folders, so each needs, next to its
// compiled JS: a package.json saying it is ESM, and for an extension its muster-extension.json
// (version = this package's version); the host gets version.json for its `ready` message.
// Idempotent: files are rewritten only when their content changes.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const moduleType = { type: 'module' };

function writeJson(path, value) {
  mkdirSync(dirname(path), { recursive: true });
  const text = JSON.stringify(value, null, 2) + '\n';
  const old = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (old !== text) writeFileSync(path, text);
}

const extensionsSrc = join(root, 'src/extensions');
for (const name of readdirSync(extensionsSrc)) {
  const manifestPath = join(extensionsSrc, name, 'muster-extension.json');
  if (!existsSync(manifestPath)) continue;
  const out = join(root, 'dist/src/extensions', name);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  writeJson(join(out, 'muster-extension.json'), { ...manifest, version });
  writeJson(join(out, 'package.json'), moduleType);
}

const hostOut = join(root, 'dist/src/host');
writeJson(join(hostOut, 'version.json'), { version });
writeJson(join(hostOut, 'package.json'), moduleType);
