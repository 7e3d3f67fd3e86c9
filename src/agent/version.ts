import { readFileSync } from 'node:fs';

/** The agent's own version, from package.json (dist/src/agent/ -> the package root). */
export const AGENT_VERSION: string = (() => {
  try {
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
