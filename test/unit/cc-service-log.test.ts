import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const moduleUrl = new URL('../../src/cli/cc/service-log.js', import.meta.url).href;

/** Runs `body` in a fresh Node with `log` made at `level`; its stdout, stderr and status. */
function run(level: string, body: string): { stdout: string; stderr: string; status: number } {
  const script = [
    "import { createRequire } from 'node:module';",
    `const { stderrLogOnDemand } = await import(${JSON.stringify(moduleUrl)});`,
    'const pinoLoaded = () => Object.keys(createRequire(import.meta.url).cache)',
    "  .some((k) => k.includes('/node_modules/pino/'));",
    `const log = stderrLogOnDemand(${JSON.stringify(level)});`,
    body,
  ].join('\n');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    encoding: 'utf8',
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}

describe("muster build's compile service log", () => {
  it('loads pino only for a message at or above its level, and writes it to stderr', () => {
    const r = run(
      'warn',
      [
        "log.debug('d'); log.info({ a: 1 }, 'i');",
        "process.stdout.write(String(pinoLoaded()) + ' ');",
        "log.warn({ x: 1 }, 'w'); log.error('e');",
        'process.stdout.write(String(pinoLoaded()));',
      ].join('\n'),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'false true');
    const lines = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: number; msg: string; x?: number });
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg, l.x]),
      [
        [40, 'w', 1],
        [50, 'e', undefined],
      ],
    );
  });

  it('logs debug messages at level debug', () => {
    const r = run('debug', "log.debug('d'); log.info('i');");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      r.stderr
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { msg: string }).msg),
      ['d', 'i'],
    );
  });

  it('refuses a level pino does not know at once, as pino itself does', () => {
    const r = run('loud', "process.stdout.write('made');");
    assert.notEqual(r.status, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /level:loud must be included/);
  });
});
