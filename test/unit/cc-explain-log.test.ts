/**
 * The explain log's records (src/cli/cc/explain.ts): each carries the inputs of the last lookup
 * with another direct key, read from the record before it — whatever that file holds, a record
 * is written and no error escapes; and a cleared cache folder is made again.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { KeyInputs } from '../../src/cli/cc/cache-key.js';
import {
  EXPLAIN_DIR,
  ExplainLog,
  explain,
  explainRecord,
  type ExplainRecord,
} from '../../src/cli/cc/explain.js';

const root = mkdtempSync(join(tmpdir(), 'muster-explain-log-'));
after(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
const newCacheDir = (): string => join(root, `cache-${++dirs}`);

const sha = (c: string): string => c.repeat(64);

function lookup(direct: string | null, args: string[]): Omit<ExplainRecord, 'previousInputs'> {
  const inputs: KeyInputs | null =
    direct === null
      ? null
      : [
          { name: 'compiler', value: sha('c') },
          { name: 'args', value: args },
        ];
  return {
    at: new Date().toISOString(),
    cwd: '/src',
    output: 'a.o',
    source: 'a.c',
    command: `gcc ${args.join(' ')}`,
    outcome: 'miss',
    tier: null,
    reasons: [],
    direct,
    inputs,
    manifestLines: 0,
    mismatch: [],
  };
}

/** The one record file of a cache dir with one object recorded. */
function recordFileOf(cacheDir: string): string {
  const dir = join(cacheDir, EXPLAIN_DIR);
  const names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  assert.equal(names.length, 1, `one record in ${dir}`);
  return join(dir, names[0] ?? '');
}

describe('explain log', () => {
  it('a record names the inputs of the lookup before it with another direct key', async () => {
    const cacheDir = newCacheDir();
    const log = new ExplainLog(cacheDir);
    await log.record(lookup(sha('1'), ['-O2', '-c', 'a.c']));
    const first = await explainRecord(cacheDir, 'a.o', '/src');
    assert.equal(first?.previousInputs, null, 'nothing before the first');

    await log.record(lookup(sha('2'), ['-O0', '-c', 'a.c']));
    const second = await explainRecord(cacheDir, 'a.o', '/src');
    assert.deepEqual(second?.previousInputs, first?.inputs, 'the key changed: the one before');

    // Same direct key again: the inputs before the change stay the ones to compare with.
    await log.record(lookup(sha('2'), ['-O0', '-c', 'a.c']));
    const third = await explainRecord(cacheDir, 'a.o', '/src');
    assert.deepEqual(third?.previousInputs, first?.inputs);
    assert.match(await explain(cacheDir, 'a.o', '/src'), /args: added -O0; removed -O2/);
  });

  it('whatever the record before holds, the next is written without it', async () => {
    const cacheDir = newCacheDir();
    const log = new ExplainLog(cacheDir);
    await log.record(lookup(sha('1'), ['-c', 'a.c']));
    const file = recordFileOf(cacheDir);
    const bad = [
      'not json',
      '[]',
      'null',
      JSON.stringify({ direct: 7, inputs: null, previousInputs: null }),
      JSON.stringify({ direct: sha('1'), inputs: 'args', previousInputs: null }),
      JSON.stringify({
        direct: sha('1'),
        inputs: [{ name: 'args', value: [1] }],
        previousInputs: null,
      }),
      JSON.stringify({ direct: sha('1'), inputs: [{ value: 'x' }], previousInputs: null }),
      JSON.stringify({ direct: sha('1'), inputs: null, previousInputs: [null] }),
    ];
    for (const content of bad) {
      writeFileSync(file, content);
      await log.record(lookup(sha('2'), ['-c', 'a.c']));
      const rec = JSON.parse(readFileSync(file, 'utf8')) as ExplainRecord;
      assert.equal(rec.direct, sha('2'), `written over ${content}`);
      assert.equal(rec.previousInputs, null, `nothing taken from ${content}`);
    }
  });

  it('--explain takes no record whose key inputs are not key inputs', async () => {
    const cacheDir = newCacheDir();
    await new ExplainLog(cacheDir).record(lookup(sha('1'), ['-c', 'a.c']));
    const file = recordFileOf(cacheDir);
    const good = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    for (const inputs of ['args', [{ name: 'args', value: [1] }], [{ value: 'x' }], [null]]) {
      writeFileSync(file, JSON.stringify({ ...good, inputs }));
      assert.equal(await explainRecord(cacheDir, 'a.o', '/src'), null, JSON.stringify(inputs));
    }
    writeFileSync(file, JSON.stringify(good));
    assert.equal((await explainRecord(cacheDir, 'a.o', '/src'))?.direct, sha('1'));
  });

  it('a record that is not a file (a FIFO) is neither read nor waited on: it is replaced', async () => {
    const cacheDir = newCacheDir();
    const log = new ExplainLog(cacheDir);
    await log.record(lookup(sha('1'), ['-c', 'a.c']));
    const file = recordFileOf(cacheDir);
    rmSync(file);
    execFileSync('mkfifo', [file]);
    // Reading a FIFO nobody writes would block this process for good.
    await log.record(lookup(sha('2'), ['-c', 'a.c']));
    const rec = JSON.parse(readFileSync(file, 'utf8')) as ExplainRecord;
    assert.equal(rec.direct, sha('2'));
    assert.equal(rec.previousInputs, null);
  });

  it('makes its folder again when the cache was cleared meanwhile', async () => {
    const cacheDir = newCacheDir();
    const log = new ExplainLog(cacheDir);
    await log.record(lookup(sha('1'), ['-c', 'a.c']));
    rmSync(cacheDir, { recursive: true, force: true });
    await log.record(lookup(sha('2'), ['-c', 'a.c']));
    const rec = await explainRecord(cacheDir, 'a.o', '/src');
    assert.equal(rec?.direct, sha('2'));
    assert.equal(rec?.previousInputs, null, 'the record before went with the folder');
  });
});
