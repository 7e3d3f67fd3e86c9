/**
 * The environment `muster build` gives its command so that every compile reaches the launcher,
 * however the build names its compiler (docs/compile.md, "How compiles reach Muster"):
 *
 * - the masquerade directory (`dist/native/masquerade/`: gcc, g++, cc, c++, clang, clang++ as
 *   links to the native launcher, made by `npm run build`) first on `PATH`, so a Makefile that
 *   says `CC=gcc` itself still runs the launcher — distcc's and icecream's way;
 * - `CC` and `CXX`: unset → the masquerade directory's `cc` / `c++`; a bare compiler name the
 *   directory holds → that entry; anything else (an absolute path, `ccache gcc`, a name the
 *   directory does not hold) → `<launcher> <value>`, the launcher form. The directory is part of
 *   the install, not a temporary one, so configure and CMake may record these paths: they keep
 *   working after the build, through the per-user service;
 * - `CMAKE_C_COMPILER_LAUNCHER` / `CMAKE_CXX_COMPILER_LAUNCHER` (CMake ≥ 3.17 reads them for a
 *   new build tree): the launcher, for trees configured before with a compiler by absolute path
 *   (the service sees through a launcher whose compiler is the masquerade directory itself);
 * - `MUSTER_CC_SOCKET` (this build's service) and `MUSTER_CC_MASQUERADE` (never scanned for the
 *   real compiler, so nothing loops back into the launcher).
 */
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MASQUERADE_ENV, SOCKET_ENV } from './shim-protocol.js';

/** The names the masquerade directory holds. */
export const MASQUERADE_NAMES = ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++'] as const;

export interface LauncherPaths {
  /** The native launcher (`dist/native/muster-cc`). */
  readonly launcher: string;
  /** The directory of compiler names linked to it. */
  readonly masquerade: string;
}

/** Where the install keeps them: `dist/native/` beside `dist/src/`. */
export function installedLauncherPaths(): LauncherPaths {
  const dist = dirname(dirname(dirname(dirname(fileURLToPath(import.meta.url)))));
  const native = join(dist, 'native');
  return { launcher: join(native, 'muster-cc'), masquerade: join(native, 'masquerade') };
}

function compilerVariable(
  value: string | undefined,
  fallback: string,
  paths: LauncherPaths,
): string {
  const trimmed = value?.trim() ?? '';
  if (trimmed === '') return join(paths.masquerade, fallback);
  if ((MASQUERADE_NAMES as readonly string[]).includes(trimmed))
    return join(paths.masquerade, trimmed);
  if (trimmed.startsWith(paths.masquerade + '/') || trimmed.startsWith(paths.launcher))
    return trimmed;
  return `${paths.launcher} ${trimmed}`;
}

/** The command's environment: `env` with the launcher in place (see the file's comment). */
export function launchEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  paths: LauncherPaths,
  socket: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) out[name] = value;
  const path = (env['PATH'] ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '' && dir !== paths.masquerade);
  out['PATH'] = [paths.masquerade, ...path].join(delimiter);
  out['CC'] = compilerVariable(env['CC'], 'cc', paths);
  out['CXX'] = compilerVariable(env['CXX'], 'c++', paths);
  out['CMAKE_C_COMPILER_LAUNCHER'] = paths.launcher;
  out['CMAKE_CXX_COMPILER_LAUNCHER'] = paths.launcher;
  out[SOCKET_ENV] = socket;
  out[MASQUERADE_ENV] = paths.masquerade;
  return out;
}
