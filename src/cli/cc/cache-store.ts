/**
 * Keeping a successful local compile (design §4, depend mode): its outputs and stderr as blobs,
 * its result entry, and the manifest line "with these headers, that result" under the direct
 * key, in the local tier and in the shared cache in the background. The headers come from the
 * compile's own dependency list (the user's depfile, or the one gcc wrote to
 * SUNPRO_DEPENDENCIES for the service); nothing is run a second time.
 *
 * A local compile's outputs are captured (captureOutputs) before its shim is answered — make or
 * depcomp may move or rewrite them right after — and the rest runs later (deferred-stores.ts).
 *
 * Not kept (the reasons are returned): a header or the source changed at or after the
 * compile's start − 2 s (ccache's "too new", file-hashes.ts), a header that cannot be read, a
 * time macro SOURCE_DATE_EPOCH does not fix (`unfixedTimeMacros`), a dependency list that
 * cannot be read.
 */
import { resolve } from 'node:path';
import type { Compile } from './classify.js';
import { directResultKey } from './cache-key.js';
import { unfixedTimeMacros } from './directives.js';
import { parseDepfile, prerequisitesOf } from './depfile.js';
import { readSmallSync } from './file-hashes.js';
import type { JobContext } from './job-context.js';
import type { LocalEntry } from './local-tier.js';
import type { StoredOutput } from './ports.js';
import type { ToolchainInfo } from './toolchain-ids.js';

export interface StoreRequest {
  readonly job: Compile;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly direct: string;
  /** The source's hash at the lookup. */
  readonly sourceSha256: string;
  readonly toolchain: ToolchainInfo;
  /** Where SUNPRO_DEPENDENCIES made gcc write the dependency list, when the user asked none. */
  readonly depsFile: string | null;
  /**
   * The files the compile read besides its source, when known without a dependency list (a
   * remote compile's: the line markers of its directives-only text).
   */
  readonly headers?: readonly string[];
  readonly stderr: Buffer;
  /** `0666 & ~umask`. */
  readonly mode: number;
  /** The outputs as the compile left them (captureOutputs); absent: read now. */
  readonly captured?: CapturedOutputs;
  /**
   * The compile's start (FileHashes.now() before it ran): a file changed at or after it − 2 s
   * is too new. Absent: within 2 s of now.
   */
  readonly startNs?: bigint;
}

/** A compile's outputs, read right after it ended. */
export interface CapturedOutputs {
  readonly object: Buffer;
  /** The user's depfile (-MD/-MMD/-MF), null when the command asked none. */
  readonly depfile: Buffer | null;
}

/** Reads the compile's outputs into memory (or says that one was not written). */
export async function captureOutputs(job: Compile, cwd: string): Promise<CapturedOutputs | string> {
  try {
    const object = await readSmallSync(resolve(cwd, job.output));
    const depfile =
      job.depfile === null ? null : await readSmallSync(resolve(cwd, job.depfile.path));
    return { object, depfile };
  } catch {
    return 'an output was not written';
  }
}

/** The compile's dependency list (the user's depfile, or SUNPRO_DEPENDENCIES'), or why none. */
async function dependencyList(req: StoreRequest): Promise<readonly string[] | string> {
  const { job, cwd } = req;
  const listFile = req.depsFile ?? (job.depfile === null ? null : resolve(cwd, job.depfile.path));
  if (listFile === null) return 'no dependency list';
  let listText: string;
  try {
    const captured = req.depsFile === null ? req.captured?.depfile : undefined;
    // A dependency list is small: read with one system call, not through the thread pool.
    listText = (captured ?? (await readSmallSync(listFile))).toString('utf8');
  } catch {
    return 'the dependency list was not written';
  }
  const parsed = parseDepfile(listText);
  if (!parsed.ok) return `the dependency list is unreadable (line ${parsed.line})`;
  return prerequisitesOf(parsed.rules);
}

/** Why the result cannot be kept (empty: it was kept). */
export async function storeResult(ctx: JobContext, req: StoreRequest): Promise<string[]> {
  const { job, cwd } = req;
  const listed = req.headers ?? (await dependencyList(req));
  if (typeof listed === 'string') return [listed];
  const headers = listed.filter((p) => p !== job.source);

  const reasons: string[] = [];
  const source = await ctx.hashes.hash(resolve(cwd, job.source), req.startNs);
  if (source === null || source.sha256 !== req.sourceSha256 || source.tooNew) {
    reasons.push(`too-new: ${job.source}`);
  }
  const includes: [string, string][] = [];
  for (const path of headers) {
    const h = await ctx.hashes.hash(resolve(cwd, path), req.startNs);
    if (h === null) reasons.push(`unreadable header: ${path}`);
    else if (h.tooNew) reasons.push(`too-new: ${path}`);
    else if (unfixedTimeMacros(h.timeMacros, req.env).length > 0)
      reasons.push(`time-macros: ${path}`);
    else includes.push([path, h.sha256]);
    if (reasons.length > 0) return reasons;
  }
  if (reasons.length > 0) return reasons;

  const captured = req.captured ?? (await captureOutputs(job, cwd));
  if (typeof captured === 'string') return [captured];
  const outputs: StoredOutput[] = [{ name: 'object', data: captured.object, mode: req.mode }];
  if (captured.depfile !== null)
    outputs.push({ name: 'depfile', data: captured.depfile, mode: req.mode });

  const key = directResultKey(req.direct, includes);
  const stored: LocalEntry['outputs'] = [];
  for (const o of outputs) {
    const sha256 = await ctx.tier.putBlob(o.data);
    stored.push({ name: o.name, sha256, size: o.data.length, mode: o.mode });
  }
  const stderr =
    req.stderr.length === 0
      ? null
      : { sha256: await ctx.tier.putBlob(req.stderr), size: req.stderr.length };
  await ctx.tier.putEntry({
    key,
    outputs: stored,
    stderr,
    exitCode: 0,
    toolchain: req.toolchain.id,
    createdAt: new Date().toISOString(),
  });
  await ctx.tier.addManifestLine(req.direct, { includes, entry: key });

  const shared = ctx.sharedCache;
  const toolchain = req.toolchain.toolchain;
  if (shared !== undefined && toolchain !== null) {
    ctx.background(
      'shared cache store',
      shared.store({
        key,
        outputs,
        stderr: req.stderr,
        toolchain,
        manifest: { direct: req.direct, includes },
      }),
    );
  }
  return [];
}
