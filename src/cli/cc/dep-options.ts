/**
 * The dependency-file options of one compile (`-MD`, `-MMD`, `-MF`, `-MT`, `-MQ`, `-MP`, `-MG`,
 * `-Wp,-MD,path`, `-Wp,-MMD,path`) and the driver's rules for them, so the local preprocessing
 * pass (`-E -o tmp`) writes the same depfile the compile would (measured with gcc 12, `gcc -###`):
 *
 * - `-MD`/`-MMD` without `-MF`: the depfile is the output with its suffix replaced by `.d`
 *   (`-o sub/h.o` → `sub/h.d`, `-o .hidden` → `.d`), or without `-o` the source's base name with
 *   `.d` in the cwd (`src/x.y.c` → `x.y.d`);
 * - `-MD`/`-MMD` with `-o` and no `-MT`/`-MQ`: the driver adds `-MQ <output>`;
 * - otherwise the target is cc1's default, the source's base name with `.o` (the same under
 *   `-E`), and `-Wp,-MD,path` gets no `-MQ` from the driver either.
 */
import { withSuffix } from './languages.js';

export interface DepTarget {
  readonly name: string;
  /** `-MQ` (make-quoted by gcc) rather than `-MT` (written as is). */
  readonly quoted: boolean;
}

export interface DepfileOptions {
  /** `MMD` leaves system headers out. */
  readonly style: 'MD' | 'MMD';
  /** Where the compile writes the depfile (relative to its cwd, as given or derived). */
  readonly path: string;
  /** The targets the user named with `-MT`/`-MQ`, in order; empty → `defaultTarget`. */
  readonly targets: readonly DepTarget[];
  /** What the rule's target is when the user named none. */
  readonly defaultTarget: string;
  /** `-MP`: a phony rule per header. */
  readonly phony: boolean;
  /** `-MG`: missing headers are dependencies, not errors. */
  readonly missingOk: boolean;
  /** Given as `-Wp,-MD,path` / `-Wp,-MMD,path` (the kernel's and Lua's style). */
  readonly viaWp: boolean;
}

/** What the classifier collected while walking the arguments. */
export interface DepOptionsSeen {
  /** The dependency options as written, in order (each one or two arguments). */
  readonly given: string[];
  style: 'MD' | 'MMD' | null;
  mf: string | null;
  wpPath: string | null;
  readonly targets: DepTarget[];
  phony: boolean;
  missingOk: boolean;
}

export function emptyDepOptions(): DepOptionsSeen {
  return {
    given: [],
    style: null,
    mf: null,
    wpPath: null,
    targets: [],
    phony: false,
    missingOk: false,
  };
}

/** The depfile one compile writes, or null when it writes none. */
export function depfileOf(
  seen: DepOptionsSeen,
  source: string,
  output: string,
  outputGiven: boolean,
): DepfileOptions | null {
  if (seen.style === null) return null;
  const viaWp = seen.wpPath !== null;
  let path: string;
  if (seen.wpPath !== null) path = seen.wpPath;
  else if (seen.mf !== null) path = seen.mf;
  else if (outputGiven) path = replaceSuffix(output, '.d');
  else path = withSuffix(source, '.d');
  const defaultTarget = !viaWp && outputGiven ? output : withSuffix(source, '.o');
  return {
    style: seen.style,
    path,
    targets: [...seen.targets],
    defaultTarget,
    phony: seen.phony,
    missingOk: seen.missingOk,
    viaWp,
  };
}

/**
 * The dependency options for the local `-E -fdirectives-only … -o tmp` pass: the user's own, in
 * their order, plus the `-MF` and `-MQ` the driver would have derived from the real `-o`.
 */
export function preprocessDepArgs(
  seen: DepOptionsSeen,
  depfile: DepfileOptions | null,
  outputGiven: boolean,
): string[] {
  const args = [...seen.given];
  if (depfile === null || depfile.viaWp) return args;
  if (seen.mf === null) args.push('-MF', depfile.path);
  if (outputGiven && depfile.targets.length === 0) args.push('-MQ', depfile.defaultTarget);
  return args;
}

/**
 * What of the depfile options shapes the depfile's bytes (for the cache key): its style, phony
 * rules, `-MG`, and its targets. Not its path (an output path, like `-o`'s).
 */
export function depfileKeyArgs(depfile: DepfileOptions | null): string[] {
  if (depfile === null) return [];
  const out = [`-${depfile.style}`];
  if (depfile.phony) out.push('-MP');
  if (depfile.missingOk) out.push('-MG');
  if (depfile.targets.length === 0) out.push('-MQ', depfile.defaultTarget);
  for (const t of depfile.targets) out.push(t.quoted ? '-MQ' : '-MT', t.name);
  return out;
}

/** `sub/h.o` → `sub/h.d`; the suffix is taken from the last path component only. */
function replaceSuffix(path: string, suffix: string): string {
  const slash = path.lastIndexOf('/');
  const dot = path.lastIndexOf('.');
  return (dot > slash ? path.slice(0, dot) : path) + suffix;
}
