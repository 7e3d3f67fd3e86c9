/**
 * With `-MMD` the compile's depfile leaves out system headers, so a manifest cannot list them.
 * They are covered instead by a fingerprint in the direct key (design §4): the compiler's
 * default include directories (`<compiler> -x LANG -E -v /dev/null`), walked once per service
 * life, every file's path, size, mtime and inode. A system header that changes (a package
 * upgrade) changes the fingerprint at the next service start; the daemon exits when idle.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Language } from './languages.js';

const run = promisify(execFile);
/** A tree bigger than this is not fingerprinted (then -MMD compiles are not cached). */
const MAX_FILES = 200_000;

/** The `#include <...>` search list in the output of `-E -v`. */
export function parseSearchList(stderr: string): string[] {
  const lines = stderr.split('\n');
  const start = lines.findIndex((l) => l.startsWith('#include <...> search starts here:'));
  if (start < 0) return [];
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith(' ')) break;
    out.push(line.trim().replace(/ \(framework directory\)$/, ''));
  }
  return out;
}

/** Every file under `dir` as `path\0size\0mtime\0inode`; false past MAX_FILES. Each
 * directory's entries are looked at together (the walk is on a `muster build`'s first -MMD
 * compile: one stat after another took seconds on a loaded machine). */
async function walk(dir: string, into: string[], seen: Set<string>): Promise<boolean> {
  const real = await realpath(dir).catch(() => null);
  if (real === null || seen.has(real)) return true;
  seen.add(real);
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const stats = await Promise.all(
    entries.map((entry) =>
      entry.isDirectory()
        ? Promise.resolve(null)
        : stat(join(dir, entry.name), { bigint: true }).catch(() => null),
    ),
  );
  const subdirs: string[] = [];
  for (const [i, entry] of entries.entries()) {
    const path = join(dir, entry.name);
    const s = stats[i];
    if (entry.isDirectory() || s?.isDirectory() === true) subdirs.push(path);
    else if (s !== null && s !== undefined) {
      into.push(`${path}\0${s.size}\0${s.mtimeNs}\0${s.ino}`);
      if (into.length > MAX_FILES) return false;
    }
  }
  for (const sub of subdirs) if (!(await walk(sub, into, seen))) return false;
  return true;
}

export class SystemHeaders {
  readonly #known = new Map<string, Promise<string | null>>();

  /** The fingerprint of the compiler's system include tree for a language, or null. */
  fingerprint(
    compiler: string,
    toolchainId: string,
    language: Language,
    env: Readonly<Record<string, string>>,
  ): Promise<string | null> {
    const key = `${toolchainId}\0${language}`;
    let known = this.#known.get(key);
    if (known === undefined) {
      known = this.#make(compiler, language, env);
      this.#known.set(key, known);
    }
    return known;
  }

  async #make(
    compiler: string,
    language: Language,
    env: Readonly<Record<string, string>>,
  ): Promise<string | null> {
    let stderr: string;
    try {
      const out = await run(compiler, ['-x', language, '-E', '-v', '/dev/null'], {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...env, LC_ALL: 'C' },
        maxBuffer: 4 * 1024 * 1024,
      });
      stderr = out.stderr;
    } catch {
      return null;
    }
    const dirs = parseSearchList(stderr);
    if (dirs.length === 0) return null;
    const files: string[] = [];
    const seen = new Set<string>();
    for (const dir of dirs) if (!(await walk(dir, files, seen))) return null;
    files.sort();
    const hash = createHash('sha256').update(dirs.join('\0')).update('\n');
    for (const f of files) hash.update(f).update('\n');
    return hash.digest('hex');
  }
}
