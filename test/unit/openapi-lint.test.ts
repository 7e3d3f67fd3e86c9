/**
 * The served OpenAPI document passes Redocly's recommended rules (redocly.yaml) with no error and
 * no warning: the document is written to a file and linted by the @redocly/cli dev dependency,
 * which needs no network for it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openApiDocument } from '../../src/coordinator/api/openapi.js';

const root = join(import.meta.dirname, '../../..');

interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: { ruleId: string; severity: string; message: string; location?: unknown }[];
}

describe('OpenAPI document, linted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-openapi-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("passes Redocly's recommended rules with no error and no warning", () => {
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(openApiDocument('1.0.0'), null, 2));
    const require = createRequire(import.meta.url);
    const pkgFile = require.resolve('@redocly/cli/package.json');
    const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { bin: Record<string, string> };
    const cli = join(dirname(pkgFile), pkg.bin.redocly ?? '');
    const run = spawnSync(
      process.execPath,
      [cli, 'lint', file, '--config', join(root, 'redocly.yaml'), '--format', 'json'],
      {
        encoding: 'utf8',
        // A bound on the wait, not a check of speed.
        timeout: 180_000,
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      },
    );
    assert.equal(run.error, undefined, String(run.error));
    const start = run.stdout.indexOf('{');
    assert.ok(start >= 0, `no report: ${run.stdout}${run.stderr}`);
    const report = JSON.parse(run.stdout.slice(start)) as LintReport;
    const problems = report.problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message}`);
    assert.deepEqual(problems, [], problems.join('\n'));
    assert.deepEqual(
      { errors: report.totals.errors, warnings: report.totals.warnings },
      { errors: 0, warnings: 0 },
    );
    assert.equal(run.status, 0, run.stderr);
  });
});
