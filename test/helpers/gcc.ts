/**
 * The real gcc for the cc-* unit tests that check Muster's reading of a command line against what
 * gcc itself does. CI installs gcc (`.ci/run`: `apt-get install -y gcc g++ make`); a test that
 * needs it fails with a clear message when it is missing, it never skips.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';

/** gcc's path, or a failed assertion that says how to get it. */
export function requireGcc(name: 'gcc' | 'g++' = 'gcc'): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  assert.ok(
    found.status === 0 && path !== '',
    `${name} is not installed: these tests check Muster against the real compiler ` +
      `(apt-get install -y gcc g++ make)`,
  );
  return path;
}

/** Runs gcc (throws with its stderr when it fails). */
export function runGcc(args: readonly string[], cwd: string, name: 'gcc' | 'g++' = 'gcc'): void {
  execFileSync(requireGcc(name), args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The words of one line of `gcc -###` output (its quoting: "…" with backslash escapes). */
export function splitHashLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    let word = '';
    if (line[i] === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\') i++;
        word += line[i] ?? '';
        i++;
      }
      i++;
    } else {
      while (i < line.length && line[i] !== ' ') word += line[i++] ?? '';
    }
    out.push(word);
  }
  return out;
}

/** The arguments gcc's driver gives cc1 (or cc1plus) for a command line (`gcc -### …`). */
export function cc1Args(
  args: readonly string[],
  cwd: string,
  name: 'gcc' | 'g++' = 'gcc',
): string[] {
  const run = spawnSync(requireGcc(name), ['-###', ...args], { cwd, encoding: 'utf8' });
  const line = run.stderr.split('\n').find((l) => /\/cc1(plus)? /.test(l));
  assert.ok(line !== undefined, `no cc1 line in gcc -### output:\n${run.stderr}`);
  return splitHashLine(line.trim()).slice(1);
}
