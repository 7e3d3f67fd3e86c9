/**
 * Where a compile's toolchain is on this agent, and whether this agent can run it.
 *
 * The coordinator ships each registered toolchain inside its bundle (src/coordinator/bundles.ts):
 * its files under `toolchains/<id>/` and its description as `toolchains/<id>.json`
 * (`{ "glibc": "2.N", "driver": "bin/…", … }`), next to `extensions/cc/`. A job runs the driver
 * it names and no other program of the toolchain. A version directory is immutable, so what a
 * task finds there never changes under it, and what was checked once per host process holds.
 *
 * glibc, libm and ld.so are not shipped (they must match the agent's own ld.so): the toolchain
 * runs only where the C library is at least as new as the newest GLIBC_2.N its programs use.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ccError } from './errors.js';
import { checkRelativePath, isInside } from './paths.js';

export interface ToolchainPlace {
  /** The toolchain's root (a real path). */
  root: string;
  /** The driver's real path, inside the root. */
  driver: string;
}

/** The glibc version this process runs with ("2.36"), or undefined when it has none (musl). */
export type GlibcVersion = () => string | undefined;

let runtimeGlibc: { version: string | undefined } | undefined;

/** This agent's glibc, as Node's own diagnostic report reads it (once: it costs a few ms). */
export const agentGlibc: GlibcVersion = () => {
  if (runtimeGlibc === undefined) {
    const report = process.report.getReport() as { header?: { glibcVersionRuntime?: unknown } };
    const version = report.header?.glibcVersionRuntime;
    runtimeGlibc = { version: typeof version === 'string' ? version : undefined };
  }
  return runtimeGlibc.version;
};

/** "2.36" → [2, 36]; undefined when it is not such a version. */
export function parseGlibc(version: string): [number, number] | undefined {
  const match = /^(\d+)\.(\d+)(\.\d+)?$/.exec(version);
  if (match === null) return undefined;
  return [Number(match[1]), Number(match[2])];
}

/** Whether a C library of version `have` runs programs that need `need`. */
export function glibcSatisfies(have: string, need: string): boolean {
  const h = parseGlibc(have);
  const n = parseGlibc(need);
  if (h === undefined || n === undefined) return false;
  return h[0] > n[0] || (h[0] === n[0] && h[1] >= n[1]);
}

/** What the cc extension reads of a toolchain's description (`toolchains/<id>.json`). */
interface Description {
  /** The newest glibc its programs need. */
  glibc: string;
  /** The driver, relative to its root: the only program of it a job may name. */
  driver: string | undefined;
}

/** Descriptions read, per file (a version directory never changes). */
const descriptions = new Map<string, Promise<Description>>();

async function readDescription(toolchains: string, id: string): Promise<Description> {
  const file = join(toolchains, `${id}.json`);
  let cached = descriptions.get(file);
  if (cached === undefined) {
    cached = readFile(file, 'utf8').then((text) => {
      let parsed: { glibc?: unknown; driver?: unknown } = {};
      try {
        parsed = JSON.parse(text) as { glibc?: unknown; driver?: unknown };
      } catch {
        // no description: refused below
      }
      const { glibc, driver } = parsed ?? {};
      if (typeof glibc !== 'string' || parseGlibc(glibc) === undefined) {
        throw ccError('TOOLCHAIN_NOT_FOUND', `toolchain ${id}: its description has no glibc`);
      }
      return { glibc, driver: typeof driver === 'string' ? driver : undefined };
    });
    descriptions.set(file, cached);
    // A failure is not remembered (a test, or a later bundle, may put the file there).
    cached.catch(() => descriptions.delete(file));
  }
  return cached;
}

/**
 * The toolchain's root and driver, checked: TOOLCHAIN_NOT_FOUND when it is not in this bundle,
 * INVALID_INPUT when the driver is not the one its description names, TOOLCHAIN_INCOMPATIBLE
 * when this agent's glibc is too old for it, INVALID_PATH when the driver is not a program
 * inside it (`..`, an absolute path, a symlink that leads out).
 */
export async function locateToolchain(
  toolchains: string,
  id: string,
  driver: string,
  glibc: GlibcVersion = agentGlibc,
): Promise<ToolchainPlace> {
  checkRelativePath(driver, 'cc/compile: "driver"');
  let root: string;
  try {
    root = await realpath(join(toolchains, id));
    if (!(await stat(root)).isDirectory()) throw new Error('not a directory');
  } catch {
    throw ccError('TOOLCHAIN_NOT_FOUND', `toolchain ${id} is not on this agent`);
  }
  let description: Description;
  try {
    description = await readDescription(toolchains, id);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'TOOLCHAIN_NOT_FOUND') throw err;
    throw ccError('TOOLCHAIN_NOT_FOUND', `toolchain ${id} has no description on this agent`);
  }
  if (description.driver !== driver) {
    // Any other program of the toolchain (cc1, as, a shell a user shipped as one) is not run.
    throw ccError(
      'INVALID_INPUT',
      `cc/compile: "driver" ${JSON.stringify(driver)} is not toolchain ${id}'s driver` +
        (description.driver === undefined ? ' (its description names none)' : ''),
    );
  }
  const need = description.glibc;
  const have = glibc();
  if (have === undefined || !glibcSatisfies(have, need)) {
    throw ccError(
      'TOOLCHAIN_INCOMPATIBLE',
      `toolchain ${id} needs glibc ${need}; this agent has ${have === undefined ? 'none' : have}`,
    );
  }
  let real: string;
  try {
    real = await realpath(join(root, driver));
  } catch {
    throw ccError('INVALID_PATH', `toolchain ${id} has no driver ${JSON.stringify(driver)}`);
  }
  if (!isInside(root, real) || real === root) {
    throw ccError(
      'INVALID_PATH',
      `the driver ${JSON.stringify(driver)} leads outside toolchain ${id}`,
    );
  }
  const info = await stat(real);
  if (!info.isFile() || (info.mode & 0o111) === 0) {
    throw ccError('INVALID_PATH', `the driver ${JSON.stringify(driver)} is not a program`);
  }
  return { root, driver: real };
}
