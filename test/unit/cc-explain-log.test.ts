/**
 * The explain log's records (src/cli/cc/explain.ts, kept in the local tier's database): each
 * carries the inputs of the last lookup with another direct key, read from the record before it
 * — whatever that row holds, a record is written and no error escapes; `--explain` finds a record
 * by object or by source, and takes none that is not whole; the records stay bounded; a cleared
 * cache is made again; the earlier layout's folder of record files goes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { KeyInputs } from '../../src/cli/cc/cache-key.js';
import {
  ExplainLog,
  MAX_RECORDS,
  explain,
  explainRecord,
  type ExplainRecord,
} from '../../src/cli/cc/explain.js';
import { LocalTier, TIER_DB_NAME } from '../../src/cli/cc/local-tier.js';

const root = mkdtempSync(join(tmpdir(), 'muster-explain-log-'));
after(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
const tiers: LocalTier[] = [];
after(() => {
  for (const tier of tiers) tier.close();
});
/** A new cache dir and its tier (closed after the tests). */
function newTier(): LocalTier {
  const tier = new LocalTier({ dir: join(root, `cache-${++dirs}`) });
  tiers.push(tier);
  return tier;
}

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

/** Puts `body` as a.o's stored record, as another writer (or a damaged row) might have. */
function storeBody(tier: LocalTier, body: string): void {
  tier.putExplain({ object: '/src/a.o', source: '/src/a.c', at: new Date().toISOString(), body });
  tier.flush();
}

/** `log.record(rec)`, written to the database at once. */
function recordNow(tier: LocalTier, log: ExplainLog, rec: Parameters<ExplainLog['record']>[0]) {
  log.record(rec);
  tier.flush();
}

/** A database of the schema made before the explain table existed (the previous release's). */
async function withoutExplainTable(tier: LocalTier): Promise<void> {
  await tier.putBlob(Buffer.from('made before'));
  tier.close();
  const db = new Database(join(tier.dir, TIER_DB_NAME));
  db.exec('DROP TABLE explain');
  db.close();
}

describe('explain log', () => {
  it('a record names the inputs of the lookup before it with another direct key', async () => {
    const tier = newTier();
    const log = new ExplainLog(tier);
    recordNow(tier, log, lookup(sha('1'), ['-O2', '-c', 'a.c']));
    const first = await explainRecord(tier.dir, 'a.o', '/src');
    assert.equal(first?.previousInputs, null, 'nothing before the first');

    recordNow(tier, log, lookup(sha('2'), ['-O0', '-c', 'a.c']));
    const second = await explainRecord(tier.dir, 'a.o', '/src');
    assert.deepEqual(second?.previousInputs, first?.inputs, 'the key changed: the one before');

    // Same direct key again, before the one before is written: the inputs before the change
    // stay the ones to compare with.
    log.record(lookup(sha('2'), ['-O0', '-c', 'a.c']));
    log.record(lookup(sha('2'), ['-O0', '-c', 'a.c']));
    tier.flush();
    const third = await explainRecord(tier.dir, 'a.o', '/src');
    assert.deepEqual(third?.previousInputs, first?.inputs);
    assert.match(await explain(tier.dir, 'a.o', '/src'), /args: added -O0; removed -O2/);
    // By its source too, from another directory.
    assert.match(await explain(tier.dir, '../src/a.c', '/other'), /args: added -O0; removed -O2/);

    // Two records queued before either is written: the second compares with the first.
    log.record(lookup(sha('3'), ['-O1', '-c', 'a.c']));
    log.record(lookup(sha('4'), ['-O3', '-c', 'a.c']));
    tier.flush();
    assert.match(await explain(tier.dir, 'a.o', '/src'), /args: added -O3; removed -O1/);
  });

  it('close writes what is queued; a cleared cache dir is not made again for it', async () => {
    const tier = newTier();
    const log = new ExplainLog(tier);
    log.record(lookup(sha('1'), ['-c', 'a.c']));
    tier.close();
    assert.equal((await explainRecord(tier.dir, 'a.o', '/src'))?.direct, sha('1'));

    const cleared = newTier();
    const clearedLog = new ExplainLog(cleared);
    recordNow(cleared, clearedLog, lookup(sha('1'), ['-c', 'a.c']));
    clearedLog.record(lookup(sha('2'), ['-c', 'a.c']));
    rmSync(cleared.dir, { recursive: true, force: true });
    await new Promise((r) => setTimeout(r, 300)); // the queue's own write (0.1 s) comes and goes
    assert.equal(existsSync(cleared.dir), false, 'not made again by the queued write');
    clearedLog.record(lookup(sha('3'), ['-c', 'a.c'])); // (its read opens a new database)
    rmSync(cleared.dir, { recursive: true, force: true });
    cleared.close();
    assert.equal(existsSync(cleared.dir), false, 'nor by close');
  });

  it('a record never replaces a newer one of the same object (another process’s)', async () => {
    const tier = newTier();
    const other = new LocalTier({ dir: tier.dir });
    tiers.push(other);
    tier.putExplain({
      object: '/src/a.o',
      source: '/src/a.c',
      at: '2026-01-02T00:00:00.000Z',
      body: '"new"',
    });
    tier.flush();
    other.putExplain({
      object: '/src/a.o',
      source: '/src/a.c',
      at: '2026-01-01T00:00:00.000Z',
      body: '"old"',
    });
    other.flush();
    assert.equal(tier.explainOf('/src/a.o')?.body, '"new"');
    other.putExplain({
      object: '/src/a.o',
      source: '/src/b.c',
      at: '2026-01-03T00:00:00.000Z',
      body: '"newer"',
    });
    other.flush();
    assert.deepEqual(tier.explainOf('/src/a.o'), {
      object: '/src/a.o',
      source: '/src/b.c',
      at: '2026-01-03T00:00:00.000Z',
      body: '"newer"',
    });
  });

  it('records reach the database by themselves, soon', async () => {
    const tier = newTier();
    new ExplainLog(tier).record(lookup(sha('1'), ['-c', 'a.c']));
    let rec = null;
    for (let i = 0; i < 200 && rec === null; i++) {
      await new Promise((r) => setTimeout(r, 10));
      rec = await explainRecord(tier.dir, 'a.o', '/src');
    }
    assert.equal(rec?.direct, sha('1'));
  });

  it('whatever the record before holds, the next is written without it', async () => {
    const tier = newTier();
    const log = new ExplainLog(tier);
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
      'x'.repeat(8 * 1024 * 1024 + 1),
    ];
    for (const content of bad) {
      storeBody(tier, content);
      recordNow(tier, log, lookup(sha('2'), ['-c', 'a.c']));
      const rec = JSON.parse(tier.explainOf('/src/a.o')?.body ?? 'null') as ExplainRecord;
      assert.equal(rec.direct, sha('2'), `written over ${content.slice(0, 80)}`);
      assert.equal(rec.previousInputs, null, `nothing taken from ${content.slice(0, 80)}`);
    }
  });

  it('--explain takes no record whose key inputs are not key inputs', async () => {
    const tier = newTier();
    recordNow(tier, new ExplainLog(tier), lookup(sha('1'), ['-c', 'a.c']));
    const good = JSON.parse(tier.explainOf('/src/a.o')?.body ?? 'null') as Record<string, unknown>;
    for (const inputs of ['args', [{ name: 'args', value: [1] }], [{ value: 'x' }], [null]]) {
      storeBody(tier, JSON.stringify({ ...good, inputs }));
      assert.equal(await explainRecord(tier.dir, 'a.o', '/src'), null, JSON.stringify(inputs));
      assert.equal(await explainRecord(tier.dir, 'a.c', '/src'), null, 'nor by its source');
    }
    storeBody(tier, JSON.stringify(good));
    assert.equal((await explainRecord(tier.dir, 'a.o', '/src'))?.direct, sha('1'));
  });

  it('--explain SOURCE takes the newest whole record compiled from it', async () => {
    const tier = newTier();
    const log = new ExplainLog(tier);
    log.record({ ...lookup(sha('1'), ['-c', 'a.c']), at: '2026-01-01T00:00:00.000Z' });
    log.record({
      ...lookup(sha('2'), ['-c', 'a.c', '-o', 'b.o']),
      output: 'b.o',
      at: '2026-01-02T00:00:00.000Z',
    });
    tier.flush();
    assert.equal((await explainRecord(tier.dir, 'a.c', '/src'))?.output, 'b.o');
    assert.equal((await explainRecord(tier.dir, 'a.o', '/src'))?.output, 'a.o');
    assert.equal(await explainRecord(tier.dir, 'c.c', '/src'), null);
    // The newest is damaged: the one before it answers.
    tier.putExplain({
      object: '/src/c.o',
      source: '/src/a.c',
      at: '2026-01-03T00:00:00.000Z',
      body: '{"not":"a record"}',
    });
    tier.flush();
    assert.equal((await explainRecord(tier.dir, 'a.c', '/src'))?.output, 'b.o');
  });

  it('with no cache yet, --explain finds nothing and makes nothing', async () => {
    const dir = join(root, 'never-used');
    assert.equal(await explainRecord(dir, 'a.o', '/src'), null);
    assert.match(await explain(dir, 'a.o', '/src'), /no compile of it recorded/);
    assert.equal(existsSync(dir), false);
  });

  it('--explain reads without changing the cache dir (no table made, no folder removed)', async () => {
    const tier = newTier();
    await withoutExplainTable(tier);
    mkdirSync(join(tier.dir, 'explain'));
    // SQLite's own -wal and -shm files aside.
    const listing = (): string[] =>
      readdirSync(tier.dir)
        .filter((n) => !n.endsWith('-wal') && !n.endsWith('-shm'))
        .sort();
    const before = listing();
    assert.equal(await explainRecord(tier.dir, 'a.o', '/src'), null, 'no table: no record');
    assert.deepEqual(listing(), before);
    const db = new Database(join(tier.dir, TIER_DB_NAME), { readonly: true });
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE name = 'explain'").all();
    db.close();
    assert.deepEqual(tables, [], 'the table is the service’s to make');
    assert.ok(existsSync(join(tier.dir, 'explain')), 'the folder is the service’s to remove');
  });

  it('a removed database is made again; the record before went with it', async () => {
    const tier = newTier();
    const log = new ExplainLog(tier);
    recordNow(tier, log, lookup(sha('1'), ['-c', 'a.c']));
    rmSync(tier.dir, { recursive: true, force: true });
    recordNow(tier, log, lookup(sha('2'), ['-c', 'a.c']));
    const rec = await explainRecord(tier.dir, 'a.o', '/src');
    assert.equal(rec?.direct, sha('2'));
    assert.equal(rec?.previousInputs, null, 'the record before went with the database');
  });

  it('a database made before the table gets it; one locked meanwhile works on without', async () => {
    const tier = newTier();
    await withoutExplainTable(tier);
    // Another process holds the write lock: the open cannot add the table.
    const holder = new Database(join(tier.dir, TIER_DB_NAME));
    holder.exec('BEGIN IMMEDIATE');
    const locked = new LocalTier({ dir: tier.dir, busyTimeoutMs: 50 });
    tiers.push(locked);
    const before = createHash('sha256').update('made before').digest('hex');
    assert.deepEqual(await locked.getBlob(before), Buffer.from('made before'), 'reads go on');
    recordNow(locked, new ExplainLog(locked), lookup(sha('1'), ['-c', 'a.c']));
    assert.equal(locked.explainOf('/src/a.o'), null, 'the record was dropped, no error');
    holder.exec('ROLLBACK');
    holder.close();
    locked.close();

    const upgraded = new LocalTier({ dir: tier.dir });
    tiers.push(upgraded);
    recordNow(upgraded, new ExplainLog(upgraded), lookup(sha('1'), ['-c', 'a.c']));
    assert.equal((await explainRecord(tier.dir, 'a.o', '/src'))?.direct, sha('1'));
    assert.deepEqual(await upgraded.getBlob(before), Buffer.from('made before'), 'nothing lost');
  });

  it('a record after the service closed its tier is dropped quietly', async () => {
    const tier = newTier();
    const log = new ExplainLog(tier);
    tier.close();
    log.record(lookup(sha('1'), ['-c', 'a.c']));
    assert.equal(tier.explainOf('/src/a.o'), null, 'not kept in memory either');
    tier.flush();
    assert.equal(await explainRecord(tier.dir, 'a.o', '/src'), null);
  });

  it('--explain: a corrupt database has no records and stays; an unreadable one is an error', async () => {
    const tier = newTier();
    recordNow(tier, new ExplainLog(tier), lookup(sha('1'), ['-c', 'a.c']));
    tier.close();
    const file = join(tier.dir, TIER_DB_NAME);
    rmSync(`${file}-wal`, { force: true });
    rmSync(`${file}-shm`, { force: true });
    writeFileSync(file, 'not a database, long enough to be read as a header '.repeat(100));
    assert.equal(await explainRecord(tier.dir, 'a.o', '/src'), null);
    assert.ok(existsSync(file), 'the service sets it aside, not --explain');
    assert.equal(existsSync(`${file}.corrupt`), false);

    rmSync(file);
    mkdirSync(file); // a folder where the database should be
    await assert.rejects(explainRecord(tier.dir, 'a.o', '/src'), {
      code: 'LOCAL_CACHE_UNREADABLE',
    });
  });

  it('keeps the newest records, from its first record on', async () => {
    const tier = newTier();
    for (let i = 0; i < MAX_RECORDS + 2; i++)
      tier.putExplain({
        object: `/src/o${i}.o`,
        source: `/src/o${i}.c`,
        at: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
        body: '{}',
      });
    recordNow(tier, new ExplainLog(tier), {
      ...lookup(sha('1'), ['-c', 'a.c']),
      at: '2026-06-01T00:00:00.000Z',
    });
    for (const old of [0, 1, 2]) assert.equal(tier.explainOf(`/src/o${old}.o`), null, `${old} out`);
    assert.notEqual(tier.explainOf(`/src/o3.o`), null, 'the oldest kept');
    assert.notEqual(tier.explainOf('/src/a.o'), null, 'the new record is kept');
    assert.equal((await explainRecord(tier.dir, 'a.o', '/src'))?.direct, sha('1'));
  });

  it('removes the earlier layout’s folder of record files, and folders left to remove', async () => {
    const tier = newTier();
    await tier.putBlob(Buffer.from('made before'));
    tier.close();
    mkdirSync(join(tier.dir, 'explain'));
    writeFileSync(join(tier.dir, 'explain', `${sha('a')}.json`), '{}');
    mkdirSync(join(tier.dir, 'blobs.gone-0123456789ab', 'cd'), { recursive: true });
    const again = new LocalTier({ dir: tier.dir });
    tiers.push(again);
    recordNow(again, new ExplainLog(again), lookup(sha('1'), ['-c', 'a.c']));
    const left = (): string[] => readdirSync(tier.dir).filter((n) => !n.startsWith(TIER_DB_NAME));
    for (let i = 0; i < 200 && left().length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(left(), [], 'only the database is left');
  });
});
