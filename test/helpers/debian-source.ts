/**
 * Real C and C++ projects for the compile tests and benchmarks, from Debian's source packages
 * (design §7): a private apt configuration (its own sources.list with a `deb-src` line for this
 * machine's release, its own lists and cache, no lock on the system's), so nothing under /etc/apt
 * changes and apt still checks every file against the signed release files. Downloads are kept
 * in `$MUSTER_TEST_SOURCES` (default `~/.cache/muster-test-sources`) and reused; each caller gets
 * a fresh copy of the upstream tree (the `orig` tarball: Debian's patches are not applied).
 *
 * No network, no apt-get: the caller's test fails with apt's own message. It is never skipped.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** Lists older than this are fetched again (a point release may have replaced a version). */
const LISTS_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
const LOCK_WAIT_MS = 10 * 60 * 1000;

function sourcesRoot(): string {
  return process.env['MUSTER_TEST_SOURCES'] ?? join(homedir(), '.cache', 'muster-test-sources');
}

async function codename(): Promise<string> {
  const text = await readFile('/etc/os-release', 'utf8');
  const match = /^VERSION_CODENAME=(\w+)$/m.exec(text);
  if (match?.[1] === undefined) throw new Error('/etc/os-release names no VERSION_CODENAME');
  return match[1];
}

function aptOptions(apt: string): string[] {
  return [
    '-o',
    `Dir::Etc::SourceList=${join(apt, 'sources.list')}`,
    '-o',
    'Dir::Etc::SourceParts=/nonexistent',
    '-o',
    `Dir::State::Lists=${join(apt, 'lists')}`,
    '-o',
    `Dir::Cache=${join(apt, 'cache')}`,
    '-o',
    'Debug::NoLocking=1',
    '-qq',
  ];
}

/** One process at a time per download directory (test files run in parallel). */
async function withLock<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const lock = join(dir, '.lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > LOCK_WAIT_MS) await rmdir(lock).catch(() => undefined);
      if (Date.now() > deadline)
        throw new Error(`${lock} held for over 10 minutes`, { cause: err });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    return await work();
  } finally {
    await rmdir(lock);
  }
}

async function updateLists(apt: string): Promise<void> {
  const lists = join(apt, 'lists');
  const fresh = await readdir(lists)
    .then(async (names) => {
      const sources = names.find((name) => name.endsWith('_Sources'));
      if (sources === undefined) return false;
      return Date.now() - (await stat(join(lists, sources))).mtimeMs < LISTS_MAX_AGE_MS;
    })
    .catch(() => false);
  if (fresh) return;
  await mkdir(join(lists, 'partial'), { recursive: true });
  await mkdir(join(apt, 'cache', 'archives', 'partial'), { recursive: true });
  await writeFile(
    join(apt, 'sources.list'),
    `deb-src http://deb.debian.org/debian ${await codename()} main\n`,
  );
  await run('apt-get', [...aptOptions(apt), 'update'], { timeout: 5 * 60 * 1000 });
}

/** The path of the package's upstream (`orig`) tarball, downloaded once. */
export async function debianOrigTarball(pkg: string): Promise<string> {
  if (!/^[a-z0-9][a-z0-9.+-]*$/.test(pkg)) throw new Error(`not a package name: ${pkg}`);
  const root = sourcesRoot();
  await mkdir(root, { recursive: true });
  return withLock(root, async () => {
    const dir = join(root, 'packages', pkg);
    const find = async (): Promise<string | undefined> =>
      (await readdir(dir).catch(() => [] as string[])).find((name) =>
        /\.orig\.tar\.\w+$/.test(name),
      );
    let tarball = await find();
    if (tarball === undefined) {
      const apt = join(root, 'apt');
      await updateLists(apt);
      await mkdir(dir, { recursive: true });
      await run('apt-get', [...aptOptions(apt), 'source', '--download-only', pkg], {
        cwd: dir,
        timeout: 10 * 60 * 1000,
      });
      tarball = await find();
      if (tarball === undefined) throw new Error(`apt-get source ${pkg} gave no orig tarball`);
    }
    return join(dir, tarball);
  });
}

/** A fresh copy of the package's upstream tree under `dest`; returns the tree's directory. */
export async function debianSourceTree(pkg: string, dest: string): Promise<string> {
  const tarball = await debianOrigTarball(pkg);
  await rm(dest, { recursive: true, force: true });
  await mkdir(dest, { recursive: true });
  await run('tar', ['xf', tarball, '-C', dest], { timeout: 5 * 60 * 1000 });
  const entries = await readdir(dest);
  const only = entries.length === 1 ? entries[0] : undefined;
  if (only !== undefined && (await stat(join(dest, only))).isDirectory()) return join(dest, only);
  return dest;
}
