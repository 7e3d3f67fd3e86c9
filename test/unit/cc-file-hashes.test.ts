import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileHashes, type FileHashesDeps } from '../../src/cli/cc/file-hashes.js';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

describe('file hashes by stat', () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-cc-hashes-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  /** A clock the test moves: starts an hour after the files' (fixed) times. */
  const fileTime = new Date('2026-01-01T00:00:00Z');
  let now = BigInt(fileTime.getTime() + 3_600_000) * 1_000_000n;
  const deps = (extra: Partial<FileHashesDeps> = {}): FileHashesDeps => ({
    stat: (p) => stat(p, { bigint: true }),
    readFile: (p) => readFile(p),
    now: () => now,
    maxEntries: 100,
    ...extra,
  });
  /** Writes a file with an old mtime; its ctime is the real now, so the clock must pass it. */
  function write(name: string, content: string): string {
    const path = join(dir, name);
    writeFileSync(path, content);
    utimesSync(path, fileTime, fileTime);
    const ctime = statSync(path, { bigint: true }).ctimeNs;
    if (now < ctime + 10_000_000_000n) now = ctime + 10_000_000_000n;
    return path;
  }

  it('reads a file once while it is unchanged', async () => {
    const hashes = new FileHashes(deps());
    const path = write('a.h', 'int a;\n');
    const first = await hashes.hash(path);
    assert.deepEqual(first, { sha256: sha('int a;\n'), size: 7, tooNew: false, timeMacros: [] });
    assert.deepEqual(await hashes.hash(path), first);
    assert.equal(hashes.reads, 1);
    write('a.h', 'int b;\n');
    assert.equal((await hashes.hash(path))?.sha256, sha('int b;\n'));
    assert.equal(hashes.reads, 2);
  });

  it('a file changed within 2 s is hashed every time and reported too new', async () => {
    const hashes = new FileHashes(deps());
    const path = write('new.h', 'int n;\n');
    const mtime = statSync(path, { bigint: true }).ctimeNs;
    now = mtime + 1_000_000_000n;
    assert.equal((await hashes.hash(path))?.tooNew, true);
    assert.equal((await hashes.hash(path))?.tooNew, true);
    assert.equal(hashes.reads, 2);
    assert.equal(hashes.size, 0);
    now = mtime + 2_000_000_000n;
    assert.equal((await hashes.hash(path))?.tooNew, false);
    assert.equal(hashes.size, 1);
  });

  it("with a compile's start: a file changed at or after start − 2 s is too new, however late it is hashed", async () => {
    const hashes = new FileHashes(deps());
    const old = write('old.h', 'int old;\n');
    const during = write('during.h', 'int during;\n');
    // The clock at the compile's start (every file's ctime is well before it: write() saw to it).
    const start = now;
    // Rewritten while the compile ran: its mtime is 1 s after the start.
    const inCompile = new Date(Number(start / 1_000_000n) + 1_000);
    utimesSync(during, inCompile, inCompile);
    // Hashed an hour later: the rule of "now" alone would take it.
    now = start + 3_600_000_000_000n;
    assert.equal((await hashes.hash(during))?.tooNew, false, 'a lookup takes it');
    assert.equal((await hashes.hash(during, start))?.tooNew, true, 'even though remembered');
    assert.equal((await new FileHashes(deps()).hash(during, start))?.tooNew, true);
    // One changed 1 s before the start is within the 2 s: too new as well.
    const before = new Date(Number(start / 1_000_000n) - 1_000);
    utimesSync(during, before, before);
    assert.equal((await hashes.hash(during, start))?.tooNew, true);
    // An old header is recorded.
    const got = await hashes.hash(old, start);
    assert.deepEqual(got, { sha256: sha('int old;\n'), size: 9, tooNew: false, timeMacros: [] });
    assert.equal(hashes.now(), now);
  });

  it('a file from the future is too new', async () => {
    const path = join(dir, 'future.h');
    writeFileSync(path, 'x');
    const later = new Date(Number(now / 1_000_000n) + 60_000);
    utimesSync(path, later, later);
    assert.equal((await new FileHashes(deps()).hash(path))?.tooNew, true);
  });

  it('a file that changes while it is read is too new', async () => {
    const path = write('racy.h', 'one');
    const hashes = new FileHashes(
      deps({
        readFile: async (p) => {
          const content = await readFile(p);
          writeFileSync(p, 'two, longer');
          return content;
        },
      }),
    );
    const got = await hashes.hash(path);
    assert.equal(got?.tooNew, true);
    assert.equal(hashes.size, 0);
  });

  it('missing files and directories have no hash', async () => {
    const hashes = new FileHashes(deps());
    assert.equal(await hashes.hash(join(dir, 'missing.h')), null);
    mkdirSync(join(dir, 'sub'));
    assert.equal(await hashes.hash(join(dir, 'sub')), null);
  });

  it('notes the time macros', async () => {
    const path = write('t.c', 'const char *s = __DATE__ " " __TIME__;\n');
    assert.deepEqual((await new FileHashes(deps()).hash(path))?.timeMacros, [
      '__DATE__',
      '__TIME__',
    ]);
  });

  it('forgets the oldest entry when full', async () => {
    const hashes = new FileHashes(deps({ maxEntries: 2 }));
    const paths = ['e1.h', 'e2.h', 'e3.h'].map((n) => write(n, n));
    for (const p of paths) await hashes.hash(p);
    assert.equal(hashes.size, 2);
    assert.equal(hashes.reads, 3);
    await hashes.hash(paths[2] ?? '');
    assert.equal(hashes.reads, 3);
    await hashes.hash(paths[0] ?? '');
    assert.equal(hashes.reads, 4);
  });
});
