// Run after `tsc` (npm run build): bundles the CLI (dist/src/cli/main.js and every module it
// loads, each command a chunk of its own, loaded only when that command runs) into dist/cli/,
// the entry bin/muster and `npm start` run. A `muster build` starts a Node process per build:
// ~190 files resolved and compiled one by one (zod's 60 locales among them) cost it ~0.13 s of
// CPU that one file per command does not (measured on `muster build -- true`: CHANGELOG).
// Packages stay external (loaded from node_modules as before) except zod and commander, whose
// unused parts tree-shaking drops. The compiled tree (dist/src/) stays: the host runtime and the
// extensions are shipped to agents from it, the plan parser's worker runs from it, and the unit
// tests import it.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist/cli');
const BUNDLED_PACKAGES = /^(zod|commander)(\/|$)/;

const bundle = await rolldown({
  input: { muster: join(root, 'dist/src/cli/main.js') },
  platform: 'node',
  external: (id) => id.startsWith('node:') || (/^[^./]/.test(id) && !BUNDLED_PACKAGES.test(id)),
  logLevel: 'warn',
});
try {
  rmSync(out, { recursive: true, force: true });
  await bundle.write({
    dir: out,
    format: 'esm',
    entryFileNames: '[name].js',
    chunkFileNames: 'chunks/[name]-[hash].js',
  });
} finally {
  await bundle.close();
}
