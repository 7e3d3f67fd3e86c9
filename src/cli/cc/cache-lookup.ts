/**
 * A direct-mode lookup (design §4): the direct key's manifest lines, newest first, each checked
 * against the headers' hashes now; the first line that matches completely names the result.
 * The local tier first; on a miss the coordinator's shared cache when there is one (its blobs
 * are fetched, checked and kept in the local tier, so the next hit stays on this machine).
 */
import { resolve } from 'node:path';
import type { IncludeDifference } from './cache-key.js';
import type { JobContext } from './job-context.js';
import type { LocalEntry, ManifestLine } from './local-tier.js';
import { warnUnlessPaused } from './coordinator-guard.js';

export interface CacheHit {
  readonly entry: LocalEntry;
  /** The bytes of each output, by name, and of the stderr (empty: none). */
  readonly outputs: ReadonlyMap<'object' | 'depfile', Buffer>;
  readonly stderr: Buffer;
  readonly tier: 'local' | 'shared';
}

export interface CacheMiss {
  /** Lines the direct key had (local tier). */
  readonly manifestLines: number;
  /** The newest line's headers that no longer match (for --explain). */
  readonly mismatch: readonly IncludeDifference[];
  /** The shared cache failed (counted as a fallback by the caller). */
  readonly sharedFailed: boolean;
}

export type LookupResult = { readonly hit: CacheHit } | { readonly miss: CacheMiss };

/**
 * The headers of a line that do not hash as recorded (empty: the line matches): with `all`,
 * every difference, the files stat'ed in parallel (most are answered by the stat cache); without,
 * the first one (older lines of a miss stop at their first difference).
 */
async function checkLine(
  ctx: JobContext,
  cwd: string,
  line: ManifestLine,
  all: boolean,
): Promise<IncludeDifference[]> {
  const hashOf = async (path: string): Promise<string | null> =>
    (await ctx.hashes.hash(resolve(cwd, path)))?.sha256 ?? null;
  if (all) {
    const now = await Promise.all(line.includes.map(([path]) => hashOf(path)));
    return line.includes.flatMap(([path, before], i) =>
      now[i] === before ? [] : [{ path, before, after: now[i] ?? null }],
    );
  }
  for (const [path, before] of line.includes) {
    const after = await hashOf(path);
    if (after !== before) return [{ path, before, after }];
  }
  return [];
}

async function localHit(ctx: JobContext, key: string): Promise<CacheHit | null> {
  const entry = await ctx.tier.getEntry(key);
  if (entry === null) return null;
  const outputs = new Map<'object' | 'depfile', Buffer>();
  for (const o of entry.outputs) {
    const data = await ctx.tier.getBlob(o.sha256, o.size);
    if (data === null) {
      // A blob was trimmed or corrupt: the entry is of no use any more.
      await ctx.tier.removeEntry(key);
      return null;
    }
    outputs.set(o.name, data);
  }
  let stderr: Buffer = Buffer.alloc(0);
  if (entry.stderr !== null) {
    const data = await ctx.tier.getBlob(entry.stderr.sha256, entry.stderr.size);
    if (data === null) {
      await ctx.tier.removeEntry(key);
      return null;
    }
    stderr = data;
  }
  return { entry, outputs, stderr, tier: 'local' };
}

export async function lookupDirect(
  ctx: JobContext,
  direct: string,
  cwd: string,
  toolchainId: string,
  shippable: boolean,
): Promise<LookupResult> {
  const lines = await ctx.tier.getManifest(direct);
  let mismatch: IncludeDifference[] = [];
  for (const [i, line] of lines.entries()) {
    const diff = await checkLine(ctx, cwd, line, i === 0);
    if (i === 0) mismatch = diff;
    if (diff.length > 0) continue;
    const hit = await localHit(ctx, line.entry);
    if (hit !== null) return { hit };
  }
  let sharedFailed = false;
  if (ctx.sharedCache !== undefined && shippable) {
    try {
      const hit = await sharedHit(ctx, direct, cwd, toolchainId);
      if (hit !== null) return { hit };
    } catch (err) {
      warnUnlessPaused(ctx.log, err, 'muster cc: the shared cache failed; compiling here');
      sharedFailed = true;
    }
  }
  return { miss: { manifestLines: lines.length, mismatch, sharedFailed } };
}

async function sharedHit(
  ctx: JobContext,
  direct: string,
  cwd: string,
  toolchainId: string,
): Promise<CacheHit | null> {
  const view = await ctx.sharedCache!.lookup({ direct });
  for (const line of view.manifest) {
    const entry = view.entries.find(
      (e) => e.key === line.entry && e.kind === 'compile' && e.exitCode === 0,
    );
    if (entry === undefined || (await checkLine(ctx, cwd, line, false)).length > 0) continue;
    const outputs = new Map<'object' | 'depfile', Buffer>();
    const local: LocalEntry['outputs'] = [];
    for (const o of entry.outputs) {
      if (o.name !== 'object' && o.name !== 'depfile') return null;
      const data = await ctx.sharedCache!.fetchBlob(o.sha256, o.size);
      outputs.set(o.name, data);
      local.push({ name: o.name, sha256: o.sha256, size: o.size, mode: o.mode & 0o777 });
    }
    let stderr: Buffer = Buffer.alloc(0);
    if (entry.stderr !== null)
      stderr = await ctx.sharedCache!.fetchBlob(entry.stderr.sha256, entry.stderr.size);
    if (local.length === 0 || local.length > 2) return null;
    const kept: LocalEntry = {
      key: entry.key,
      outputs: local,
      stderr: entry.stderr,
      exitCode: 0,
      toolchain: entry.toolchain ?? toolchainId,
      createdAt: new Date().toISOString(),
    };
    const blobs = [...outputs.values(), ...(entry.stderr === null ? [] : [stderr])];
    await keepHere(ctx, direct, line.includes, kept, blobs);
    return { entry: kept, outputs, stderr, tier: 'shared' };
  }
  return null;
}

/**
 * A shared hit kept in the local tier too, for the next lookup here. A tier that cannot keep it
 * now (locked by another process past its wait, a full disk) costs that, not the hit.
 */
async function keepHere(
  ctx: JobContext,
  direct: string,
  includes: ManifestLine['includes'],
  entry: LocalEntry,
  blobs: readonly Buffer[],
): Promise<void> {
  try {
    for (const blob of blobs) await ctx.tier.putBlob(blob);
    await ctx.tier.putEntry(entry);
    await ctx.tier.addManifestLine(direct, { includes, entry: entry.key });
  } catch (err) {
    ctx.log.warn({ err }, 'muster cc: the local cache could not keep a shared hit');
  }
}
