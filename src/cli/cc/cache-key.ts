/**
 * The cache keys of a compile (design §4): sha256 over a canonical, length-prefixed encoding of
 * named components, `CACHE_VERSION` first.
 *
 * the **direct key D**: the compile's command line, environment and toolchain and the source's
 * content (the headers are checked against the manifest stored under D). A remote job's key is
 * `compileJobKey` (src/api/compile-job-key.ts), which the coordinator computes too.
 *
 * The components are kept as data (`KeyInputs`) so `muster cc --explain` can say which one
 * changed between two lookups (`diffKeyInputs`).
 */
import { createHash } from 'node:crypto';
import type { Compile } from './classify.js';
import { mapDebugPath } from './prefix-maps.js';

/** Bump when anything about what a key covers changes: old entries then simply miss. */
export const CACHE_VERSION = 'muster-cc-1';

/** The environment that reaches the object or the diagnostics, keyed by value. */
export const KEYED_ENV = [
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'LC_MESSAGES',
  'SOURCE_DATE_EPOCH',
  'TZ',
  'CPATH',
  'C_INCLUDE_PATH',
  'CPLUS_INCLUDE_PATH',
  'OBJC_INCLUDE_PATH',
] as const;

export type KeyValue = string | readonly string[];

export interface KeyComponent {
  readonly name: string;
  readonly value: KeyValue;
}

/** The named components a key is the hash of, in order. */
export type KeyInputs = readonly KeyComponent[];

export interface KeyContext {
  /** The toolchain's content id (every program it runs, not their mtimes). */
  readonly toolchainId: string;
  readonly job: Pick<Compile, 'language' | 'keyArgs' | 'source' | 'debug' | 'prefixMaps'>;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The compiler's stderr is a terminal (colours, line width). */
  readonly stderrIsTty: boolean;
  /** With `-MMD`, a fingerprint of the system include dirs; null when not used. */
  readonly systemHeaders: string | null;
}

/** The direct key's components: the compile's command line, environment and source's sha256. */
export function directKeyInputs(ctx: KeyContext, sourceSha256: string): KeyInputs {
  const { job, env } = ctx;
  const keyedEnv = KEYED_ENV.filter((name) => env[name] !== undefined).map(
    (name) => `${name}=${env[name] ?? ''}`,
  );
  const rendering = [
    `tty=${ctx.stderrIsTty ? 1 : 0}`,
    ...['GCC_COLORS', 'GCC_URLS', 'TERM_URLS']
      .filter((name) => env[name] !== undefined)
      .map((name) => `${name}=${env[name] ?? ''}`),
    ...(ctx.stderrIsTty
      ? ['TERM', 'COLUMNS']
          .filter((name) => env[name] !== undefined)
          .map((name) => `${name}=${env[name] ?? ''}`)
      : []),
  ];
  return [
    { name: 'version', value: CACHE_VERSION },
    // Once there was a second kind of key; the component stays so existing entries still hit.
    { name: 'kind', value: 'direct' },
    { name: 'toolchain', value: ctx.toolchainId },
    { name: 'language', value: job.language },
    { name: 'args', value: job.keyArgs },
    { name: 'source-path', value: job.source },
    // The cwd reaches the object only through debug information (DW_AT_comp_dir), mapped.
    { name: 'cwd', value: job.debug ? mapDebugPath(ctx.cwd, job.prefixMaps) : '' },
    { name: 'stderr', value: rendering },
    { name: 'env', value: keyedEnv },
    { name: 'system-headers', value: ctx.systemHeaders ?? '' },
    { name: 'source', value: sourceSha256 },
  ];
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function lengthPrefixed(s: string): Buffer[] {
  const bytes = Buffer.from(s, 'utf8');
  return [u32(bytes.length), bytes];
}

/**
 * The canonical bytes of a key's inputs: per component its name, a type byte (`s` a string,
 * `l` a list), then the string, or the list's length and each item, every string length-prefixed
 * (u32, big-endian). No two different inputs encode alike.
 */
export function encodeKeyInputs(inputs: KeyInputs): Buffer {
  const parts: Buffer[] = [u32(inputs.length)];
  for (const { name, value } of inputs) {
    parts.push(...lengthPrefixed(name));
    if (typeof value === 'string') {
      parts.push(Buffer.from('s'), ...lengthPrefixed(value));
    } else {
      parts.push(Buffer.from('l'), u32(value.length));
      for (const item of value) parts.push(...lengthPrefixed(item));
    }
  }
  return Buffer.concat(parts);
}

/**
 * The result key of a direct-mode compile (depend mode): the direct key and every header the
 * compile read with its content hash, so the same source and arguments with other headers make
 * another result.
 */
export function directResultKey(
  direct: string,
  includes: readonly (readonly [path: string, sha256: string])[],
): string {
  return keyOf([
    { name: 'version', value: CACHE_VERSION },
    { name: 'kind', value: 'direct-result' },
    { name: 'direct', value: direct },
    { name: 'includes', value: includes.flatMap(([path, sha]) => [path, sha]) },
  ]);
}

/** The key: sha256 (hex) of the canonical encoding. */
export function keyOf(inputs: KeyInputs): string {
  return createHash('sha256').update(encodeKeyInputs(inputs)).digest('hex');
}

export type KeyDifference =
  | {
      readonly name: string;
      readonly change: 'changed';
      readonly before: string;
      readonly after: string;
    }
  | {
      readonly name: string;
      readonly change: 'list';
      /** Items only in the later inputs, and only in the earlier ones (with repeats). */
      readonly added: readonly string[];
      readonly removed: readonly string[];
      /** Same items, other order (argument order matters to gcc). */
      readonly reordered: boolean;
    }
  | { readonly name: string; readonly change: 'added' | 'removed'; readonly value: KeyValue };

/**
 * What differs between two lookups' inputs, component by component (what `--explain` prints as
 * "why"). Empty when the keys are equal.
 */
export function diffKeyInputs(before: KeyInputs, after: KeyInputs): KeyDifference[] {
  const out: KeyDifference[] = [];
  const earlier = new Map(before.map((c) => [c.name, c.value]));
  const later = new Map(after.map((c) => [c.name, c.value]));
  for (const { name, value } of before) {
    if (!later.has(name)) out.push({ name, change: 'removed', value });
  }
  for (const { name, value } of after) {
    const old = earlier.get(name);
    if (old === undefined) {
      out.push({ name, change: 'added', value });
    } else if (typeof old === 'string' && typeof value === 'string') {
      if (old !== value) out.push({ name, change: 'changed', before: old, after: value });
    } else if (typeof old !== 'string' && typeof value !== 'string') {
      const d = diffLists(old, value);
      if (d !== null) out.push({ name, ...d });
    } else {
      const show = (v: KeyValue): string => (typeof v === 'string' ? v : v.join(' '));
      out.push({ name, change: 'changed', before: show(old), after: show(value) });
    }
  }
  return out;
}

function diffLists(
  old: readonly string[],
  now: readonly string[],
): { change: 'list'; added: string[]; removed: string[]; reordered: boolean } | null {
  if (old.length === now.length && old.every((x, i) => x === now[i])) return null;
  const counts = new Map<string, number>();
  for (const x of old) counts.set(x, (counts.get(x) ?? 0) + 1);
  const added: string[] = [];
  for (const x of now) {
    const n = counts.get(x) ?? 0;
    if (n > 0) counts.set(x, n - 1);
    else added.push(x);
  }
  const removed: string[] = [];
  for (const [x, n] of counts) for (let i = 0; i < n; i++) removed.push(x);
  return {
    change: 'list',
    added,
    removed,
    reordered: added.length === 0 && removed.length === 0,
  };
}

/** A manifest entry's header that no longer matches (for `--explain`). */
export interface IncludeDifference {
  readonly path: string;
  readonly before: string;
  /** Its hash now, or null when it is gone. */
  readonly after: string | null;
}

/**
 * Which of a manifest entry's headers hash differently now (`current` gives a header's sha256
 * now, or null when it is missing).
 */
export function diffIncludes(
  recorded: readonly (readonly [path: string, sha256: string])[],
  current: (path: string) => string | null,
): IncludeDifference[] {
  const out: IncludeDifference[] = [];
  for (const [path, before] of recorded) {
    const after = current(path);
    if (after !== before) out.push({ path, before, after });
  }
  return out;
}
