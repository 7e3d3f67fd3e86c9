/**
 * The compile cache's small-file directory stays bounded: the toolchain ids remembered across
 * services (least recently used out). (The explain records are rows of the tier's database:
 * cc-explain-log.test.ts.)
 */
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { keepNewest } from '../../src/cli/cc/trim-dir.js';
import { MAX_ON_DISK, ToolchainIds } from '../../src/cli/cc/toolchain-ids.js';
import type { Toolchain } from '../../src/cli/cc/toolchain.js';

const hex = (n: number): string => n.toString(16).padStart(64, '0');
const root = mkdtempSync(join(tmpdir(), 'muster-cc-trim-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** `count` files named `<hex>.json` in `dir`, stamped an hour apart (the first the oldest). */
function fill(dir: string, count: number): string[] {
  mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${hex(i)}.json`;
    writeFileSync(join(dir, name), '{}');
    const t = new Date(Date.now() - (count + 10 - i) * 3_600_000);
    utimesSync(join(dir, name), t, t);
    names.push(name);
  }
  return names;
}

describe('bounded cache directories', () => {
  it('keepNewest keeps the most recently used files of the name, others untouched', async () => {
    const dir = join(root, 'plain');
    const names = fill(dir, 5);
    writeFileSync(join(dir, 'README'), 'not a record');
    await keepNewest(dir, /\.json$/, 3);
    assert.deepEqual(readdirSync(dir).sort(), ['README', ...names.slice(2)].sort());
    await keepNewest(dir, /\.json$/, 3);
    assert.equal(readdirSync(dir).length, 4, 'at the bound: nothing more goes');
  });

  it('remembers at most MAX_ON_DISK toolchain ids, the least recently used out', async () => {
    const dir = join(root, 'toolchain-ids');
    const old = fill(dir, MAX_ON_DISK);
    const compiler = join(root, 'gcc');
    writeFileSync(compiler, '#!/bin/sh\n', { mode: 0o755 });
    let discovered = 0;
    const discover = async (): Promise<Toolchain> => {
      discovered++;
      return {
        id: hex(999),
        driver: 'bin/gcc',
        triple: 'x86_64-linux-gnu',
        version: '12.2.0',
        glibc: '2.34',
        files: [],
      };
    };

    assert.equal((await new ToolchainIds(discover, dir).of(compiler, '/usr/bin'))?.id, hex(999));
    assert.equal(discovered, 1);
    const files = readdirSync(dir);
    assert.equal(files.length, MAX_ON_DISK);
    assert.ok(!files.includes(old[0]!), 'the least recently used went');
    const mine = files.find((n) => !old.includes(n));
    assert.ok(mine !== undefined, 'what was found is remembered');

    // A later service takes it from disk, and that use stamps it.
    const long = new Date(Date.now() - 1000 * 3_600_000);
    utimesSync(join(dir, mine), long, long);
    assert.equal((await new ToolchainIds(discover, dir).of(compiler, '/usr/bin'))?.id, hex(999));
    assert.equal(discovered, 1, 'not found again');
    assert.ok(statSync(join(dir, mine)).mtimeMs > long.getTime() + 3_600_000);
  });
});
