/**
 * A compiler as content-addressed files an agent can run without having that compiler: the
 * driver, the programs it runs for a compile (cc1, cc1plus, as), its specs file when it has one,
 * and the shared libraries they load that are not the C library's own (glibc, libm, ld.so come
 * from the agent, which must be at least as new: `glibc`). Files keep their place relative to
 * the driver's prefix (`dirname(dirname(driver))`), so gcc's own relocation finds cc1 under
 * `lib/gcc/<triple>/<version>/` and `as` in its tool dir `<triple>/bin/`: no -B, no
 * GCC_EXEC_PREFIX, no chroot (docs/compile.md). The id is the hash of the whole description, so
 * two machines with the same compiler make the same toolchain.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, open, readFile, realpath, stat } from 'node:fs/promises';
import { basename, delimiter, dirname, isAbsolute, join, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { byPath, toolchainIdOf } from '../../common/toolchain-id.js';

const run = promisify(execFile);

export { TOOLCHAIN_FORMAT } from '../../common/toolchain-id.js';

export interface ToolchainFile {
  /** Where it goes, relative to the toolchain's root (forward slashes). */
  path: string;
  /** Where it is on this machine. */
  source: string;
  sha256: string;
  size: number;
  /** 0o755 for programs and libraries, 0o644 for data. */
  mode: number;
}

export interface Toolchain {
  /** sha256 of the canonical description (format, driver, triple, version, glibc, files). */
  id: string;
  /** The driver, relative to the root (`bin/x86_64-linux-gnu-gcc-12`). */
  driver: string;
  /** `-dumpmachine`: x86_64-linux-gnu. */
  triple: string;
  /** `-dumpfullversion`: 12.2.0. */
  version: string;
  /** The newest GLIBC_2.N any file needs, as "2.N"; an agent with an older glibc cannot run it. */
  glibc: string;
  files: ToolchainFile[];
}

/** Why a compiler cannot be shipped: its jobs run on this machine. */
export class ToolchainUnshippable extends Error {
  constructor(
    readonly compiler: string,
    readonly reason: string,
  ) {
    super(`${compiler} cannot be shipped to agents: ${reason}`);
    this.name = 'ToolchainUnshippable';
  }
}

/** Libraries every agent has as part of its C library; never shipped (they must match ld.so). */
const SYSTEM_LIBRARIES =
  /^(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux[^/]*|linux-vdso|linux-gate)\.so/;

/** The programs a C or C++ compile runs, as the driver names them. */
const PROGRAMS = ['cc1', 'cc1plus'] as const;

/**
 * `name` as the shell finds it: a path (with a slash) as is, else the first executable of that
 * name on `searchPath`.
 */
export async function resolveProgram(name: string, searchPath: string): Promise<string> {
  if (name.includes('/')) return name;
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // Not here: the next directory.
    }
  }
  throw new ToolchainUnshippable(name, `no ${name} on PATH`);
}

async function isElf(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const magic = Buffer.alloc(4);
    const { bytesRead } = await handle.read(magic, 0, 4, 0);
    return bytesRead === 4 && magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    await handle.close();
  }
}

async function ask(driver: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(driver, args, { encoding: 'utf8', timeout: 30_000 });
  return stdout.trim();
}

/** The shared libraries `ldd` says an ELF file loads, by soname -> path. */
async function sharedLibraries(file: string): Promise<Map<string, string>> {
  const { stdout } = await run('ldd', [file], { encoding: 'utf8', timeout: 30_000 });
  const libraries = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const match = /^\s*(\S+)\s+=>\s+(\/\S+)\s+\(/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) libraries.set(match[1], match[2]);
  }
  return libraries;
}

/** The newest GLIBC_2.N symbol version a file references (0 when none). */
export function newestGlibcMinor(bytes: Buffer): number {
  // A search of the bytes, not of a latin1 copy: a toolchain is ~80 MB (the copy took ~0.25 s).
  let newest = 0;
  for (let at = bytes.indexOf(GLIBC_PREFIX); at !== -1; at = bytes.indexOf(GLIBC_PREFIX, at)) {
    at += GLIBC_PREFIX.length;
    let minor = 0;
    let digits = 0;
    for (; at < bytes.length && digits < 6; at++, digits++) {
      const byte = bytes[at]!;
      if (byte < 0x30 || byte > 0x39) break;
      minor = minor * 10 + (byte - 0x30);
    }
    if (digits > 0) newest = Math.max(newest, minor);
  }
  return newest;
}

const GLIBC_PREFIX = Buffer.from('GLIBC_2.');

/** `file`'s place under the driver's prefix, or undefined when it lies outside it. */
function underPrefix(prefix: string, file: string): string | undefined {
  const rel = relative(prefix, file);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined;
  return rel.split(sep).join('/');
}

/** The canonical description a toolchain's id hashes (common/toolchain-id.ts). */
export function toolchainId(t: Omit<Toolchain, 'id'>): string {
  return toolchainIdOf(t);
}

/**
 * The toolchain of `compiler` (a name looked up on `searchPath`, or a path): what its compiles
 * run, found by asking the driver (-print-prog-name, -print-file-name) and ldd. Throws
 * ToolchainUnshippable when the compiler is not a native driver (a script, ccache, distcc) or a
 * program it runs lies outside its prefix.
 */
export async function discoverToolchain(
  compiler: string,
  searchPath: string = process.env.PATH ?? '',
): Promise<Toolchain> {
  const found = await resolveProgram(compiler, searchPath);
  const driver = await realpath(found);
  if (!(await isElf(driver))) {
    throw new ToolchainUnshippable(compiler, `${driver} is not a native program`);
  }
  const prefix = dirname(dirname(driver));
  // The driver's answers at once: each is a process start, and the first compiles of a build
  // with a new compiler wait for all of them.
  const [triple, version, asAnswer, specs, ...programAnswers] = await Promise.all([
    ask(driver, '-dumpmachine'),
    ask(driver, '-dumpfullversion'),
    ask(driver, '-print-prog-name=as'),
    ask(driver, '-print-file-name=specs'),
    ...PROGRAMS.map((program) => ask(driver, `-print-prog-name=${program}`)),
  ]);
  if (triple === '' || version === '') {
    throw new ToolchainUnshippable(compiler, 'it does not say its target and version (not gcc?)');
  }

  // place (relative to the root) -> source on this machine
  const places = new Map<string, { source: string; mode: number }>();
  const place = (path: string, source: string, mode: number): void => {
    places.set(path, { source, mode });
  };
  const driverPath = underPrefix(prefix, driver) ?? `bin/${basename(driver)}`;
  place(driverPath, driver, 0o755);

  for (const [i, program] of PROGRAMS.entries()) {
    const answer = programAnswers[i]!;
    // A bare name is the driver saying it has none (g++'s cc1plus is not installed).
    if (!isAbsolute(answer)) continue;
    const real = await realpath(answer).catch(() => undefined);
    if (real === undefined) continue;
    const at = underPrefix(prefix, answer);
    if (at === undefined) {
      throw new ToolchainUnshippable(compiler, `${program} (${answer}) is outside ${prefix}`);
    }
    place(at, real, 0o755);
  }

  // The assembler: the driver looks in its tool dir before PATH, so it goes there.
  const assembler = await realpath(
    isAbsolute(asAnswer) ? asAnswer : await resolveProgram(asAnswer, searchPath),
  );
  place(`${triple}/bin/as`, assembler, 0o755);

  if (isAbsolute(specs)) {
    const at = underPrefix(prefix, specs);
    if (at !== undefined) place(at, await realpath(specs), 0o644);
  }

  let glibcMinor = 0;
  const programs = [...places.entries()].filter(([, p]) => p.mode === 0o755);
  const libraries = await Promise.all(programs.map(([, { source }]) => sharedLibraries(source)));
  for (const found of libraries) {
    for (const [soname, library] of found) {
      if (SYSTEM_LIBRARIES.test(soname)) continue;
      place(`lib/shared/${soname}`, await realpath(library), 0o755);
    }
  }

  const files: ToolchainFile[] = [];
  for (const [path, { source, mode }] of places) {
    const bytes = await readFile(source);
    if (mode === 0o755) glibcMinor = Math.max(glibcMinor, newestGlibcMinor(bytes));
    files.push({
      path,
      source,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: bytes.length,
      mode,
    });
  }
  files.sort(byPath);
  const description = { driver: driverPath, triple, version, glibc: `2.${glibcMinor}`, files };
  return { id: toolchainId(description), ...description };
}

/**
 * The environment a shipped toolchain runs in: nothing of the caller's (no PATH to find a
 * system compiler by mistake), its own libraries first.
 */
export function toolchainEnvironment(root: string): NodeJS.ProcessEnv {
  return { PATH: '/nonexistent', LD_LIBRARY_PATH: join(root, 'lib', 'shared'), LC_ALL: 'C' };
}
