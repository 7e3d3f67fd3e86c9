/**
 * One shim's hello, answered (design §5): find the real compiler, classify the command, and then
 *
 * - not a compile → `exec` it (counted `passthrough`);
 * - a cacheable compile → direct-mode lookup (local tier, then the shared cache): a hit writes
 *   the outputs and answers `exit` with the cached stderr;
 * - a miss that placement sends to an agent (placement.ts) → the remote path
 *   (remote-compile.ts): an agent's result, or the shared cache's by the job's key, is written
 *   and kept under the direct key, and answered with `exit`; anything else compiles here, below;
 * - otherwise → `run` it in the shim (stderr teed live there), and on `ran`: exit 0 → read the
 *   outputs into memory, answer `exit` with no stderr (the shim already printed it), and keep
 *   the result afterwards (cache-store.ts, queued in deferred-stores.ts: its explain record and
 *   `uncacheable` count come then); non-zero → answer the same code, keep nothing.
 *
 * Returns the last message for the shim, or throws (the connection is then closed and the shim
 * runs the compiler itself).
 */
import { readFileSync, existsSync, statSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import type { CompileRecord } from '../../api/requests-types.js';
import { isObject } from '../../common/is-object.js';
import { directKeyInputs, keyOf, type KeyInputs } from './cache-key.js';
import { lookupDirect, type CacheHit } from './cache-lookup.js';
import { captureOutputs, storeResult } from './cache-store.js';
import { classify, type Compile } from './classify.js';
import { compilerEnvironment, invocationOf } from './compiler-path.js';
import { includedFiles, unfixedTimeMacros } from './directives.js';
import type { ExplainRecord } from './explain.js';
import type { CompileCall, JobContext, ShimExchange } from './job-context.js';
import { outputMode, writeOutput } from './output-files.js';
import {
  chooseRemote,
  isPlacement,
  localCoresBusy,
  maxQueueMsFor,
  PLACEMENT_ENV,
} from './placement.js';
import { compileRemotely, type RemoteOutcome } from './remote-compile.js';
import { remoteJob } from './remote-job.js';
import { MAX_RESPONSE_BYTES } from './response-files.js';
import {
  environFromList,
  environToList,
  MASQUERADE_ENV,
  SHIM_MAX_CAPTURE_BYTES,
  type ExecMessage,
  type ExitMessage,
  type ShimHello,
} from './shim-protocol.js';
import type { ToolchainInfo } from './toolchain-ids.js';
import { warnUnlessPaused } from './coordinator-guard.js';

const MAX_LABEL = 1000;

export class ShimProtocolError extends Error {
  override readonly name = 'ShimProtocolError';
}

function exit(code: number, stderr: Buffer | string = ''): ExitMessage {
  const bytes = typeof stderr === 'string' ? Buffer.from(stderr) : stderr;
  return { type: 'exit', code, stderr: bytes.toString('base64') };
}

function readResponseFile(path: string): Buffer | null {
  try {
    const s = statSync(path);
    if (!s.isFile() || s.size > MAX_RESPONSE_BYTES) return null;
    return readFileSync(path);
  } catch {
    return null;
  }
}

/**
 * gcc's `auto` colouring (§5): a captured run writes to a pipe, so when the shim's stderr is a
 * terminal that gcc would colour, the captured run is told to colour.
 */
function colourArgs(job: Compile, stderrTty: boolean, env: Record<string, string>): string[] {
  if (!stderrTty || job.family !== 'gcc') return [];
  const term = env['TERM'];
  if (term === undefined || term === 'dumb' || env['GCC_COLORS'] === '') return [];
  const given = job.args.some(
    (a) => a.startsWith('-fdiagnostics-color') || a === '-fno-diagnostics-color',
  );
  return given ? [] : ['-fdiagnostics-color=always'];
}

/**
 * `-MMD` leaves system headers out of the depfile; the fingerprint covers the default system
 * dirs only, so extra system dirs make the manifest incomplete.
 */
function extraSystemDirs(job: Compile, env: Record<string, string>): boolean {
  const options = ['-isystem', '-idirafter', '-isysroot', '--sysroot', '-nostdinc', '-iprefix'];
  const inArgs = job.args.some((a) => options.some((o) => a.startsWith(o)));
  const inEnv = ['C_INCLUDE_PATH', 'CPLUS_INCLUDE_PATH', 'OBJC_INCLUDE_PATH'].some(
    (v) => (env[v] ?? '') !== '',
  );
  return inArgs || inEnv;
}

/**
 * Removes a dependency list the service had gcc write (SUNPRO_DEPENDENCIES), with one system
 * call, once per compile: fs/promises' rm costs ~10 times the CPU (a stat and an unlink through
 * the thread pool), and rmSync still stats first. Not there (the compile failed early): nothing.
 */
function removeListFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (!isObject(err) || err['code'] !== 'ENOENT') throw err;
  }
}

interface Lookup {
  readonly direct: string;
  readonly inputs: KeyInputs;
  readonly sourceSha256: string;
}

/** Answers one hello. */
export async function answerHello(
  ctx: JobContext,
  x: ShimExchange,
): Promise<ExecMessage | ExitMessage> {
  const { hello } = x;
  if (!isAbsolute(hello.cwd)) throw new ShimProtocolError('hello: the cwd is not absolute');
  const invocation = invocationOf(hello);
  if (invocation === null) {
    throw new ShimProtocolError('hello: argv names neither the compiler nor the launcher form');
  }
  const env = environFromList(hello.env);
  const masquerade = env[MASQUERADE_ENV] ?? ctx.masqueradeDir;
  const path = await ctx.compilers.resolve(
    invocation.compiler,
    hello.cwd,
    env['PATH'] ?? '',
    masquerade,
    ctx.shimPath,
  );
  if (path === null) return exit(127, `muster-cc: ${invocation.compiler}: command not found\n`);
  const childEnv = compilerEnvironment(env, masquerade);
  // argv[0] is the absolute path: gcc finds its own programs from argv[0], searching PATH for a
  // bare name, and a PATH entry the service cannot know as the shim's would send it there. Its
  // messages name only the base name ("gcc: error: …"), which is the one the user typed.
  const argv = [path, ...invocation.args];
  const job = classify({
    compiler: invocation.compiler,
    args: invocation.args,
    cwd: hello.cwd,
    env,
    readResponseFile,
    exists: existsSync,
  });
  if (job.kind === 'passthrough') {
    ctx.stats.add('passthrough');
    return { type: 'exec', path, argv, env: environToList(childEnv) };
  }
  return compile(ctx, x, { job, compiler: invocation.compiler, path, argv, env, childEnv });
}

async function compile(ctx: JobContext, x: ShimExchange, call: CompileCall): Promise<ExitMessage> {
  const { job, env, childEnv } = call;
  const { hello } = x;
  const cwd = hello.cwd;
  const startedAt = Date.now();
  const label = [call.compiler, ...call.argv.slice(1)].join(' ').slice(0, MAX_LABEL);
  ctx.stats.add('compiles');

  const { reasons, toolchain, lookup } = ctx.noCache
    ? { reasons: ['caching is off (--no-cache)'], toolchain: null, lookup: null }
    : await directKey(ctx, call, hello);

  const explainBase = {
    cwd,
    output: job.output,
    source: job.source,
    command: label,
    direct: lookup?.direct ?? null,
    inputs: lookup?.inputs ?? null,
  };
  type ExplainFields = Pick<
    ExplainRecord,
    'outcome' | 'tier' | 'reasons' | 'manifestLines' | 'mismatch'
  >;
  /** The job's record (when it ends for the shim) and its explain record. */
  const recordJob = (record: Omit<CompileRecord, 'label' | 'startedAt' | 'durationMs'> | null) => {
    try {
      if (record === null) ctx.recorder?.noteRemote?.();
      else
        ctx.recorder?.record({ label, startedAt, durationMs: Date.now() - startedAt, ...record });
    } catch (err) {
      ctx.log.warn({ err }, 'muster cc: recording a job failed');
    }
  };
  const explainJob = (explain: ExplainFields): void => {
    try {
      ctx.explainLog.record({ at: new Date().toISOString(), ...explainBase, ...explain });
    } catch (err) {
      ctx.log.warn({ err }, 'muster cc: keeping the explain record failed');
    }
  };
  const finish = (
    record: Omit<CompileRecord, 'label' | 'startedAt' | 'durationMs'> | null,
    explain: ExplainFields,
  ): void => {
    recordJob(record);
    explainJob(explain);
  };

  let fallback: string | undefined;
  let manifestLines = 0;
  let mismatch: ExplainRecord['mismatch'] = [];
  if (lookup !== null && toolchain !== null) {
    const found = await lookupDirect(
      ctx,
      lookup.direct,
      cwd,
      toolchain.id,
      toolchain.toolchain !== null,
    );
    if ('hit' in found && (await writeHit(found.hit, job, cwd, hello.umask, ctx))) {
      ctx.stats.add('cacheHits');
      finish(
        { placement: 'cache', cache: 'hit', exitCode: 0 },
        { outcome: 'hit', tier: found.hit.tier, reasons: [], manifestLines: 0, mismatch: [] },
      );
      return exit(0, found.hit.stderr);
    }
    if ('miss' in found) {
      manifestLines = found.miss.manifestLines;
      mismatch = found.miss.mismatch;
      if (found.miss.sharedFailed) {
        fallback = 'no-coordinator';
        ctx.stats.fallback(fallback);
      }
    }
  }
  const missed = (): void => {
    if (lookup !== null) ctx.stats.add('cacheMisses');
  };

  if (fallback === undefined && ctx.offlineReason !== undefined) {
    fallback = ctx.offlineReason;
    ctx.stats.fallback(fallback);
  }

  // An agent, when placement says so (never before the direct lookup: a hit stays cheap).
  let settles: { job?: string } = {};
  let hereReason: string | undefined;
  if (fallback === undefined && job.localReasons.length === 0) {
    // Before the remote path reads the headers (its preprocessor pass): the "too new" rule's
    // reference for keeping what it brings back.
    const remoteStartNs = ctx.hashes.now();
    const outcome = await placeRemotely(ctx, x, call, toolchain, label);
    if (outcome.kind !== 'here') {
      const kept = await keepRemoteResult(ctx, call, cwd, lookup, toolchain, outcome, {
        umask: hello.umask,
        startNs: remoteStartNs,
      });
      if (outcome.kind === 'hit') {
        ctx.stats.add('cacheHits');
        finish(
          { placement: 'cache', cache: 'hit', exitCode: 0 },
          { outcome: 'hit', tier: 'shared', reasons: kept, manifestLines, mismatch },
        );
      } else {
        missed();
        ctx.stats.add('remote');
        const notKept = lookup === null ? (ctx.noCache ? [] : reasons) : kept;
        if (notKept.length > 0) ctx.stats.add('uncacheable');
        finish(null, {
          outcome: lookup === null || kept.length > 0 ? 'uncacheable' : 'miss',
          tier: null,
          reasons: [...reasons, ...kept, `compiled on an agent (${outcome.task})`],
          manifestLines,
          mismatch,
        });
      }
      return exit(0);
    }
    if (outcome.job !== undefined) settles = { job: outcome.job };
    if (outcome.rerun === true) {
      ctx.stats.add('reruns');
      hereReason = 'rerun';
    } else if (outcome.fallback !== undefined) {
      fallback = outcome.fallback;
      ctx.stats.fallback(fallback);
      hereReason = 'fallback';
    } else hereReason = outcome.reason;
  }
  missed();

  // Compile here.
  ctx.stats.add('local');
  const localReasons =
    job.localReasons.length > 0 ? job.localReasons : [hereReason ?? 'placement-local'];
  for (const reason of localReasons) ctx.stats.localReason(reason);
  const recordBase = {
    placement: 'local' as const,
    cache: lookup === null ? ('off' as const) : ('miss' as const),
    ...(fallback === undefined ? {} : { fallback }),
    ...settles,
  };
  let depsFile: string | null = null;
  const runEnv = { ...childEnv };
  // gcc reads SUNPRO_DEPENDENCIES as "file target", split at the first space.
  if (lookup !== null && job.depfile === null && !ctx.tempDir.includes(' ')) {
    depsFile = join(ctx.tempDir, `deps-${randomBytes(8).toString('hex')}`);
    // gcc writes a full `-M` list there and the command line stays the user's (§4).
    runEnv['SUNPRO_DEPENDENCIES'] = `${depsFile} ${job.output}`;
  }
  const explainHere = (notKept: readonly string[]): ExplainFields => ({
    outcome: lookup === null || notKept.length > 0 ? 'uncacheable' : 'miss',
    tier: null,
    reasons: [
      ...notKept,
      ...localReasons.map((r) => `runs here: ${r}`),
      ...(fallback === undefined ? [] : [`fallback: ${fallback}`]),
    ],
    manifestLines,
    mismatch,
  });
  const kept = (notKept: readonly string[]): void => {
    if (notKept.length > 0 && !ctx.noCache) ctx.stats.add('uncacheable');
    explainJob(explainHere(notKept));
  };
  // The "too new" rule's reference: files changed from 2 s before this on are not recorded.
  const startNs = ctx.hashes.now();
  let depsFileOwned = true;
  ctx.localSlots.running++;
  try {
    const ran = await x
      .run({
        path: call.path,
        argv: [...call.argv, ...colourArgs(job, hello.stderrTty, env)],
        env: environToList(runEnv),
      })
      .finally(() => {
        ctx.localSlots.running--;
        ctx.stores.wake();
      });
    const code = ran.exitCode ?? 128 + (ran.signal ?? 0);
    if (code !== 0) {
      ctx.stats.add('errors');
      finish(
        { ...recordBase, exitCode: ran.exitCode },
        { outcome: 'failed', tier: null, reasons: [`exit code ${code}`], manifestLines, mismatch },
      );
      return exit(code);
    }
    const stderr = Buffer.from(ran.stderr, 'base64');
    // The launcher keeps at most SHIM_MAX_CAPTURE_BYTES of stderr: a result whose messages may
    // have been cut would replay them cut.
    if (stderr.length >= SHIM_MAX_CAPTURE_BYTES) reasons.push('stderr over the capture limit');
    else if (lookup !== null && toolchain !== null) {
      // What make or depcomp may move or rewrite once the shim is answered is read now; the
      // rest of keeping the result waits off the compile's path (deferred-stores.ts).
      const captured = await captureOutputs(job, cwd);
      if (typeof captured === 'string') reasons.push(captured);
      else {
        const store = {
          job,
          cwd,
          env,
          direct: lookup.direct,
          sourceSha256: lookup.sourceSha256,
          toolchain,
          depsFile,
          stderr,
          mode: outputMode(hello.umask),
          captured,
          startNs,
        };
        const listFile = depsFile;
        depsFileOwned = false;
        const bytes = captured.object.length + (captured.depfile?.length ?? 0) + stderr.length;
        const keeping = ctx.stores.add(bytes, async () => {
          try {
            const notKept = await storeResult(ctx, store).catch((err: unknown) => {
              ctx.log.warn({ err }, 'muster cc: keeping a result in the cache failed');
              return ['the cache could not keep it'];
            });
            kept([...reasons, ...notKept]);
          } finally {
            if (listFile !== null) removeListFile(listFile);
          }
        });
        ctx.background('keeping a result', keeping);
        recordJob({ ...recordBase, exitCode: 0 });
        // Past the queue's bounds the compile waits for its own store: make slows down rather
        // than the queue (and the outputs it holds) growing without end.
        if (ctx.stores.full) await keeping;
        return exit(0);
      }
    }
    recordJob({ ...recordBase, exitCode: 0 });
    kept(reasons);
    return exit(0);
  } finally {
    if (depsFile !== null && depsFileOwned) removeListFile(depsFile);
  }
}

/**
 * Runs the compile on an agent when placement says so and it can (design §0.3, §2); otherwise
 * (or when that fails) says why it runs here. Only called for compiles with no local reasons.
 */
async function placeRemotely(
  ctx: JobContext,
  x: ShimExchange,
  call: CompileCall,
  known: ToolchainInfo | null,
  label: string,
): Promise<RemoteOutcome> {
  const own = call.env[PLACEMENT_ENV];
  const placement = ctx.placementFromEnv && isPlacement(own) ? own : ctx.placement;
  const remote = ctx.remote;
  if (remote === undefined || placement === 'local')
    return { kind: 'here', reason: 'placement-local' };
  if (placement === 'auto' && !localCoresBusy(ctx.localSlots.running, ctx.localSlots.cores))
    return { kind: 'here', reason: 'local-core-free' };
  let session;
  try {
    session = await remote.session();
  } catch (err) {
    warnUnlessPaused(ctx.log, err, 'muster cc: no compile session for remote jobs');
    session = null;
  }
  // remote wants an agent, and auto only gets here when this machine's cores are busy: a
  // session that cannot be had is a coordinator failing, counted as a fallback.
  if (session === null) return { kind: 'here', fallback: 'no-coordinator' };
  const choice = chooseRemote(placement, session.capacity);
  if (!choice.remote) return { kind: 'here', reason: choice.reason };
  const info = known ?? (await ctx.toolchains.of(call.path, call.childEnv['PATH'] ?? ''));
  if (info === null) return { kind: 'here', reason: 'unknown-toolchain' };
  if (info.toolchain === null) return { kind: 'here', fallback: 'toolchain-unshippable' };
  const layout = remoteJob(call.job, info.toolchain, x.hello.cwd, call.env);
  if (layout === null) return { kind: 'here', reason: 'path-shape' };
  return compileRemotely(ctx, x, {
    call,
    toolchain: info.toolchain,
    layout,
    session,
    remote,
    label,
    cwd: x.hello.cwd,
    maxQueueMs: ctx.maxQueueMs ?? maxQueueMsFor(placement),
    mode: outputMode(x.hello.umask),
  });
}

/**
 * A result obtained through the remote path (an agent's, or the shared cache's by its
 * preprocessor key) kept under the direct key as a local compile's is — its headers are the
 * files the text's line markers name — so the next build finds it without preprocessing.
 * Returns why it was not kept (empty: kept, or nothing to keep without a direct key).
 */
async function keepRemoteResult(
  ctx: JobContext,
  call: CompileCall,
  cwd: string,
  lookup: Lookup | null,
  toolchain: ToolchainInfo | null,
  outcome: Extract<RemoteOutcome, { kind: 'remote' | 'hit' }>,
  { umask, startNs }: { umask: number; startNs: bigint },
): Promise<string[]> {
  if (lookup === null || toolchain === null) return [];
  return storeResult(ctx, {
    job: call.job,
    cwd,
    env: call.env,
    direct: lookup.direct,
    sourceSha256: lookup.sourceSha256,
    toolchain,
    depsFile: null,
    headers: includedFiles(outcome.text.text, outcome.text.mainFile).map((f) => f.path),
    stderr: Buffer.alloc(0),
    mode: outputMode(umask),
    startNs,
  }).catch((err: unknown) => {
    ctx.log.warn({ err }, 'muster cc: keeping a result in the cache failed');
    return ['the cache could not keep it'];
  });
}

/**
 * Whether the compile may be cached and looked up by its direct key, and that key: the
 * toolchain's id (cached per compiler), the system-header fingerprint with -MMD, the source's
 * hash (time macros SOURCE_DATE_EPOCH does not fix: not cacheable, `unfixedTimeMacros`).
 */
async function directKey(
  ctx: JobContext,
  call: CompileCall,
  hello: ShimHello,
): Promise<{ reasons: string[]; toolchain: ToolchainInfo | null; lookup: Lookup | null }> {
  const { job, env, childEnv } = call;
  const cwd = hello.cwd;
  const reasons = [
    ...job.noCacheReasons,
    ...job.noDirectReasons.map((r) => `no direct mode: ${r}`),
  ];
  const toolchain =
    reasons.length === 0 ? await ctx.toolchains.of(call.path, childEnv['PATH'] ?? '') : null;
  if (reasons.length === 0 && toolchain === null)
    reasons.push('unknown compiler (no toolchain id)');
  let systemHeaders: string | null = null;
  if (toolchain !== null && reasons.length === 0 && job.depfile?.style === 'MMD') {
    if (extraSystemDirs(job, env)) reasons.push('-MMD with extra system include directories');
    else {
      systemHeaders = await ctx.systemHeaders.fingerprint(
        call.path,
        toolchain.id,
        job.language,
        childEnv,
      );
      if (systemHeaders === null) reasons.push('-MMD and no system header fingerprint');
    }
  }
  let lookup: Lookup | null = null;
  if (toolchain !== null && reasons.length === 0) {
    const source = await ctx.hashes.hash(resolve(cwd, job.source));
    if (source === null) reasons.push(`cannot read ${job.source}`);
    else if (unfixedTimeMacros(source.timeMacros, env).length > 0) {
      reasons.push(`time-macros: ${unfixedTimeMacros(source.timeMacros, env).join(' ')}`);
    } else {
      const inputs = directKeyInputs(
        { toolchainId: toolchain.id, job, cwd, env, stderrIsTty: hello.stderrTty, systemHeaders },
        source.sha256,
      );
      lookup = { direct: keyOf(inputs), inputs, sourceSha256: source.sha256 };
    }
  }

  return { reasons, toolchain, lookup };
}

/** Writes a hit's outputs where the compile would have; false when it cannot (then: compile). */
async function writeHit(
  hit: CacheHit,
  job: Compile,
  cwd: string,
  umask: number,
  ctx: JobContext,
): Promise<boolean> {
  const object = hit.outputs.get('object');
  const depfile = hit.outputs.get('depfile');
  if (object === undefined || (job.depfile === null) !== (depfile === undefined)) return false;
  const mode = outputMode(umask);
  try {
    // The depfile first, as gcc writes it before the object: the object stays the newer.
    if (job.depfile !== null && depfile !== undefined) {
      await writeOutput(resolve(cwd, job.depfile.path), depfile, mode);
    }
    await writeOutput(resolve(cwd, job.output), object, mode);
    return true;
  } catch (err) {
    ctx.log.debug({ err }, 'muster cc: writing a cached result failed; compiling');
    return false;
  }
}
