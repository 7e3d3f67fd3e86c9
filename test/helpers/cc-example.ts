/**
 * examples/c-make for the compile tests: fresh copies whose files are set a minute back, since a
 * file changed in the last two seconds is never cached (its content may still be changing: the
 * too-new rule of src/cli/cc/file-hashes.ts) and a test edits and builds at once. The copies are
 * temp dirs of temp-dirs.ts: cleanup() removes them.
 */
import { cp, readdir, utimes } from 'node:fs/promises';
import { setTimeout } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from './temp-dirs.js';

const example = fileURLToPath(new URL('../../../examples/c-make/', import.meta.url));

/** Sets the times of every file under `dir` a minute back. */
export async function backdate(dir: string): Promise<void> {
  const at = new Date(Date.now() - 60_000);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }))
    await utimes(join(entry.parentPath, entry.name), at, at);
}

/**
 * A fresh, backdated copy of examples/c-make (`<temp dir named prefix…>/c-make`), returned once
 * it is 2 s old: the copy and the backdating set every file's ctime to now, which nothing sets
 * back, and a compile that starts within 2 s of a file's change keeps nothing (the too-new rule
 * is judged against the compile's start) — a test that expects results kept must not race it.
 */
export async function copyOfExample(prefix: string): Promise<string> {
  const dir = join(await makeTempDir(prefix), 'c-make');
  await cp(example, dir, { recursive: true });
  await backdate(dir);
  await setTimeout(2100);
  return dir;
}
