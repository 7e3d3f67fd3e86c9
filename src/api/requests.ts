/**
 * The REST API's request bodies and queries (zod), validated by the server; paths are under
 * /api/v1. docs/api.md and the served OpenAPI document describe these; the responses are in
 * views/, the error format in error-body.ts.
 */
import { z } from 'zod';
import { sha256Hex } from '../protocol/manifest.js';
import { isSafeRelativePath } from '../protocol/paths.js';
import { refusedCompileArgs } from './remote-compile-args.js';
import { MAX_SECRET_VALUE_BYTES } from './secret-names.js';

export const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_", "-"; at most 64');
const label = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a label');

export const buildFileSchema = z.strictObject({
  path: z.string().min(1).max(1024),
  sha256: sha256Hex,
  size: z.number().int().nonnegative(),
  mode: z.number().int().min(0).max(0o777),
});

// ---- requests -------------------------------------------------------------------------------

export const loginBody = z.strictObject({
  user: z.string().min(1).max(64),
  password: z.string().min(1).max(1024),
});

/** Names an agent cannot have: they are routes under /api/v1/agents/. */
export const RESERVED_AGENT_NAMES: ReadonlySet<string> = new Set(['probe', 'connect']);

export const addAgentBody = z.strictObject({
  name: name.refine((n) => !RESERVED_AGENT_NAMES.has(n), 'a name the API uses for itself'),
  /** HOST:PORT; the port defaults to 7420. */
  address: z.string().min(1).max(300),
  accessKey: z.string().min(16).max(1024),
  /** SHA-256 fingerprint of the agent's certificate (colon hex, as `muster agent` prints it). */
  fingerprint: z.string().max(200).optional(),
  /** false: plain TCP (the agent runs with --no-tls). */
  tls: z.boolean().optional(),
  labels: z.array(label).max(64).optional(),
  slots: z.number().int().min(1).max(1024).optional(),
});

/** POST /api/v1/agents/probe: the certificate an agent presents, before adding it. */
export const probeAgentBody = z.strictObject({ address: z.string().min(1).max(300) });

export const updateAgentBody = z.strictObject({
  labels: z.array(label).max(64).optional(),
  slots: z.number().int().min(1).max(1024).nullable().optional(),
});

/** POST /api/v1/join-tokens: what the agents that join with it get. */
export const createJoinTokenBody = z.strictObject({
  labels: z.array(label).max(64).optional(),
  /** Agents that join with it work at once, without an admin's approval. */
  autoApprove: z.boolean().optional(),
  /** How long it admits agents (`24h`, `7d`; default 24h), or `never`. */
  expires: z.string().min(1).max(32).optional(),
});

export const addExtensionBody = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  version: z.string().min(1).max(64),
  files: z.array(buildFileSchema).min(1).max(10_000),
});

/** PUT /api/v1/certificate: a new certificate (chain) and its key, PEM. */
export const putCertificateBody = z.object({
  certificate: z.string().min(1, 'paste or choose the certificate (PEM)'),
  key: z.string().min(1, 'paste or choose the private key (PEM)'),
});

export const missingBlobsBody = z.strictObject({ hashes: z.array(sha256Hex).max(100_000) });

export const createBuildBody = z.strictObject({
  /** The plan's YAML text. */
  plan: z
    .string()
    .min(1)
    .max(1024 * 1024),
  /** The input files the client uploaded, paths relative to the plan's directory. */
  files: z.array(buildFileSchema).max(100_000).default([]),
});

export const listBuildsQuery = z.strictObject({
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  before: z.coerce.number().int().positive().optional(),
  /** Builds whose name or user contains this (any case), or whose number it is. */
  q: z.string().max(100).optional(),
});

export const logsQuery = z.strictObject({
  task: z.string().max(64).optional(),
  after: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

export const setSettingBody = z.strictObject({ value: z.unknown() });

const password = z.string().min(8, 'at least 8 characters').max(1024);
const role = z.enum(['admin', 'viewer']);

export const createUserBody = z.strictObject({ name, password, role });

/** An admin changes another user's role or password (or both). */
export const updateUserBody = z
  .strictObject({ role: role.optional(), password: password.optional() })
  .refine((b) => b.role !== undefined || b.password !== undefined, 'give a role or a password');

/** Anyone changes their own password, proving the current one. */
export const changePasswordBody = z.strictObject({
  current: z.string().min(1).max(1024),
  password,
});

/** PUT /api/v1/backups/selected: a registered backup's name, or null for none. */
export const selectBackupBody = z.object({
  name: name.nullable(),
});

/**
 * Setting a secret: its value (the name is the path's). Write-only: no route returns it. Bounded
 * well within the body limit; the exact limit (bytes of UTF-8) is checked by the coordinator.
 */
export const setSecretBody = z.strictObject({
  value: z.string().min(1).max(MAX_SECRET_VALUE_BYTES),
});

// ---- compile sessions and the shared cache (issue 13, docs/compile.md) ----------------------

/** The reasons a compile ran here instead of remotely or from the cache (stats, records). */
export const compileReason = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,39}$/, 'a reason such as agent-lost');

/** POST /api/v1/compile-sessions: `muster build` (or a `muster cc` working session) starts. */
export const createCompileSessionBody = z.strictObject({
  /** The command line being run (`make -j4`), for the build's name and the UI. */
  command: z.string().min(1).max(8192),
  cwd: z.string().min(1).max(4096),
  /** The client machine's host name. */
  host: z.string().min(1).max(255),
  /** sha256 of "muster-boot:" + the kernel's boot_id: agents with the same one share its cores. */
  bootId: sha256Hex.optional(),
});

/** One job that did not run on an agent: compiled on the client, or served from the cache. */
export const compileRecord = z.strictObject({
  /** The compile's command line as the user's build wrote it (shortened by the client). */
  label: z.string().min(1).max(8192),
  placement: z.enum(['local', 'cache']),
  cache: z.enum(['hit', 'miss', 'off']),
  /** The compiler's exit status; null when a signal ended it. */
  exitCode: z.number().int().min(0).max(255).nullable(),
  /** Milliseconds since the epoch, the client's clock. */
  startedAt: z.number().int().nonnegative(),
  durationMs: z.number().int().nonnegative(),
  /** Why an infrastructure failure sent it local (counted under fallbacks), if one did. */
  fallback: compileReason.optional(),
  /**
   * The remote job (its task name, from POST …/jobs) this record settles: a job that did not
   * start, was lost or whose result was not taken ran on the client in the end, and its row
   * becomes this record instead of a second row for the same compile.
   */
  job: z
    .string()
    .regex(/^job-\d{1,9}$/)
    .optional(),
});

/** POST /api/v1/compile-sessions/{id}/records: batched; also the session's heartbeat. */
export const compileRecordsBody = z.strictObject({
  records: z.array(compileRecord).max(1000),
});

export const compileSummary = z.strictObject({
  jobs: z.number().int().nonnegative(),
  remote: z.number().int().nonnegative(),
  local: z.number().int().nonnegative(),
  cacheHits: z.number().int().nonnegative(),
  fallbacks: z.number().int().nonnegative(),
});

/** POST /api/v1/compile-sessions/{id}/close: the command ended with this exit code. */
export const closeCompileSessionBody = z.strictObject({
  /** The command's exit status (null: a signal ended it); the build fails iff it is not 0. */
  exitCode: z.number().int().min(0).max(255).nullable(),
  summary: compileSummary,
});

/** POST /api/v1/cache/lookup: a direct key's manifest and/or entries by key, in one round trip. */
export const cacheLookupBody = z
  .strictObject({
    direct: sha256Hex.optional(),
    keys: z.array(sha256Hex).max(32).optional(),
  })
  .refine((b) => b.direct !== undefined || (b.keys?.length ?? 0) > 0, 'give direct or keys');

/** Direct keys a page of GET /api/v1/cache/directs lists at most (256 KiB of prefixes). */
export const CACHE_DIRECTS_PAGE = 65_536;

/** GET /api/v1/cache/directs: the direct keys after number `since` of listing `epoch`. */
export const cacheDirectsQuery = z.strictObject({
  epoch: z.string().min(1).max(64).optional(),
  since: z.coerce.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
});

export const cacheBlobRef = z.strictObject({
  sha256: sha256Hex,
  size: z.number().int().nonnegative(),
});

export const cacheOutput = z.strictObject({
  /** 'object' or 'depfile' for a compile. */
  name: z.enum(['object', 'depfile']),
  sha256: sha256Hex,
  size: z.number().int().nonnegative(),
  mode: z.number().int().min(0).max(0o777),
});

/**
 * PUT /api/v1/cache/entries/{key}: a compile's result (its blobs uploaded first). Only results
 * of compiles that exited 0 are stored; an existing key answers the row already there.
 */
export const putCacheEntryBody = z.strictObject({
  outputs: z.array(cacheOutput).min(1).max(2),
  stderr: cacheBlobRef.nullable(),
  exitCode: z.literal(0),
  toolchain: sha256Hex,
  /** The compile session it was made in. */
  buildId: z.number().int().positive().optional(),
});

/** A manifest line's bounds, wherever one is read (the coordinator, the CLI's local tier). */
export const MANIFEST_LINE_LIMITS = { includes: 20_000, path: 4096 } as const;

/** POST /api/v1/cache/manifests/{direct}: "with these includes, the result is that entry". */
export const putManifestLineBody = z.strictObject({
  /** [path, sha256] of every file the compile read besides its source, in the compiler's order. */
  includes: z
    .array(z.tuple([z.string().min(1).max(MANIFEST_LINE_LIMITS.path), sha256Hex]))
    .max(MANIFEST_LINE_LIMITS.includes),
  entry: sha256Hex,
});

/**
 * The bounds of one POST /cache/results: the route checks them, and the compile service cuts its
 * batches by them (a result whose rows alone are over `rowBytes` goes the one-by-one way).
 */
export const CACHE_RESULTS_LIMITS = {
  results: 64,
  /** Inline blobs: an object, a depfile and a stderr for each result. */
  blobs: 192,
  /** Bytes of inline blobs, decoded. */
  inlineBytes: 4 * 1024 * 1024,
  /** A blob larger than this is uploaded on its own (PUT /blobs/{sha256}) before its result. */
  inlineBlobBytes: 1024 * 1024,
  /** The results' JSON (entries and manifest lines) besides the blobs. */
  rowBytes: 4 * 1024 * 1024,
} as const;

/**
 * POST /api/v1/cache/results: several results at once (the compile service's uploads), each an
 * entry as PUT /cache/entries/{key} takes it and, optionally, its manifest line; small blobs
 * ride along (base64), larger ones are uploaded first. One round trip instead of four a result.
 */
export const putCacheResultsBody = z.strictObject({
  results: z
    .array(
      z.strictObject({
        key: sha256Hex,
        entry: putCacheEntryBody,
        manifest: z
          .strictObject({
            direct: sha256Hex,
            includes: putManifestLineBody.shape.includes,
          })
          .optional(),
      }),
    )
    .min(1)
    .max(CACHE_RESULTS_LIMITS.results),
  blobs: z
    .array(
      z.strictObject({
        sha256: sha256Hex,
        // base64: 4 characters for every 3 bytes.
        data: z
          .string()
          .max(Math.ceil(CACHE_RESULTS_LIMITS.inlineBlobBytes / 3) * 4)
          .regex(/^[A-Za-z0-9+/]*={0,2}$/),
      }),
    )
    .max(CACHE_RESULTS_LIMITS.blobs)
    .default([]),
});

/** PUT /api/v1/toolchains/{id}: a compiler's files (uploaded as blobs first) and description. */
export const putToolchainBody = z.strictObject({
  files: z.array(buildFileSchema).min(1).max(10_000),
  info: z.record(z.string().max(64), z.unknown()),
});

// ---- remote compile jobs (issue 13, design §2) ------------------------------------------------

/** A path inside an agent's work dir: relative, no `..`, no empty or `.` segments. */
const workDirPath = z
  .string()
  .min(1)
  .max(4096)
  .refine(isSafeRelativePath, 'a relative path inside the work dir');

/** A directory of the work dir, '' for the work dir itself. */
const workDirDir = z.union([z.literal(''), workDirPath]);

/** The client's variables a remote compile takes (the cc extension refuses any other). */
export const REMOTE_COMPILE_ENV =
  /^(LANG|LC_[A-Z]+|SOURCE_DATE_EPOCH|TZ|GCC_COLORS|GCC_URLS|TERM_URLS)$/;

/** The most argument bytes a remote compile may have (the cc extension's own limit). */
export const REMOTE_ARG_BYTES = 64 * 1024;

/** The arguments' size as the cc extension counts it: each one's UTF-8 bytes and a separator. */
function remoteArgBytes(args: readonly (string | { workPath: string })[]): number {
  const utf8 = new TextEncoder();
  let bytes = 0;
  for (const a of args) bytes += utf8.encode(typeof a === 'string' ? a : a.workPath).length + 1;
  return bytes;
}

/** The fields of remoteCompileInput, each checked on its own. */
const remoteCompileFields = z.strictObject({
  toolchain: sha256Hex,
  /** The driver, relative to the toolchain's root (`bin/x86_64-linux-gnu-gcc-12`). */
  driver: workDirPath,
  args: z
    .array(
      z.union([
        z
          .string()
          .max(65_536)
          .refine((a) => !a.includes('\0'), 'no NUL bytes'),
        z.strictObject({ workPath: workDirPath }),
      ]),
    )
    .min(1)
    .max(4096)
    .refine(
      (args) => remoteArgBytes(args) <= REMOTE_ARG_BYTES,
      `at most ${REMOTE_ARG_BYTES} bytes of arguments`,
    ),
  cwd: workDirDir,
  debugPrefixMaps: z
    .array(
      z.strictObject({
        dir: workDirDir,
        suffix: z.string().max(4096).optional(),
        to: z.string().max(4096),
      }),
    )
    .max(16),
  env: z
    .record(z.string().regex(REMOTE_COMPILE_ENV), z.string().max(4096))
    .refine((e) => Object.keys(e).length <= 32, 'at most 32 variables'),
  outputs: z.tuple([z.strictObject({ name: z.literal('object'), path: workDirPath })]),
});

/**
 * The input of the built-in cc/compile operation (src/extensions/cc/input.ts checks it again on
 * the agent, field by field): the client's compile rewritten for the agent's work dir. Its
 * arguments are those of a plain compile only: the agent's own check (the one predicate of
 * src/extensions/cc/remote-args.ts), made here too so a job an agent would refuse is refused
 * before it is queued.
 */
export const remoteCompileInput = remoteCompileFields.superRefine((input, ctx) => {
  const refused = refusedCompileArgs(input.args, input.cwd, input.outputs[0].path);
  if (refused !== null) ctx.addIssue({ code: 'custom', path: ['args'], message: refused });
});

/**
 * POST /api/v1/compile-sessions/{id}/jobs: run one compile on an agent and wait for its result.
 * The directives-only text is uploaded first (PUT /api/v1/blobs/{sha256}).
 */
export const compileJobBody = z.strictObject({
  /** The compile's command line as the user's build wrote it (shortened by the client). */
  label: z.string().min(1).max(8192),
  input: remoteCompileInput,
  /** The directives-only text: where it goes in the work dir, and its blob. */
  source: z.strictObject({
    path: workDirPath,
    sha256: sha256Hex,
    size: z.number().int().nonnegative(),
  }),
  /**
   * How long the job may wait for an agent slot: after that it is not started and the answer
   * says so (the client compiles it itself rather than queue behind other builds).
   */
  maxQueueMs: z.number().int().min(0).max(60_000).default(100),
  /** The compile is ended on the agent after this long (and the answer says failed). */
  timeoutMs: z.number().int().min(1000).max(3_600_000).default(600_000),
  /**
   * false: the coordinator keeps nothing of this job in the shared cache (`muster build
   * --no-cache`); true (the default) keeps a result the client takes as is under its key.
   */
  keep: z.boolean().default(true),
});
