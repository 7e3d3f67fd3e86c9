/**
 * POST /cache/results' body, checked without zod when it is well-formed: the compile service
 * sends one such body for every few compiles, most of it manifest lines of hundreds of
 * [path, sha256] pairs, and zod took about as long over them as the rest of the route. The
 * check here accepts only what the schema (putCacheResultsBody) accepts; anything else, or
 * anything it is unsure of, goes to the schema, which refuses it with its own message.
 */
import type { z } from 'zod';
import {
  CACHE_RESULTS_LIMITS,
  MANIFEST_LINE_LIMITS,
  putCacheResultsBody,
} from '../../api/requests.js';
import { isObject } from '../../common/is-object.js';
import { SHA256_PATTERN } from '../../protocol/manifest.js';
import { parse } from './http-errors.js';

export type CacheResultsBody = z.infer<typeof putCacheResultsBody>;

/** The base64 of an inline blob (4 characters for every 3 bytes), as the schema bounds it. */
const BLOB_DATA_CHARS = Math.ceil(CACHE_RESULTS_LIMITS.inlineBlobBytes / 3) * 4;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function parseResultsBody(value: unknown): CacheResultsBody {
  if (wellFormed(value)) return { results: value.results, blobs: value.blobs ?? [] };
  return parse(putCacheResultsBody, value, 'cache results');
}

/** Whether the schema accepts `value` as it is, found without it (false: ask the schema). */
export function wellFormed(value: unknown): value is z.input<typeof putCacheResultsBody> {
  if (!isObject(value) || !onlyKeys(value, BODY_KEYS)) return false;
  const { results, blobs } = value;
  if (!Array.isArray(results) || results.length < 1) return false;
  if (results.length > CACHE_RESULTS_LIMITS.results || !all(results, result)) return false;
  if (blobs === undefined) return true;
  return Array.isArray(blobs) && blobs.length <= CACHE_RESULTS_LIMITS.blobs && all(blobs, blob);
}

const BODY_KEYS = new Set(['results', 'blobs']);
const RESULT_KEYS = new Set(['key', 'entry', 'manifest']);
const ENTRY_KEYS = new Set(['outputs', 'stderr', 'exitCode', 'toolchain', 'buildId']);
const OUTPUT_KEYS = new Set(['name', 'sha256', 'size', 'mode']);
const REF_KEYS = new Set(['sha256', 'size']);
const MANIFEST_KEYS = new Set(['direct', 'includes']);
const BLOB_KEYS = new Set(['sha256', 'data']);

/** Every element passes (a hole too is checked, as undefined: every() would skip it). */
function all(list: unknown[], check: (value: unknown) => boolean): boolean {
  for (const value of list) if (!check(value)) return false;
  return true;
}

/** Every own key is one of `keys` (a strict object: the schema refuses any other). */
function onlyKeys(value: Record<string, unknown>, keys: ReadonlySet<string>): boolean {
  for (const key in value) if (!keys.has(key)) return false;
  return true;
}

function sha(value: unknown): boolean {
  return typeof value === 'string' && SHA256_PATTERN.test(value);
}

function size(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function result(value: unknown): boolean {
  if (!isObject(value) || !onlyKeys(value, RESULT_KEYS)) return false;
  if (!sha(value.key) || !entry(value.entry)) return false;
  return value.manifest === undefined || manifest(value.manifest);
}

function entry(value: unknown): boolean {
  if (!isObject(value) || !onlyKeys(value, ENTRY_KEYS)) return false;
  const { outputs, stderr, exitCode, toolchain, buildId } = value;
  if (!Array.isArray(outputs) || outputs.length < 1 || outputs.length > 2) return false;
  if (!all(outputs, output)) return false;
  if (stderr !== null && !ref(stderr)) return false;
  if (exitCode !== 0 || !sha(toolchain)) return false;
  return buildId === undefined || (size(buildId) && (buildId as number) > 0);
}

function output(value: unknown): boolean {
  if (!isObject(value) || !onlyKeys(value, OUTPUT_KEYS)) return false;
  const { name, sha256, mode } = value;
  return (
    (name === 'object' || name === 'depfile') &&
    sha(sha256) &&
    size(value.size) &&
    size(mode) &&
    (mode as number) <= 0o777
  );
}

function ref(value: unknown): boolean {
  return isObject(value) && onlyKeys(value, REF_KEYS) && sha(value.sha256) && size(value.size);
}

function manifest(value: unknown): boolean {
  if (!isObject(value) || !onlyKeys(value, MANIFEST_KEYS) || !sha(value.direct)) return false;
  const { includes } = value;
  if (!Array.isArray(includes) || includes.length > MANIFEST_LINE_LIMITS.includes) return false;
  for (const include of includes) {
    if (!Array.isArray(include) || include.length !== 2) return false;
    const [path, hash] = include as unknown[];
    if (typeof path !== 'string' || path.length < 1 || path.length > MANIFEST_LINE_LIMITS.path)
      return false;
    if (!sha(hash)) return false;
  }
  return true;
}

function blob(value: unknown): boolean {
  if (!isObject(value) || !onlyKeys(value, BLOB_KEYS) || !sha(value.sha256)) return false;
  const { data } = value;
  return typeof data === 'string' && data.length <= BLOB_DATA_CHARS && BASE64.test(data);
}
