/**
 * The coordinator's answers the compile service acts on, checked (a peer's input like any
 * other): a cache lookup names blobs the service fetches and writes where a compile's outputs
 * go, and a remote job's answer decides whether its object is taken. Unknown fields are dropped
 * (a newer coordinator may say more); a missing or ill-typed field makes the answer unusable,
 * which the service treats as a failed request (it compiles here).
 */
import { z } from 'zod';
import type {
  CacheDirectsView,
  CacheLookupView,
  CacheResultsView,
  CompileJobView,
} from '../../api/views/compile.js';
import { CACHE_DIRECTS_PAGE, putManifestLineBody } from '../../api/requests.js';
import { MusterError } from '../../protocol/errors.js';
import { sha256Hex } from '../../protocol/manifest.js';

const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const blob = z.object({ sha256: sha256Hex, size });

const cacheEntry = z.object({
  key: sha256Hex,
  kind: z.enum(['compile', 'task']),
  outputs: z
    .array(blob.extend({ name: z.string().max(64), mode: z.number().int().min(0).max(0o7777) }))
    .max(16),
  stderr: blob.nullable(),
  exitCode: z.number().int(),
  toolchain: sha256Hex.nullable(),
  source: z.enum(['client', 'agent']),
  createdAt: z.string().max(64),
});

export const cacheLookupAnswer = z.object({
  manifest: z
    .array(
      z.object({
        includes: putManifestLineBody.shape.includes,
        entry: sha256Hex,
      }),
    )
    .max(1000),
  entries: z.array(cacheEntry).max(1000),
}) satisfies z.ZodType<CacheLookupView>;

/** A page of GET /cache/directs: at most CACHE_DIRECTS_PAGE prefixes of 4 bytes, base64. */
export const cacheDirectsAnswer = z.object({
  epoch: z.string().min(1).max(64),
  reset: z.boolean(),
  prefixes: z
    .string()
    .max(4 * Math.ceil((CACHE_DIRECTS_PAGE * 4) / 3))
    .regex(/^[A-Za-z0-9+/]*={0,2}$/),
  next: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  more: z.boolean(),
  count: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
}) satisfies z.ZodType<CacheDirectsView>;

export const cacheResultsAnswer = z.object({
  results: z
    .array(
      z.union([
        z.object({ key: sha256Hex, stored: z.literal(true), created: z.boolean() }),
        z.object({
          key: sha256Hex,
          stored: z.literal(false),
          error: z.object({ code: z.string().max(64), message: z.string().max(65_536) }),
        }),
      ]),
    )
    .max(64),
}) satisfies z.ZodType<CacheResultsView>;

export const compileJobAnswer = z.object({
  task: z.string().regex(/^job-\d{1,9}$/),
  status: z.enum(['succeeded', 'failed', 'lost', 'cancelled', 'not-started']),
  agent: z.string().max(256).nullable(),
  exitCode: z.number().int().nullable(),
  stderr: z.string().max(1024 * 1024),
  stderrBytes: size,
  object: blob.nullable(),
  cacheKey: sha256Hex,
  reason: z.string().max(256).nullable(),
  error: z.object({ code: z.string().max(64), message: z.string().max(65_536) }).nullable(),
}) satisfies z.ZodType<CompileJobView>;

/** `schema`'s reading of a coordinator's answer, or INTERNAL saying what was wrong with it. */
export function checkAnswer<T>(schema: z.ZodType<T>, answer: unknown, what: string): T {
  const parsed = schema.safeParse(answer);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new MusterError(
    'INTERNAL',
    `the coordinator's ${what} is not what this client understands (${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'})`,
  );
}
