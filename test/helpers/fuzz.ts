/**
 * Shared pieces of the fuzz tests (test/e2e/fuzz-*.test.ts): their bounds and seed, a daemon's
 * resident memory, and fast-check arbitraries that mutate JSON values and byte strings the way a
 * hostile peer would (wrong types, huge strings, deep nesting, odd numbers, prototype keys,
 * flipped, inserted and deleted bytes).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';

export interface FuzzBounds {
  seed: number;
  numRuns: number;
  /** Stop starting new runs after this long: it bounds the effort, it is not a pass/fail check. */
  timeLimitMs: number;
}

/**
 * MUSTER_TEST_SEED repeats a run; MUSTER_FUZZ_RUNS and MUSTER_FUZZ_SECONDS make it longer (or
 * shorter). The seed is printed, so a failure seen in CI can be replayed.
 */
export function fuzzBounds(name: string, defaults: { runs: number; seconds: number }): FuzzBounds {
  const seed = Number(process.env.MUSTER_TEST_SEED ?? Date.now() % 1_000_000_000);
  const numRuns = Number(process.env.MUSTER_FUZZ_RUNS ?? defaults.runs);
  const timeLimitMs = Number(process.env.MUSTER_FUZZ_SECONDS ?? defaults.seconds) * 1000;
  for (const [key, value] of Object.entries({ seed, numRuns, timeLimitMs })) {
    if (!Number.isFinite(value) || value < 0) throw new Error(`${name}: bad ${key} ${value}`);
  }
  process.stderr.write(
    `${name}: seed ${seed}, at most ${numRuns} runs in ${timeLimitMs / 1000} s ` +
      `(MUSTER_TEST_SEED=${seed} repeats it; MUSTER_FUZZ_RUNS, MUSTER_FUZZ_SECONDS make it longer)\n`,
  );
  return { seed, numRuns, timeLimitMs };
}

/**
 * Runs an async property within the bounds. A failure is thrown with fast-check's report (seed,
 * path, shrunk counterexample) and the error the counterexample caused.
 */
export async function runFuzz<T>(
  name: string,
  property: fc.IAsyncProperty<T>,
  bounds: FuzzBounds,
): Promise<fc.RunDetails<T>> {
  const details = await fc.check(property, {
    seed: bounds.seed,
    numRuns: bounds.numRuns,
    interruptAfterTimeLimit: bounds.timeLimitMs,
    // Shrinking against a live daemon is slow: the time limit bounds it too.
    timeout: 30_000,
  });
  if (details.failed) {
    const error = details.errorInstance;
    throw new Error(
      `${name}: ${fc.defaultReportMessage(details) ?? 'failed'}\n` +
        `The counterexample's error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
  }
  return details;
}

/** Resident memory of a process (VmRSS of /proc/PID/status), in bytes; undefined without /proc. */
export function rssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kib === undefined ? undefined : Number(kib) * 1024;
  } catch {
    return undefined;
  }
}

export const MiB = 1024 * 1024;

/**
 * Fails unless the process's resident memory is below `limit`, or falls below it within
 * `settleMs`: right after a run with a few MiB-sized frames the heap is briefly large, and the
 * garbage collector gives it back a little later. What must not happen is growth that stays.
 * Returns the resident memory last seen (0 without /proc).
 */
export async function expectMemoryBelow(
  pid: number,
  limit: number,
  settleMs: number,
  what: string,
): Promise<number> {
  const deadline = Date.now() + settleMs;
  for (;;) {
    const rss = rssBytes(pid);
    if (rss === undefined || rss < limit) return rss ?? 0;
    if (Date.now() >= deadline) {
      throw new Error(
        `${what}: ${(rss / MiB).toFixed(0)} MiB resident, over the bound of ${(limit / MiB).toFixed(0)} MiB for ${settleMs / 1000} s`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Text spliced into JSON as it is: what JSON.stringify cannot or would not produce. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** JSON.stringify, but RawJson values are written as their text (no recursion limit on them). */
export function stringifyRaw(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map((v) => stringifyRaw(v) ?? 'null').join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const parts: string[] = [];
    for (const [key, v] of Object.entries(value)) {
      if (v === undefined) continue;
      parts.push(`${JSON.stringify(key)}:${stringifyRaw(v)}`);
    }
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Keys with a meaning in JavaScript that a careless lookup in a plain object trips on. */
export const PROTOTYPE_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
];

/** Values a hostile peer puts where something else was expected. */
export function hostileValue(): fc.Arbitrary<unknown> {
  return fc.oneof(
    { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 4 },
    {
      // Numbers around the edges of what the schemas accept, and beyond.
      arbitrary: fc.constantFrom<unknown>(
        -1,
        0,
        -0,
        0.5,
        -(2 ** 31),
        2 ** 31 - 1,
        2 ** 31,
        2 ** 32,
        2 ** 53 + 2,
        Number.MAX_SAFE_INTEGER,
        1e308,
        -1e308,
        new RawJson('1e999'),
        new RawJson('-1e999'),
        new RawJson('123456789012345678901234567890'),
      ),
      weight: 3,
    },
    {
      arbitrary: fc.constantFrom<unknown>(
        null,
        true,
        false,
        '',
        [],
        {},
        '\u0000',
        '\ud800',
        '../../../../etc/passwd',
        '/etc/passwd',
        '%2e%2e%2f',
        ...PROTOTYPE_KEYS,
        { __proto__: null, polluted: true },
        new RawJson('{"__proto__":{"polluted":true}}'),
      ),
      weight: 3,
    },
    {
      // Huge strings: up to just under the 4 MiB frame and 16 MiB body limits' reach.
      arbitrary: fc
        .tuple(fc.integer({ min: 10, max: 22 }), fc.constantFrom('x', 'é', '\u0000', '"'))
        .map(([log2, char]) => char.repeat(2 ** log2)),
      weight: 2,
    },
    {
      // Deep nesting, as text (JSON.parse accepts it; recursive code after it may not).
      arbitrary: fc
        .tuple(fc.integer({ min: 100, max: 200_000 }), fc.boolean())
        .map(([depth, arrays]) =>
          arrays
            ? new RawJson('['.repeat(depth) + ']'.repeat(depth))
            : new RawJson('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
        ),
      weight: 2,
    },
    {
      // Long arrays and wide objects.
      arbitrary: fc
        .tuple(fc.integer({ min: 1000, max: 200_000 }), fc.boolean())
        .map(([n, array]) =>
          array
            ? new RawJson(`[${'0,'.repeat(n - 1)}0]`)
            : new RawJson(`{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`),
        ),
      weight: 1,
    },
  );
}

/** One change to a JSON value; `at` picks a place (modulo the number of places). */
export type JsonEdit =
  | { op: 'replace'; at: number; value: unknown }
  | { op: 'delete'; at: number }
  | { op: 'add'; at: number; key: string; value: unknown };

export function jsonEdit(extraStrings: string[] = []): fc.Arbitrary<JsonEdit> {
  const value = extraStrings.length
    ? fc.oneof(
        { arbitrary: hostileValue(), weight: 4 },
        { arbitrary: fc.constantFrom(...extraStrings), weight: 1 },
      )
    : hostileValue();
  return fc.oneof(
    {
      arbitrary: fc.record({ op: fc.constant('replace' as const), at: fc.nat(), value }),
      weight: 5,
    },
    { arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat() }), weight: 1 },
    {
      arbitrary: fc.record({
        op: fc.constant('add' as const),
        at: fc.nat(),
        key: fc.oneof(fc.constantFrom(...PROTOTYPE_KEYS), fc.string({ maxLength: 8 })),
        value,
      }),
      weight: 1,
    },
  );
}

type Path = (string | number)[];

/** Every place in a value (the value itself first), RawJson values being leaves. */
function pathsOf(value: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (value instanceof RawJson || value === null || typeof value !== 'object') return out;
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...prefix, i], out));
  else for (const [k, v] of Object.entries(value)) pathsOf(v, [...prefix, k], out);
  return out;
}

function clone(value: unknown): unknown {
  if (value instanceof RawJson || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(clone);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // defineProperty, so a "__proto__" key stays an own key (as JSON.parse makes it).
    Object.defineProperty(out, k, {
      value: clone(v),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function getAt(root: unknown, path: Path): unknown {
  let node = root;
  for (const key of path) node = (node as Record<string | number, unknown>)[key];
  return node;
}

/** Applies the edits in order to a copy of `value`; the result may hold RawJson parts. */
export function applyJsonEdits(value: unknown, edits: readonly JsonEdit[]): unknown {
  let root = clone(value);
  for (const edit of edits) {
    const paths = pathsOf(root);
    const path = paths[edit.at % paths.length] ?? [];
    if (edit.op === 'add') {
      const target = getAt(root, path);
      if (Array.isArray(target)) target.push(clone(edit.value));
      else if (target !== null && typeof target === 'object' && !(target instanceof RawJson)) {
        Object.defineProperty(target, edit.key, {
          value: clone(edit.value),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else root = { value: root, [edit.key]: clone(edit.value) };
      continue;
    }
    if (path.length === 0) {
      root = edit.op === 'replace' ? clone(edit.value) : new RawJson('');
      continue;
    }
    const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown>;
    const key = path[path.length - 1]!;
    if (edit.op === 'replace') {
      Object.defineProperty(parent, key, {
        value: clone(edit.value),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  }
  return root;
}

/** One change to a byte string; positions are taken modulo its length. */
export type ByteEdit =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'truncate'; at: number };

export function byteEdit(): fc.Arbitrary<ByteEdit> {
  return fc.oneof(
    fc.record({
      op: fc.constant('flip' as const),
      at: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    }),
    fc.record({
      op: fc.constant('set' as const),
      at: fc.nat(),
      byte: fc.oneof(fc.constantFrom(0, 0xff, 0x80, 0x22, 0x5c, 0x0a, 0x0d), fc.nat({ max: 255 })),
    }),
    fc.record({
      op: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
    fc.record({
      op: fc.constant('delete' as const),
      at: fc.nat(),
      count: fc.integer({ min: 1, max: 16 }),
    }),
    fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  );
}

export function applyByteEdits(bytes: Buffer, edits: readonly ByteEdit[]): Buffer {
  let out = Buffer.from(bytes);
  for (const edit of edits) {
    if (out.length === 0 && edit.op !== 'insert') continue;
    const at = edit.at % Math.max(1, out.length);
    switch (edit.op) {
      case 'flip':
        out[at] = out[at]! ^ (1 << edit.bit);
        break;
      case 'set':
        out[at] = edit.byte;
        break;
      case 'insert':
        out = Buffer.concat([out.subarray(0, at), Buffer.from(edit.bytes), out.subarray(at)]);
        break;
      case 'delete':
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + edit.count)]);
        break;
      case 'truncate':
        out = out.subarray(0, at);
        break;
    }
  }
  return out;
}

/** Brief text of something sent, for a failure message. */
export function brief(value: unknown, max = 400): string {
  const text =
    value instanceof Buffer
      ? JSON.stringify(value.subarray(0, max).toString('latin1'))
      : (JSON.stringify(value) ?? String(value));
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}
