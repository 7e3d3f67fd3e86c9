/**
 * A compile job as the agent runs it (design §2): the input of the built-in `cc/compile`
 * operation (`remoteCompileInput` of the remote job contract, api/requests.ts; the extension
 * checks it again, src/extensions/cc/input.ts) and where the directives-only text and the object
 * go in the task's work dir.
 *
 * Only the shape of the paths matters, not the names of the directories: the text sits at the
 * place the command line names it from a working directory as deep as its leading `..` need
 * (`../src/x.c` → file `src/x.c`, cwd `c/`), an absolute source under `root/` (`/p/x.c` → file
 * `root/p/x.c`, named by its absolute path on the agent), and maps given last turn the agent's
 * directories back into the client's in the debug information: the working directory into the
 * client's (after the user's own maps, which gcc would not apply on top of ours), `root/` into
 * `/`, and each of the user's maps of an absolute path into the same under `root/`.
 */
import { posix } from 'node:path';
import type { z } from 'zod';
import { refusedCompileArgs } from '../../api/remote-compile-args.js';
import { REMOTE_COMPILE_ENV, type remoteCompileInput } from '../../api/requests.js';
import type { Compile } from './classify.js';
import { mapDebugPath } from './prefix-maps.js';

/** The input of cc/compile, as the remote job contract (api/requests.ts) has it. */
export type RemoteCompileInput = z.infer<typeof remoteCompileInput>;
/** An argument naming a place in the work dir by its absolute path on the agent. */
export type RemoteArg = RemoteCompileInput['args'][number];
export type RemoteDebugMap = RemoteCompileInput['debugPrefixMaps'][number];

export interface RemoteJob {
  input: RemoteCompileInput;
  /** Where the directives-only text goes, relative to the work dir (a task input). */
  source: string;
  /** Where the object is written, relative to the work dir (the task's output). */
  object: string;
}

/** The directory that stands for the client's `/`. */
const ROOT = 'root';

/** A relative path whose `..` segments all lead (what a directory of that depth can hold). */
function leadingUps(path: string): number | null {
  let ups = 0;
  let seenName = false;
  for (const segment of path.split('/')) {
    if (segment === '..') {
      if (seenName) return null;
      ups++;
    } else if (segment !== '.' && segment !== '') {
      seenName = true;
    }
  }
  return seenName ? ups : null;
}

/**
 * The remote form of a compile, or null when its paths have a shape this layout does not
 * reproduce exactly (a `..` after a name, an absolute path that is not normal, an empty map) or
 * that an agent would refuse (a source named like a response file): such a job runs on the client.
 */
export function remoteJob(
  job: Compile,
  toolchain: { id: string; driver: string },
  clientCwd: string,
  env: Readonly<Record<string, string | undefined>>,
): RemoteJob | null {
  const userMaps = job.prefixMaps.filter((m) => m.kind !== 'macro');
  if (userMaps.some((m) => m.from === '')) return null;

  const absolute = posix.isAbsolute(job.source);
  let cwd = '';
  let source: string;
  let sourceArg: RemoteArg;
  if (absolute) {
    if (posix.normalize(job.source) !== job.source) return null;
    source = `${ROOT}${job.source}`;
    sourceArg = { workPath: source };
  } else {
    const ups = leadingUps(job.source);
    if (ups === null) return null;
    cwd = Array.from({ length: ups }, () => 'c').join('/');
    source = posix.normalize(posix.join(cwd, job.source));
    sourceArg = job.source;
  }

  let object: string;
  let objectArg: RemoteArg;
  if (posix.isAbsolute(job.output)) {
    if (posix.normalize(job.output) !== job.output) return null;
    object = `${ROOT}${job.output}`;
    objectArg = { workPath: object };
  } else {
    const ups = leadingUps(job.output);
    if (ups === null) return null;
    object = posix.normalize(posix.join(cwd, job.output));
    if (object === '..' || object.startsWith('../')) return null;
    objectArg = job.output;
  }
  if (object === source) return null;

  const debugPrefixMaps: RemoteDebugMap[] = [
    { dir: cwd, to: mapDebugPath(clientCwd, job.prefixMaps) },
  ];
  if (absolute) {
    // Tried before the working directory's (the work dir holds root/), the user's before ours.
    debugPrefixMaps.push({ dir: ROOT, to: '' });
    for (const map of userMaps) {
      if (map.from.startsWith('/'))
        debugPrefixMaps.push({ dir: ROOT, suffix: map.from, to: map.to });
    }
  }

  const passed: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && REMOTE_COMPILE_ENV.test(name)) passed[name] = value;
  }
  const args: RemoteArg[] = [
    ...job.compileArgs,
    '-c',
    ...(job.languageExplicit ? ['-x', job.language] : []),
    sourceArg,
    '-o',
    objectArg,
  ];
  // classify.ts kept what an agent refuses here; what is left to refuse is this layout's.
  if (refusedCompileArgs(args, cwd, object) !== null) return null;
  return {
    input: {
      toolchain: toolchain.id,
      driver: toolchain.driver,
      args,
      cwd,
      debugPrefixMaps,
      env: passed,
      outputs: [{ name: 'object', path: object }],
    },
    source,
    object,
  };
}
