/**
 * The remote path of one compile (design §2), taken after a direct-mode miss when placement
 * chose an agent:
 *
 * 1. `cpp` in the shim: the directives-only pass, with the depfile options the driver would
 *    pass (so the depfile is written here, as the compile would have), to a temp file. A pass
 *    that fails or prints anything → compile here (the local run prints the exact diagnostics).
 * 2. The prelude stripped, the text hashed: the job (`remoteJob` + the text) and its key
 *    (`compileJobKey`, the coordinator keeps results under the same). A hit in the shared cache
 *    is fetched (checked) and written: done.
 * 3. Otherwise, when the toolchain is registered and on an agent (its registration runs in the
 *    background; meanwhile: compiled here, `toolchain-registering`), the text, the job. Exit 0 with nothing on stderr
 *    and an object → the object is fetched and written: done. A compiler that failed or printed
 *    → compiled here again for its exact diagnostics (a `rerun`, not a fallback). Anything else
 *    (not started, agent lost, the coordinator failing) → compiled here, counted as a fallback
 *    with its reason. Either way the record of the local compile names the job's task.
 *
 * What the caller does with an outcome (stats, records, the direct-mode entry) is compile-job.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { compileJobKey } from '../../api/compile-job-key.js';
import type { CompileJobView } from '../../api/views/compile.js';
import type { CompileJobRequest } from '../api-client.js';
import { preprocessArgv } from './classify.js';
import { isNoAnswer } from './coordinator-guard.js';
import { stripPrelude, timeMacrosIn, unfixedTimeMacros } from './directives.js';
import type { CompileCall, JobContext, ShimExchange } from './job-context.js';
import { writeOutput } from './output-files.js';
import type { RemoteJobs, RemoteSession } from './ports.js';
import type { RemoteJob } from './remote-job.js';
import { environToList } from './shim-protocol.js';
import { reasonName } from './stats.js';
import type { Toolchain } from './toolchain.js';
import { warnUnlessPaused } from './coordinator-guard.js';

export interface RemoteRequest {
  readonly call: CompileCall;
  readonly toolchain: Toolchain;
  readonly layout: RemoteJob;
  readonly session: RemoteSession;
  readonly remote: RemoteJobs;
  readonly label: string;
  /** The shim's working directory. */
  readonly cwd: string;
  readonly maxQueueMs: number;
  /** Output file mode (`0666 & ~umask`). */
  readonly mode: number;
}

/** The directives-only text the outputs came from (its line markers list every file read). */
export interface Preprocessed {
  readonly text: Buffer;
  readonly mainFile: string;
}

export type RemoteOutcome =
  /** An agent's result, written. */
  | { readonly kind: 'remote'; readonly task: string; readonly text: Preprocessed }
  /** The shared cache had this exact job's result, written. */
  | { readonly kind: 'hit'; readonly text: Preprocessed }
  /** Compile here: the record names `job` when there was one; `fallback` counts a failure. */
  | {
      readonly kind: 'here';
      readonly job?: string;
      readonly fallback?: string;
      readonly rerun?: boolean;
      /** Why it runs here when that is neither a fallback nor a rerun. */
      readonly reason?: string;
    };

/**
 * How long an agent may compile one job (the job request's own timeout covers it, the queue wait
 * and the transfer: coordinator-jobs.ts). A compile that takes longer is ended there and compiled
 * here.
 */
export const REMOTE_COMPILE_TIMEOUT_MS = 280_000;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The fallback reason of a coordinator request that failed. */
function requestFailure(err: unknown): string {
  return isNoAnswer(err) ? 'no-coordinator' : 'remote-error';
}

/** Why a job's answer sends the compile here, as a fallback reason (or a rerun). */
export function answerOutcome(view: CompileJobView): RemoteOutcome {
  const job = view.task;
  // The compiler failed or printed (on stderr, or on stdout: `remote-stdout`): compiled here for
  // its exact messages and outputs — a rerun, not a failure of Muster.
  if (
    (view.exitCode !== null && view.exitCode !== 0) ||
    view.stderrBytes > 0 ||
    view.stderr !== '' ||
    view.reason === 'remote-stdout'
  )
    return { kind: 'here', job, rerun: true };
  let fallback: string;
  if (view.status === 'not-started') fallback = view.reason ?? 'not-started';
  else if (view.status === 'lost') fallback = view.reason ?? 'agent-lost';
  else if (view.status === 'cancelled') fallback = view.reason ?? 'remote-cancelled';
  else if (view.error?.code === 'TOOLCHAIN_INCOMPATIBLE') fallback = 'toolchain-incompatible';
  else if (view.error?.code === 'TOOLCHAIN_NOT_FOUND') fallback = 'toolchain-not-found';
  else fallback = view.reason ?? 'remote-error';
  return { kind: 'here', job, fallback: reasonName(fallback) };
}

/** Step 1: the directives-only pass in the shim; null when its text is of no use. */
async function preprocess(
  ctx: JobContext,
  x: ShimExchange,
  call: CompileCall,
): Promise<Preprocessed | { here: RemoteOutcome }> {
  const tmp = join(ctx.tempDir, `cpp-${randomBytes(8).toString('hex')}.i`);
  try {
    const ran = await x.cpp({
      path: call.path,
      argv: [call.path, ...preprocessArgv(call.job, tmp)],
      env: environToList(call.childEnv),
    });
    // Diagnostics of the pass (an #error, #warning, a missing header) are the user's: the
    // compile here prints them exactly.
    if (ran.exitCode !== 0 || ran.stderr !== '')
      return { here: { kind: 'here', reason: 'preprocessor-diagnostics' } };
    const stripped = stripPrelude(await readFile(tmp));
    if (stripped === null || stripped.mainFile !== call.job.source)
      return { here: { kind: 'here', fallback: 'unexpected-cpp-output' } };
    return { text: stripped.text, mainFile: stripped.mainFile };
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Step 2: this exact job's result in the shared cache, written; false on a miss. */
async function preprocessorHit(
  ctx: JobContext,
  req: RemoteRequest,
  key: string,
  text: Buffer,
): Promise<boolean> {
  const { job, env } = req.call;
  const shared = ctx.sharedCache;
  if (ctx.noCache || shared === undefined || job.noCacheReasons.length > 0) return false;
  if (unfixedTimeMacros(timeMacrosIn(text), env).length > 0) return false;
  try {
    const view = await shared.lookup({ keys: [key] });
    const entry = view.entries.find(
      (e) =>
        e.key === key &&
        e.kind === 'compile' &&
        e.exitCode === 0 &&
        e.stderr === null &&
        e.toolchain === req.toolchain.id,
    );
    const object = entry?.outputs.find((o) => o.name === 'object');
    if (entry === undefined || object === undefined || entry.outputs.length !== 1) return false;
    const data = await shared.fetchBlob(object.sha256, object.size);
    await writeOutput(resolve(req.cwd, job.output), data, req.mode);
    return true;
  } catch (err) {
    // The job itself may still run: the lookup is only a shortcut.
    warnUnlessPaused(ctx.log, err, 'muster cc: the preprocessor-key lookup failed');
    return false;
  }
}

/** The remote path; never throws for a coordinator's or an agent's failure (they are outcomes). */
export async function compileRemotely(
  ctx: JobContext,
  x: ShimExchange,
  req: RemoteRequest,
): Promise<RemoteOutcome> {
  const pre = await preprocess(ctx, x, req.call);
  if ('here' in pre) return pre.here;
  // The agent's copy of the source has its own mtime: `__TIMESTAMP__` would differ from here.
  if (timeMacrosIn(pre.text).includes('__TIMESTAMP__'))
    return { kind: 'here', reason: 'time-macros' };
  const body: CompileJobRequest = {
    label: req.label,
    input: req.layout.input,
    source: { path: req.layout.source, sha256: sha256(pre.text), size: pre.text.length },
    maxQueueMs: req.maxQueueMs,
    timeoutMs: REMOTE_COMPILE_TIMEOUT_MS,
    // --no-cache: the coordinator keeps nothing of it either.
    ...(ctx.noCache ? { keep: false } : {}),
  };
  const key = compileJobKey(body);
  if (await preprocessorHit(ctx, req, key, pre.text)) return { kind: 'hit', text: pre };

  // The first compile with a new compiler starts its registration; until an agent has it,
  // compiling here beats waiting for ~80 MB to go up and the agents to sync.
  const state = await req.remote.toolchainState(req.toolchain);
  if (state === 'registering') {
    // The upload outlives this compile, and a short build too: stop() waits for it (bounded).
    const registering = req.remote.ensureToolchain?.(req.toolchain);
    if (registering !== undefined) ctx.background('registering a toolchain', registering);
    return { kind: 'here', reason: 'toolchain-registering' };
  }
  if (state !== 'ready') return { kind: 'here', fallback: state };
  let view: CompileJobView;
  try {
    await req.remote.putText(body.source.sha256, pre.text);
    view = await req.remote.submit(req.session.key, body);
  } catch (err) {
    warnUnlessPaused(ctx.log, err, 'muster cc: the remote job failed; compiling here');
    return { kind: 'here', fallback: requestFailure(err) };
  }
  if (
    view.status !== 'succeeded' ||
    view.exitCode !== 0 ||
    view.stderrBytes > 0 ||
    view.stderr !== '' ||
    view.object === null
  ) {
    return answerOutcome(view);
  }
  try {
    const object = await req.remote.fetchObject(view.object.sha256, view.object.size);
    await writeOutput(resolve(req.cwd, req.call.job.output), object, req.mode);
  } catch (err) {
    warnUnlessPaused(ctx.log, err, 'muster cc: taking the remote object failed; compiling here');
    return { kind: 'here', job: view.task, fallback: requestFailure(err) };
  }
  return { kind: 'remote', task: view.task, text: pre };
}
