// Runs every compiled test file (dist/test/**/*.test.js) with Node's test runner: unit tests
// first, then end-to-end tests that start real processes. Extra arguments filter file names.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const filters = process.argv.slice(2);

function find(dir) {
  let out = [];
  let names;
  try {
    names = readdirSync(dir).sort();
  } catch {
    return out;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(find(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

let failed = false;
for (const suite of ['unit', 'e2e']) {
  const files = find(join(root, 'dist/test', suite)).filter(
    (f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)),
  );
  if (files.length === 0) continue;
  const result = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=2', '--test-timeout=300000', ...files],
    { stdio: 'inherit', cwd: root },
  );
  if (result.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
