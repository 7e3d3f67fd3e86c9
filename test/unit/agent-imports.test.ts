/**
 * `muster agent` never loads better-sqlite3 (a native addon: a release's is built for one Node
 * ABI, an install from source compiles it) nor the coordinator's HTTP server: every module the
 * agent command can import, statically or dynamically, read from the compiled tree. The
 * coordinator command is the control that the walk finds them where they are.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const cli = fileURLToPath(new URL('../../src/cli/', import.meta.url));
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g;

/** The packages reachable from `entry` (a compiled module), and the module count. */
function reachablePackages(entry: string): { packages: Set<string>; modules: number } {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const stack = [entry];
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      if (spec === undefined || spec.startsWith('node:')) continue;
      if (spec.startsWith('.')) stack.push(join(dirname(file), spec));
      else packages.add(spec.startsWith('@') ? spec.split('/', 2).join('/') : spec.split('/')[0]!);
    }
  }
  return { packages, modules: seen.size };
}

describe("the agent command's imports", () => {
  it('reach neither better-sqlite3 nor fastify; the coordinator command reaches both', () => {
    const agent = reachablePackages(join(cli, 'agent-command.js'));
    assert.ok(agent.modules > 20, `the walk found ${agent.modules} modules`);
    assert.ok(agent.packages.has('pino'));
    assert.ok(!agent.packages.has('better-sqlite3'), [...agent.packages].join(' '));
    assert.ok(!agent.packages.has('fastify'), [...agent.packages].join(' '));
    const coordinator = reachablePackages(join(cli, 'coordinator-command.js'));
    assert.ok(coordinator.packages.has('better-sqlite3'));
    assert.ok(coordinator.packages.has('fastify'));
  });
});
