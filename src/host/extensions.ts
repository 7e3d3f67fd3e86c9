/**
 * Extensions: the format users write, and how the host loads them.
 *
 * An extension is a folder:
 *
 *   my-ext/
 *     muster-extension.json   { "name": "hello", "version": "1.0.0", "main": "index.js" }
 *     index.js                 the main module (ESM, or CommonJS with a package.json saying so)
 *     …                        anything else it needs, imported relatively
 *
 * - `name` matches /^[a-z0-9][a-z0-9._-]*$/ and is what tasks name in `uses:`; names are unique
 *   within one bundle. `version` is any non-empty string. `main` is a relative path inside the
 *   folder (default "index.js").
 * - The folder is shipped to agents on its own: the main module may import Node built-ins and
 *   files inside its folder, nothing else unless it vendors it (no node_modules lookup beyond the
 *   folder is guaranteed).
 * - The main module exports `operations`, an object of async functions:
 *
 *     export const operations = {
 *       async greet(input, ctx) {
 *         ctx.log(`greeting ${input.name}`);
 *         return { greeting: `hello ${input.name}` };
 *       },
 *     };
 *
 *   (CommonJS: `exports.operations = { … }`.) At least one operation is required.
 * - `input` is the task's `with:` value (JSON). `ctx` is an {@link OperationContext}.
 * - The return value must be JSON-serialisable; it becomes the task result's `value`. When it is
 *   an object with a numeric or null `exitCode`, the host also copies `exitCode` and `signal`
 *   (string or null) into the result, and the task fails when exitCode !== 0 or signal is set
 *   (this is how core/run reports a command's exit).
 * - A thrown error fails the task: its `code` is kept when it is one of Muster's error codes
 *   (docs/errors.md: for example INVALID_INPUT), otherwise it becomes OPERATION_FAILED. Create
 *   coded errors as `Object.assign(new Error(message), { code: 'INVALID_INPUT' })`.
 * - On cancel or timeout `ctx.signal` aborts. An operation should then stop promptly (kill what it
 *   started); the host waits {@link ABORT_GRACE_MS} for it to settle, then reports the task
 *   cancelled or timed out regardless and kills the process groups the task still tracks.
 * - Processes: an operation that spawns processes should spawn each with `detached: true` (its own
 *   process group) and call `ctx.trackProcess(pid)` right after spawning and
 *   `ctx.untrackProcess(pid)` once the group is gone. Tracked groups are killed when the host
 *   shuts down, when the host dies (by the agent), and when the task ends while still tracking
 *   them.
 * - Many tasks run concurrently in one host process: keep per-task state in the function, not in
 *   module globals, and never block the event loop.
 *
 * Loading: at start the host reads every `$MUSTER_BUNDLE_DIR/extensions/<folder>/` and imports its
 * main module. Any folder that is not a valid extension (missing or bad manifest, main module that
 * throws, no operations, duplicate name) stops the host with a HOST_START_FAILED fatal message
 * naming it, so a broken bundle is noticed at once rather than at the first task.
 */
import { readdir, readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkRelativePath, isInside } from './paths.js';

/** Grace period after an abort before the host stops waiting for an operation. */
export const ABORT_GRACE_MS = 5000;

export interface OperationContext {
  readonly taskId: string;
  /** Absolute path of the task's work dir (inputs are in place, outputs are collected from it). */
  readonly workDir: string;
  /**
   * Environment for child processes: the host's environment without MUSTER_* variables, plus the
   * task's `env`. A fresh object per task: an operation may change it.
   */
  readonly env: Record<string, string>;
  /** Aborted on cancel, timeout and host shutdown; `signal.reason` says which. */
  readonly signal: AbortSignal;
  /** Appends to the task's stdout / stderr log. Strings are written as UTF-8. */
  stdout(data: string | Uint8Array): void;
  stderr(data: string | Uint8Array): void;
  /** A line in the task's log stream (a newline is added when missing). */
  log(text: string): void;
  /** Announces a process group (pid of a `detached: true` child) the task started. */
  trackProcess(pid: number): void;
  /** The group is gone (call after the leader exited and the group was killed). */
  untrackProcess(pid: number): void;
}

export type Operation = (input: unknown, ctx: OperationContext) => unknown;

export interface LoadedExtension {
  name: string;
  version: string;
  dir: string;
  operations: Map<string, Operation>;
}

const NAME = /^[a-z0-9][a-z0-9._-]*$/;

/** Thrown by {@link loadExtensions}; the message names the folder. */
export class ExtensionLoadError extends Error {
  override readonly name = 'ExtensionLoadError';
}

/** Loads every extension under `<bundleDir>/extensions`, sorted by name. */
export async function loadExtensions(bundleDir: string): Promise<LoadedExtension[]> {
  const root = join(bundleDir, 'extensions');
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new ExtensionLoadError(`cannot read ${root}: ${String(err)}`);
  }
  const folders = entries.filter((e) => e.isDirectory() || e.isSymbolicLink()).map((e) => e.name);
  const loaded = await Promise.all(folders.map((f) => loadExtension(join(root, f))));
  const byName = new Map<string, LoadedExtension>();
  for (const ext of loaded) {
    const other = byName.get(ext.name);
    if (other !== undefined) {
      throw new ExtensionLoadError(
        `extensions ${other.dir} and ${ext.dir} are both named "${ext.name}"`,
      );
    }
    byName.set(ext.name, ext);
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Loads one extension folder. */
export async function loadExtension(dir: string): Promise<LoadedExtension> {
  const fail = (why: string, cause?: unknown): never => {
    throw new ExtensionLoadError(`extension ${dir}: ${why}`, { cause });
  };
  const manifestPath = join(dir, 'muster-extension.json');
  let manifest: unknown;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (err) {
    fail(`cannot read muster-extension.json: ${errorText(err)}`, err);
  }
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) {
    return fail('muster-extension.json is not a JSON object');
  }
  const { name, version, main = 'index.js' } = manifest as Record<string, unknown>;
  if (typeof name !== 'string' || !NAME.test(name)) {
    fail(`"name" must match ${String(NAME)}, got ${JSON.stringify(name)}`);
  }
  if (typeof version !== 'string' || version.length === 0) {
    fail(`"version" must be a non-empty string, got ${JSON.stringify(version)}`);
  }
  try {
    checkRelativePath(main, '"main"');
  } catch (err) {
    fail(errorText(err));
  }
  const realDir = await realpath(dir);
  const mainPath = await realpath(join(realDir, main as string)).catch((err: unknown) =>
    fail(`main module ${JSON.stringify(main)} not found: ${errorText(err)}`, err),
  );
  if (!isInside(realDir, mainPath)) fail(`main module ${JSON.stringify(main)} is outside it`);

  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(mainPath).href)) as Record<string, unknown>;
  } catch (err) {
    return fail(`main module failed to load: ${errorText(err)}`, err);
  }
  const exported =
    mod.operations ?? (mod.default as Record<string, unknown> | undefined)?.operations;
  if (typeof exported !== 'object' || exported === null) {
    return fail('main module does not export an "operations" object');
  }
  const operations = new Map<string, Operation>();
  for (const [opName, fn] of Object.entries(exported)) {
    if (typeof fn !== 'function') fail(`operation "${opName}" is not a function`);
    operations.set(opName, fn as Operation);
  }
  if (operations.size === 0) fail('"operations" is empty');
  return { name: name as string, version: version as string, dir, operations };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
