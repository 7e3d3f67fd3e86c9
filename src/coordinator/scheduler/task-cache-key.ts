/**
 * The shared-cache key of a `cache: true` plan task (issue 13, design §6): the hash of what
 * decides its outputs when its command is a function of its declared inputs (Bazel's rule) —
 * the code that runs it (the host runtime's and the extension's files in the bundle agents run:
 * a Muster whose host lays out work dirs or collects outputs differently makes other results),
 * the operation, its
 * input, its environment, the files actually given to it (its inputs and the outputs of the
 * tasks it needs: by path, content and mode), the outputs it keeps and the agent labels it
 * requires (a task pinned to `arm64` agents makes other objects than one on `x86_64`).
 *
 * Not in it, on purpose: the task's name, timeout, retries and needs' names (two tasks that run
 * the same thing on the same files share a result), the plan's name, the user.
 */
import { createHash } from 'node:crypto';

/** Changes whenever the meaning of a key changes (old entries are then never found). */
export const TASK_CACHE_KEY_VERSION = 'muster-task-cache-2';

/** The host runtime's files, as a set beside the extensions' (no extension has this name). */
export const HOST_RUNTIME_FILES = '\0host';

export interface KeyedFile {
  path: string;
  sha256: string;
  mode: number;
}

export interface TaskCacheKeyParts {
  /** The host runtime's files in the bundle (`package.json`, `host/…`). */
  hostFiles: readonly KeyedFile[];
  extension: string;
  /** The extension's files in the bundle, relative to its directory. */
  extensionFiles: readonly KeyedFile[];
  operation: string;
  /** The operation's input (any JSON value; undefined: none). */
  input: unknown;
  env: Readonly<Record<string, string>>;
  /** The files given to the task, as placed in its work dir. */
  inputs: readonly KeyedFile[];
  /** Its output patterns. */
  outputs: readonly string[];
  requires: readonly string[];
}

export function taskCacheKey(parts: TaskCacheKeyParts): string {
  const canonical = JSON.stringify([
    TASK_CACHE_KEY_VERSION,
    files(parts.hostFiles),
    parts.extension,
    files(parts.extensionFiles),
    parts.operation,
    canonicalJson(parts.input),
    Object.entries(parts.env).sort(byFirst),
    files(parts.inputs),
    [...new Set(parts.outputs)].sort(),
    [...new Set(parts.requires)].sort(),
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

function files(list: readonly KeyedFile[]): [string, string, number][] {
  return list
    .map((f): [string, string, number] => [f.path, f.sha256, f.mode & 0o7777])
    .sort(byFirst);
}

function byFirst(a: readonly [string, ...unknown[]], b: readonly [string, ...unknown[]]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/**
 * A JSON value as text whatever the order of its objects' keys (YAML mappings keep the order
 * they were written in; `{a: 1, b: 2}` and `{b: 2, a: 1}` are one input). undefined is null.
 */
export function canonicalJson(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(byFirst)
      .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}
