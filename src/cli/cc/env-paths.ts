/**
 * Paths an environment gives relative to the directory it was set in, made absolute: the
 * per-user compile service runs in `/` and reads them on a build's behalf (its login, its
 * certificates) long after.
 */
import { isAbsolute, resolve } from 'node:path';

/** The variables whose value is a path the compile service reads for a build or for itself. */
const PATH_VARIABLES = ['MUSTER_CONFIG_DIR', 'XDG_CONFIG_HOME', 'NODE_EXTRA_CA_CERTS'] as const;

export function withAbsolutePaths(env: NodeJS.ProcessEnv, cwd: string): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of PATH_VARIABLES) {
    const value = out[name];
    if (value !== undefined && value !== '' && !isAbsolute(value)) out[name] = resolve(cwd, value);
  }
  return out;
}
