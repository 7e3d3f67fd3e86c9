import { readFileSync } from 'node:fs';
import { packagePath } from '../protocol/client/package-root.js';

/** This package's version (agent, coordinator and CLI ship together), from package.json. */
export const MUSTER_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();
