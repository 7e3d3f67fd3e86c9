/** Writes small user extensions into temp dirs, for tests that need distinct versions. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * An extension "probe" whose `whoami` operation returns the given version marker and a
 * `slow` operation that waits `input.ms` and then returns the marker.
 */
export async function writeProbeExtension(
  dir: string,
  marker: string,
  name = 'probe',
): Promise<string> {
  const folder = join(dir, `${name}-${marker}`);
  await mkdir(folder, { recursive: true });
  await writeFile(
    join(folder, 'muster-extension.json'),
    JSON.stringify({ name, version: marker, main: 'index.js' }),
  );
  await writeFile(join(folder, 'package.json'), JSON.stringify({ type: 'module' }));
  await writeFile(
    join(folder, 'index.js'),
    `import { readFileSync } from 'node:fs';
const marker = ${JSON.stringify(marker)};
export const operations = {
  async whoami(input, ctx) {
    // Read the marker back from this extension's own file on disk, so a version swapped under
    // a running host would show.
    const onDisk = readFileSync(new URL('./marker.txt', import.meta.url), 'utf8');
    ctx.stdout(marker + '\\n');
    return { marker, onDisk, pid: process.pid };
  },
  async slow(input, ctx) {
    await new Promise((resolve) => setTimeout(resolve, input?.ms ?? 100));
    return { marker };
  },
};
`,
  );
  await writeFile(join(folder, 'marker.txt'), marker);
  return folder;
}
