/**
 * The shared-cache key of one remote compile job (issue 13): the hash of exactly what the agent
 * runs — the toolchain (its id is the hash of its files), the driver, the arguments, the work
 * dir layout, the debug maps, the variables it passes and the directives-only text. The client
 * computes it to look the job up before sending it; the coordinator computes it from the job it
 * ran to keep the result, so a result obtained from an agent is stored under the key of what
 * ran, whatever key a client might claim.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { compileJobBody } from './requests.js';

/** Changes whenever the meaning of a key changes (old entries are then never found). */
export const COMPILE_JOB_KEY_VERSION = 'muster-cc-remote-1';

type Job = Pick<z.infer<typeof compileJobBody>, 'input' | 'source'>;

/** Key order of objects does not matter: every field is placed by position. */
export function compileJobKey(job: Job): string {
  const { input, source } = job;
  const canonical = JSON.stringify([
    COMPILE_JOB_KEY_VERSION,
    input.toolchain,
    input.driver,
    input.args.map((a) => (typeof a === 'string' ? a : { workPath: a.workPath })),
    input.cwd,
    input.debugPrefixMaps.map((m) => [m.dir, m.suffix ?? null, m.to]),
    Object.entries(input.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    input.outputs.map((o) => [o.name, o.path]),
    [source.path, source.sha256, source.size],
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}
