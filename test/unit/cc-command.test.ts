/**
 * `muster cc` as a user runs it: the compiler run directly, the detached service (started here
 * and stopped by its pid), its stats and --explain.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { installedLauncherPaths } from '../../src/cli/cc/launch-env.js';
import { runCli } from '../helpers/cli.js';
import { fakeShim } from '../helpers/fake-shim.js';
import { requireGcc } from '../helpers/gcc.js';

async function until(check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('muster cc', () => {
  requireGcc();
  const root = mkdtempSync(join(tmpdir(), 'muster-cc-command-'));
  const src = join(root, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'x.c'), 'int x(void) { return 1; }\n');
  const runtime = join(root, 'run');
  mkdirSync(runtime, { mode: 0o700 });
  const env = { XDG_RUNTIME_DIR: runtime, XDG_CACHE_HOME: join(root, 'cache'), LC_ALL: 'C' };
  const socket = join(runtime, 'muster', 'cc.sock');
  let daemon: number | null = null;
  after(() => {
    if (daemon !== null) {
      try {
        process.kill(daemon, 'SIGTERM');
      } catch {
        // Gone already.
      }
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('runs a compiler directly: exit code and output unchanged', async () => {
    const ok = await runCli(['cc', 'gcc', '-c', 'x.c', '-o', 'direct.o'], { cwd: src, env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(existsSync(join(src, 'direct.o')));
    const failed = await runCli(['cc', 'gcc', '-c', 'missing.c'], { cwd: src, env });
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /missing\.c: No such file or directory/);
    // With the masquerade directory first on PATH (a build under muster build), the compiler is
    // the real one, never the launcher again.
    const masquerade = installedLauncherPaths().masquerade;
    const viaPath = await runCli(['cc', 'gcc', '-c', 'x.c', '-o', 'masq.o'], {
      cwd: src,
      env: { ...env, PATH: `${masquerade}:${process.env.PATH ?? ''}` },
    });
    assert.equal(viaPath.code, 0, viaPath.stderr);
    assert.ok(existsSync(join(src, 'masq.o')));
    const none = await runCli(['cc', 'no-such-compiler-q', '-c', 'x.c'], { cwd: src, env });
    assert.equal(none.code, 127);
    assert.match(none.stderr, /no-such-compiler-q: command not found/);
  });

  it('starts the service detached; counts, explains, zeroes; stops on SIGTERM', async () => {
    const started = await runCli(['cc', '--serve', '--detach', '--idle-exit', '10m'], { env });
    assert.equal(started.code, 0, started.stderr);
    const pid = /compile service started \(pid (\d+), socket (.*)\)/.exec(started.stderr);
    assert.ok(pid !== null, started.stderr);
    daemon = Number(pid[1]);
    assert.equal(pid[2], socket);
    assert.ok(existsSync(socket));
    const again = await runCli(['cc', '--serve', '--detach'], { env });
    assert.equal(again.code, 0, 'a running service is left alone');

    const out = await fakeShim({ socket, argv: ['gcc', '-c', 'x.c'], cwd: src });
    assert.equal(out.code, 0);
    let stats: Record<string, unknown> = {};
    await until(async () => {
      const shown = await runCli(['cc', '--show-stats', '--json'], { env });
      stats = JSON.parse(shown.stdout) as Record<string, unknown>;
      // The stats file may have been written while the compile ran (counted, not yet local).
      return stats['compiles'] === 1 && stats['local'] === 1;
    }, 'the stats to show the compile, compiled here');
    const text = await runCli(['cc', '--show-stats'], { env });
    assert.match(text.stdout, /^Compiles +1$/m);

    let explained = '';
    await until(async () => {
      explained = (await runCli(['cc', '--explain', 'x.o'], { cwd: src, env })).stdout;
      return explained.startsWith('x.o  gcc -c x.c');
    }, 'the explain record');
    const json = await runCli(['cc', '--explain', 'x.c', '--json'], { cwd: src, env });
    assert.equal((JSON.parse(json.stdout) as { output: string }).output, 'x.o');

    assert.equal((await runCli(['cc', '--zero-stats'], { env })).code, 0);
    const zeroed = await runCli(['cc', '--show-stats', '--json'], { env });
    assert.equal((JSON.parse(zeroed.stdout) as { compiles: number }).compiles, 0);

    process.kill(daemon, 'SIGTERM');
    await until(async () => !existsSync(socket), 'the service to stop and remove its socket');
    daemon = null;
  });

  it('refuses a command without a compiler', async () => {
    const bad = await runCli(['cc', '-c', 'x.c'], { cwd: src, env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /name the compiler first/);
  });
});
