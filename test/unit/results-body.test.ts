/**
 * POST /cache/results' body checked without zod (results-body.ts): what it accepts, the schema
 * accepts as well, with the same data; the rest goes to the schema, whose refusal is the route's.
 * Hand-picked breaks of a valid body, then seeded random ones.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { putCacheResultsBody } from '../../src/api/requests.js';
import { parseResultsBody, wellFormed } from '../../src/coordinator/api/results-body.js';
import { MusterError } from '../../src/protocol/errors.js';

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

function validBody(): Record<string, unknown> {
  return {
    results: [
      {
        key: sha('key-1'),
        entry: {
          outputs: [
            { name: 'object', sha256: sha('a.o'), size: 1184, mode: 0o644 },
            { name: 'depfile', sha256: sha('a.d'), size: 90, mode: 0o644 },
          ],
          stderr: { sha256: sha('warning'), size: 12 },
          exitCode: 0,
          toolchain: sha('gcc'),
          buildId: 3,
        },
        manifest: {
          direct: sha('direct-1'),
          includes: [
            ['/usr/include/stdio.h', sha('stdio.h')],
            ['lua.h', sha('lua.h')],
          ],
        },
      },
      {
        key: sha('key-2'),
        entry: {
          outputs: [{ name: 'object', sha256: sha('b.o'), size: 0, mode: 0o600 }],
          stderr: null,
          exitCode: 0,
          toolchain: sha('gcc'),
        },
      },
    ],
    blobs: [{ sha256: sha('a.o'), data: Buffer.from('object bytes').toString('base64') }],
  };
}

/** Both ways agree: the fast check accepts only what the schema accepts, with its data. */
function agree(value: unknown, what: string): void {
  const schema = putCacheResultsBody.safeParse(value);
  if (wellFormed(value)) {
    assert.ok(schema.success, `${what}: accepted without the schema, refused by it`);
    assert.deepEqual(parseResultsBody(value), schema.data, what);
  }
  if (!schema.success) {
    assert.throws(
      () => parseResultsBody(value),
      (err: unknown) => err instanceof MusterError && err.code === 'VALIDATION_FAILED',
      what,
    );
  }
}

/** A JSON container of the body, as the changes below reach it. */
type Node = Record<string, unknown> | unknown[];

/** The container at `path` of `body`. */
function at(body: unknown, path: readonly (string | number)[]): Node {
  let node = body as Node;
  for (const key of path) node = (node as Record<string, unknown>)[key] as Node;
  return node;
}

const R0 = ['results', 0];
const E0 = [...R0, 'entry'];
const O0 = [...E0, 'outputs', 0];
const M0 = [...R0, 'manifest'];
const I0 = [...M0, 'includes', 0];
const B0 = ['blobs', 0];

/** [what, the container's path, its member, the new value (undefined: deleted)]. */
type Change = [string, (string | number)[], string | number, unknown];

const many = <T>(n: number, value: T): T[] => Array.from({ length: n }, () => value);
const result2 = (): unknown => (validBody().results as unknown[])[1];
const blob0 = (): unknown => (validBody().blobs as unknown[])[0];

const BREAKS: Change[] = [
  ['an extra key', [], 'extra', 1],
  ['no results', [], 'results', []],
  ['results not an array', [], 'results', {}],
  ['65 results', [], 'results', many(65, result2())],
  ['a key not hex', R0, 'key', 'G'.repeat(64)],
  ['an upper-case key', R0, 'key', sha('x').toUpperCase()],
  ['a short key', R0, 'key', sha('x').slice(1)],
  ['an extra result key', R0, 'other', true],
  ['no entry', R0, 'entry', undefined],
  ['no outputs', E0, 'outputs', []],
  ['three outputs', [...E0, 'outputs'], 2, { name: 'object', sha256: sha('c'), size: 1, mode: 0 }],
  ['an output named else', O0, 'name', 'exe'],
  ['a negative size', O0, 'size', -1],
  ['a fractional size', O0, 'size', 1.5],
  ['a size as text', O0, 'size', '1'],
  ['an unsafe size', O0, 'size', 2 ** 60],
  ['mode 0o1000', O0, 'mode', 0o1000],
  ['an extra output key', O0, 'path', 'a.o'],
  ['no stderr', E0, 'stderr', undefined],
  ['a stderr without size', [...E0, 'stderr'], 'size', undefined],
  ['exit code 1', E0, 'exitCode', 1],
  ['exit code as text', E0, 'exitCode', '0'],
  ['no toolchain', E0, 'toolchain', undefined],
  ['build 0', E0, 'buildId', 0],
  ['build null', E0, 'buildId', null],
  ['an extra entry key', E0, 'kind', 'task'],
  ['a manifest without includes', M0, 'includes', undefined],
  ['a manifest of null', R0, 'manifest', null],
  ['an include of three', I0, 2, 'x'],
  ['an include of one', I0, 1, undefined],
  ['an empty include path', I0, 0, ''],
  ['a long include path', I0, 0, 'a'.repeat(4097)],
  ['an include hash not hex', I0, 1, 'x'],
  ['an include as object', [...M0, 'includes'], 0, { 0: 'a', 1: sha('a') }],
  ['20 001 includes', M0, 'includes', many(20_001, ['a', sha('a')])],
  ['an extra manifest key', M0, 'entry', sha('x')],
  ['blobs null', [], 'blobs', null],
  ['193 blobs', [], 'blobs', many(193, blob0())],
  ['blob data not base64', B0, 'data', 'not base64!'],
  ['blob data too long', B0, 'data', 'A'.repeat(1_398_104 + 4)],
  ['an extra blob key', B0, 'size', 1],
  ['a blob hash not hex', B0, 'sha256', 'z'],
];

const ACCEPTED: Change[] = [
  ['as sent', [], 'results', validBody().results],
  ['without blobs', [], 'blobs', undefined],
  ['no includes', M0, 'includes', []],
  ['mode 0o777', O0, 'mode', 0o777],
  ['64 results', [], 'results', many(64, result2())],
  ['blob data of the largest size', B0, 'data', 'A'.repeat(1_398_104)],
];

/** A valid body with one change made. */
function changed([, path, member, value]: Change): Record<string, unknown> {
  const body = validBody();
  const node = at(body, path) as Record<string | number, unknown>;
  if (value === undefined) {
    if (Array.isArray(node)) node.splice(Number(member), 1);
    else delete node[member];
  } else node[member] = value;
  return body;
}

describe('POST /cache/results: the body checked without zod', () => {
  it('accepts a valid body as the schema does, missing blobs as none', () => {
    for (const change of ACCEPTED) {
      const body = changed(change);
      assert.ok(wellFormed(body), change[0]);
      agree(body, change[0]);
    }
    const body = validBody();
    delete body.blobs;
    assert.deepEqual(parseResultsBody(body).blobs, []);
  });

  it('leaves every break to the schema, which refuses it', () => {
    for (const change of BREAKS) {
      const body = changed(change);
      const what = change[0];
      assert.equal(wellFormed(body), false, what);
      assert.equal(putCacheResultsBody.safeParse(body).success, false, what);
      agree(body, what);
    }
    for (const value of [null, [], 'text', 1, {}]) agree(value, JSON.stringify(value));
  });

  it('agrees with the schema on seeded random changes of a valid body', () => {
    // A small PRNG (mulberry32): the same changes on every run.
    let seed = 0x5eed;
    const random = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const junk: unknown[] = [
      null,
      0,
      -1,
      1.5,
      2 ** 53,
      '',
      'object',
      'depfile',
      sha('j'),
      [],
      {},
      [sha('a')],
      ['a', sha('a')],
      true,
      'QUJD',
      '====',
    ];
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    for (let round = 0; round < 3000; round++) {
      const body = validBody();
      // Walk down to a random container and replace, add or delete one of its members.
      let node = body as Node;
      for (let depth = 0; depth < 6; depth++) {
        const keys = Object.keys(node);
        if (keys.length === 0 || random() < 0.25) break;
        const next = (node as Record<string, unknown>)[pick(keys)];
        if (typeof next !== 'object' || next === null) break;
        node = next as Node;
      }
      const members = node as Record<string | number, unknown>;
      const keys = Object.keys(node);
      const action = random();
      if (action < 0.6 && keys.length > 0) members[pick(keys)] = pick(junk);
      else if (action < 0.8 && keys.length > 0) {
        const key = pick(keys);
        if (Array.isArray(node)) node.splice(Number(key), 1);
        else delete members[key];
      } else
        members[Array.isArray(node) ? node.length : pick(['extra', 'size', 'mode'])] = pick(junk);
      agree(body, `round ${round}: ${JSON.stringify(body).slice(0, 200)}`);
    }
  });
});
