/**
 * The REST API's request bodies and queries (zod), validated by the server; paths are under
 * /api/v1. docs/api.md and the served OpenAPI document describe these; the responses are in
 * views/, the error format in error-body.ts.
 */
import { z } from 'zod';
import { sha256Hex } from '../protocol/manifest.js';

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

export const addAgentBody = z.strictObject({
  name,
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
