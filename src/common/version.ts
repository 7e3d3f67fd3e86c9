import { readFileSync } from 'node:fs';

/** This package's version (agent, coordinator and CLI ship together), from package.json. */
export const MUSTER_VERSION: string = (() => {
  try {
    // dist/src/common/ -> the package root
    const pkg = JSON.parse(
      readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
    ) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();
