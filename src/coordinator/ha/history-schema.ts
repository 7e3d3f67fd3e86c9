/**
 * What a backup hands back at failback, checked like API input before any of it reaches the
 * store: a build with its tasks, attempts and log chunks, the tokens its users made, and the
 * compile cache's rows it made. Nothing else crosses (never users, roles, password hashes or
 * settings), and every field has its type, its range and a length limit, so a backup with a bug
 * (or a stolen secret) cannot write rows the primary's own code would never write.
 */
import { z } from 'zod';
import { MusterError } from '../../protocol/errors.js';
import { sha256Hex } from '../../protocol/manifest.js';
import { isSafeRelativePath } from '../../protocol/paths.js';
import { takeoverSchema } from '../store/ha-state.js';

const MAX_TEXT = 64 * 1024;
const MAX_PLAN = 16 * 1024 * 1024;
const id = z.number().int().positive();
const count = z.number().int().nonnegative();
const when = z.string().max(64);
const text = z.string().max(MAX_TEXT);
const taskName = z.string().min(1).max(200);
const fileEntry = z.object({
  path: z.string().max(4096).refine(isSafeRelativePath, 'a safe relative path'),
  sha256: sha256Hex,
  size: z.number().int().nonnegative(),
  mode: z.number().int().min(0).max(0o7777),
});

/** A JSON list of files as the store keeps it (builds.files, tasks.outputs), each checked. */
const fileList = z
  .string()
  .max(MAX_PLAN)
  .refine((value) => {
    try {
      return z.array(fileEntry).max(100_000).safeParse(JSON.parse(value)).success;
    } catch {
      return false;
    }
  }, 'a JSON list of files (path, sha256, size, mode)');

/** The plan as the store keeps it: JSON of a parsed plan, with its tasks. */
const storedPlan = z
  .string()
  .max(MAX_PLAN)
  .refine((value) => {
    try {
      const plan = JSON.parse(value) as { tasks?: unknown } | null;
      return typeof plan === 'object' && plan !== null && Array.isArray(plan.tasks);
    } catch {
      return false;
    }
  }, 'a stored plan (JSON with its tasks)');

/** A closed compile session's counts as the store keeps them (builds.summary, JSON). */
const compileSummaryJson = z
  .string()
  .max(1024)
  .refine((value) => {
    try {
      return z
        .strictObject({
          jobs: count,
          remote: count,
          local: count,
          cacheHits: count,
          fallbacks: count,
        })
        .safeParse(JSON.parse(value)).success;
    } catch {
      return false;
    }
  }, 'a compile summary (JSON)');

const build = z.object({
  id,
  uid: z.string().regex(/^[0-9a-f]{32}$/),
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']),
  plan: storedPlan,
  files: fileList,
  created_by: z.string().max(200),
  created_at: when,
  started_at: when.nullable(),
  finished_at: when.nullable(),
  error: text.nullable(),
  // Migration 6 (compile sessions); a backup without them sends a plan build's values.
  kind: z.enum(['plan', 'compile']).default('plan'),
  open: z.union([z.literal(0), z.literal(1)]).default(0),
  summary: compileSummaryJson.nullable().default(null),
});

const task = z.object({
  build_id: id,
  name: taskName,
  position: count,
  status: z.enum(['pending', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped']),
  attempts: count,
  exit_code: z.number().int().nullable(),
  agent: z.string().max(200).nullable(),
  started_at: when.nullable(),
  finished_at: when.nullable(),
  outputs: fileList,
  error: text.nullable(),
  label: z.string().max(8192).nullable().default(null),
  cache: z.enum(['hit', 'miss', 'off']).nullable().default(null),
  placement: z.enum(['remote', 'local', 'cache']).nullable().default(null),
  fallback: z.string().max(64).nullable().default(null),
  spec: z.string().max(MAX_TEXT).nullable().default(null),
});

const attempt = z.object({
  id,
  build_id: id,
  task_name: taskName,
  number: id,
  agent: z.string().max(200),
  agent_task_id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/),
  status: z.enum(['running', 'succeeded', 'failed', 'cancelled', 'timed-out', 'lost']),
  started_at: when,
  finished_at: when.nullable(),
  exit_code: z.number().int().nullable(),
  error: text.nullable(),
  next_seq: count,
});

const logChunk = z.object({
  id,
  build_id: id,
  task_name: taskName,
  attempt: count,
  stream: z.enum(['stdout', 'stderr', 'log']),
  data: z.object({ $b64: z.string().max(8 * 1024 * 1024) }),
  at: when,
});

export const buildHistorySchema = z
  .object({
    build,
    tasks: z.array(task).max(100_000),
    attempts: z.array(attempt).max(1_000_000),
    logs: z.array(logChunk).max(10_000),
  })
  .superRefine((history, ctx) => {
    // Every row must belong to the build it came with, and every attempt and chunk to a task of it.
    const names = new Set(history.tasks.map((t) => t.name));
    const own = (buildId: number, name?: string) =>
      buildId === history.build.id && (name === undefined || names.has(name));
    if (!history.tasks.every((t) => own(t.build_id)))
      ctx.addIssue({ code: 'custom', message: 'a task of another build' });
    if (!history.attempts.every((a) => own(a.build_id, a.task_name)))
      ctx.addIssue({ code: 'custom', message: 'an attempt of another build or task' });
    if (!history.logs.every((l) => own(l.build_id, l.task_name)))
      ctx.addIssue({ code: 'custom', message: 'a log chunk of another build or task' });
  });

const token = z.object({
  user_name: z.string().min(1).max(200),
  token_hash: sha256Hex,
  created_at: when,
  expires_at: when,
  last_used_at: when.nullable(),
});

export const handedBackTokensSchema = z.array(token).max(100_000);

/** The compile cache's rows a backup made while it ran the cluster (store/cache.ts), by page. */
const sha256 = sha256Hex;
const createdBy = z.string().min(1).max(256);
const cachePage = <T extends z.ZodType>(row: T) =>
  z.object({
    rows: z.array(row).max(1000),
    next: z.object({ at: when, key: z.string().max(200) }).nullable(),
  });

export const handedBackCacheSchemas = {
  toolchains: cachePage(
    z.object({
      id: sha256,
      files: z.array(fileEntry).min(1).max(1000),
      info: z.record(z.string(), z.unknown()),
      createdBy,
      createdAt: when,
      // Its last use on the backup (a backup of an older version does not say).
      lastUsedAt: when.optional(),
    }),
  ),
  entries: cachePage(
    z.object({
      key: sha256,
      kind: z.enum(['compile', 'task']),
      outputs: z
        .array(
          z.object({
            name: z.string().min(1).max(4096),
            sha256,
            size: count,
            mode: z.number().int().min(0).max(0o7777),
          }),
        )
        .max(10_000),
      stderr: z.object({ sha256, size: count }).nullable(),
      exitCode: z.number().int(),
      toolchain: sha256.nullable(),
      source: z.enum(['client', 'agent']),
      buildUid: z.string().min(1).max(64).nullable(),
      createdBy,
      createdAt: when,
    }),
  ),
  manifests: cachePage(
    z.object({
      direct: sha256,
      includes: z.array(z.tuple([z.string().min(1).max(4096), sha256])).max(20_000),
      entry: sha256,
      createdBy,
      createdAt: when,
    }),
  ),
};

/** A backup's term: the primary takes one above it, which agents must still grant. */
const backupTerm = z
  .number()
  .int()
  .nonnegative()
  .max(2 ** 31 - 2);

export const backupStateSchema = z.object({
  state: z.enum(['standby', 'taking-over', 'active', 'handing-back']),
  term: backupTerm,
  history: z.boolean(),
});

export const handbackBeginSchema = z.object({
  term: backupTerm,
  builds: z.array(id).max(1_000_000),
  takeover: takeoverSchema.nullable(),
});

/** Parses what a backup sent, or throws VALIDATION_FAILED naming the first problems. */
export function fromBackup<T extends z.ZodType>(
  schema: T,
  value: unknown,
  what: string,
): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
  throw new MusterError(
    'VALIDATION_FAILED',
    `the backup sent an invalid ${what}: ${problems.join('; ')}`,
    { problems },
  );
}

/** A page of the audit rows a backup wrote while it ran the cluster (store/audit.ts exportSince). */
export const AUDIT_HANDBACK_PAGE = 500;
export const handedBackAuditSchema = z
  .array(
    z.object({
      id,
      uid: z.string().min(1).max(100),
      at: z.number().int().nonnegative(),
      actor: z.string().min(1).max(256),
      actorKind: z.enum(['user', 'system', 'backup']),
      ip: z.string().max(100).nullable(),
      action: z
        .string()
        .regex(/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$/, 'a dotted code')
        .max(64),
      target: z.string().max(4096),
      details: z
        .record(z.string(), z.unknown())
        .refine((d) => JSON.stringify(d).length <= MAX_TEXT, 'details of at most 64 KiB'),
    }),
  )
  .max(AUDIT_HANDBACK_PAGE);
