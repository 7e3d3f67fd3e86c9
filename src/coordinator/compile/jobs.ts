/**
 * One remote compile job of a compile session, in and out (issue 13, design §2 and §6): the
 * task the scheduler runs for a POST …/jobs body, the answer its client gets from how the task
 * ended, and the shared-cache entry kept for a result the client may use as is.
 *
 * The answer reads the agent's report: the host makes a compile that exits non-zero a failed
 * task whose value (src/extensions/cc/compile.ts CompileResult) still carries the exit code and
 * the compiler's stderr; a success carries the object, fetched into the coordinator's blobs
 * before the task was recorded. The value comes from an agent, so it is checked like any input.
 */
import { z } from 'zod';
import type { compileJobBody } from '../../api/requests.js';
import type { CompileJobView } from '../../api/views/compile.js';
import type { CompileJobSpec, JobEnd } from '../scheduler/compile-jobs.js';
import { literalPattern } from '../scheduler/compile-jobs.js';
import type { NewCacheEntry, OutputFile } from '../store/types.js';

export type CompileJobBody = z.infer<typeof compileJobBody>;

/** The bytes of stderr an answer carries at most (what cc/compile keeps). */
const STDERR_CHARS = 64 * 1024;

/** The task for a job: cc/compile of the text at `source.path`, its object the only output. */
export function jobSpec(body: CompileJobBody): CompileJobSpec {
  return {
    kind: 'compile-job',
    extension: 'cc',
    operation: 'compile',
    input: body.input,
    inputFiles: [
      {
        path: body.source.path,
        sha256: body.source.sha256,
        size: body.source.size,
        mode: 0o644,
      },
    ],
    outputs: body.input.outputs.map((o) => literalPattern(o.path)),
    timeoutMs: body.timeoutMs,
    toolchain: body.input.toolchain,
  };
}

/** What is read of cc/compile's value (the rest is ignored). */
const compileValue = z.object({
  exitCode: z.number().int().nullable(),
  stderr: z.string().max(4 * STDERR_CHARS),
  stderrBytes: z.number().int().nonnegative(),
  stdoutBytes: z.number().int().nonnegative(),
});

/**
 * Why a job that succeeded is still no result to take: its value could not be read (nothing
 * says it printed nothing), or the compiler printed on stdout (the answer does not carry it).
 * The client compiles here, with the reason as its fallback.
 */
const UNREADABLE = 'remote-result-unreadable';
const PRINTED_STDOUT = 'remote-stdout';

/** The answer to the job's client. */
export function jobView(
  task: string,
  end: JobEnd,
  cacheKey: string,
  objectPath: string,
): CompileJobView {
  const value = compileValue.safeParse(end.result?.value);
  const ran = value.success ? value.data : undefined;
  const exitCode = end.result?.exitCode ?? ran?.exitCode ?? null;
  const stderr = ran?.stderr.slice(0, STDERR_CHARS) ?? '';
  const view: CompileJobView = {
    task,
    status: end.status,
    agent: end.status === 'not-started' ? null : end.row.agent,
    exitCode,
    stderr,
    stderrBytes: ran?.stderrBytes ?? Buffer.byteLength(stderr),
    object: null,
    cacheKey,
    reason: end.reason,
    error: end.status === 'failed' ? (end.result?.error ?? errorOf(end)) : null,
  };
  if (end.status !== 'succeeded' || exitCode !== 0) return view;
  if (ran === undefined) {
    const message = "the agent's result could not be read";
    return {
      ...view,
      status: 'failed',
      reason: UNREADABLE,
      error: { code: 'OPERATION_FAILED', message },
    };
  }
  if (ran.stdoutBytes > 0) return { ...view, reason: PRINTED_STDOUT };
  const object = objectOf(end, objectPath);
  return object ? { ...view, object: { sha256: object.sha256, size: object.size } } : view;
}

function objectOf(end: JobEnd, objectPath: string): OutputFile | undefined {
  return end.row.outputs.find((o) => o.path === objectPath);
}

/** A failure the agent did not describe: the task's own words. */
function errorOf(end: JobEnd): { code: string; message: string } | null {
  if (end.row.error === null || end.result?.exitCode !== undefined) return null;
  return { code: 'OPERATION_FAILED', message: end.row.error };
}

/**
 * The shared-cache entry for an answer the client takes as is (exit 0, nothing printed, an
 * object),
 * under the key the coordinator computed from the job it ran; undefined for any other answer.
 */
export function jobCacheEntry(
  view: CompileJobView,
  end: JobEnd,
  job: {
    key: string;
    objectPath: string;
    toolchain: string;
    buildUid: string | null;
    user: string;
  },
): NewCacheEntry | undefined {
  if (view.status !== 'succeeded' || view.exitCode !== 0 || view.stderrBytes !== 0) return;
  if (view.reason !== null) return;
  const object = view.object === null ? undefined : objectOf(end, job.objectPath);
  if (object === undefined) return;
  return {
    key: job.key,
    kind: 'compile',
    outputs: [{ name: 'object', sha256: object.sha256, size: object.size, mode: object.mode }],
    stderr: null,
    exitCode: 0,
    toolchain: job.toolchain,
    source: 'agent',
    buildUid: job.buildUid,
    createdBy: job.user,
  };
}
