/**
 * core/run against a fake operation context (no host process): validation, streaming, process
 * group tracking and killing.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseRunInput, run } from '../../src/extensions/core/run.js';
import type { OperationContext } from '../../src/host/extensions.js';

const scratch = mkdtempSync(join(tmpdir(), 'muster-core-run-'));
const groups = new Set<number>();
after(() => {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(scratch, { recursive: true, force: true });
});

interface Fake {
  ctx: OperationContext;
  controller: AbortController;
  stdout: () => string;
  stderr: () => string;
  tracked: number[];
  untracked: number[];
}

let count = 0;
function fakeContext(env: Record<string, string> = { PATH: process.env.PATH ?? '' }): Fake {
  const workDir = join(scratch, String(++count));
  mkdirSync(workDir);
  const controller = new AbortController();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const tracked: number[] = [];
  const untracked: number[] = [];
  const toBuf = (d: string | Uint8Array): Buffer => Buffer.from(d);
  const ctx: OperationContext = {
    taskId: `t${count}`,
    workDir,
    env,
    signal: controller.signal,
    stdout: (d) => out.push(toBuf(d)),
    stderr: (d) => err.push(toBuf(d)),
    log: () => undefined,
    trackProcess: (pid) => {
      tracked.push(pid);
      groups.add(pid);
    },
    untrackProcess: (pid) => untracked.push(pid),
  };
  return {
    ctx,
    controller,
    stdout: () => Buffer.concat(out).toString(),
    stderr: () => Buffer.concat(err).toString(),
    tracked,
    untracked,
  };
}

/** True while a live (non-zombie) process of group `pgid` exists. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as { code?: string }).code === 'ESRCH') return false;
  }
  // kill() also reaches zombies that wait for init to reap them: on Linux count only live ones.
  if (!existsSync('/proc/self/stat')) return true;
  return readdirSync('/proc').some((entry) => {
    if (!/^\d+$/.test(entry)) return false;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(pgrp) === pgid && state !== 'Z';
    } catch {
      return false;
    }
  });
}

async function waitUntil(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

void describe('core/run input', () => {
  void it('accepts exactly one of command and args', () => {
    assert.deepEqual(parseRunInput({ command: 'make' }), { command: 'make' });
    assert.deepEqual(parseRunInput({ args: ['make', '-j4'], cwd: 'src' }), {
      args: ['make', '-j4'],
      cwd: 'src',
    });
    const bad: unknown[] = [
      null,
      'make',
      [],
      {},
      { command: 'a', args: ['a'] },
      { command: '' },
      { args: [] },
      { args: [1] },
      { args: [''] },
      { command: 'a', shell: 'yes' },
      { command: 'a', env: { A: 1 } },
      { command: 'a', cwd: 3 },
      { command: 'a', extra: true },
    ];
    for (const input of bad) {
      assert.throws(() => parseRunInput(input), { code: 'INVALID_INPUT' }, JSON.stringify(input));
    }
  });
});

void describe('core/run', () => {
  void it('streams output, merges env and tracks its process group', async () => {
    const f = fakeContext({ PATH: process.env.PATH ?? '', A: 'ctx', B: 'ctx' });
    const result = await run(
      { command: 'echo "$A $B"; echo oops >&2; exit 4', env: { B: 'input' } },
      f.ctx,
    );
    assert.deepEqual(result, { exitCode: 4, signal: null });
    assert.equal(f.stdout(), 'ctx input\n');
    assert.equal(f.stderr(), 'oops\n');
    assert.equal(f.tracked.length, 1);
    assert.deepEqual(f.untracked, f.tracked);
  });

  void it('quotes args for the shell when asked', async () => {
    const f = fakeContext();
    await run({ args: ['printf', '%s|', "it's", '$HOME', 'a b'], shell: true }, f.ctx);
    assert.equal(f.stdout(), "it's|$HOME|a b|");
  });

  void it('runs in a cwd inside the work dir and refuses one outside', async () => {
    const f = fakeContext();
    mkdirSync(join(f.ctx.workDir, 'sub/dir'), { recursive: true });
    await run({ command: 'pwd -P', cwd: 'sub/dir' }, f.ctx);
    assert.match(f.stdout(), /\/sub\/dir\n$/);
    symlinkSync(scratch, join(f.ctx.workDir, 'up'));
    await assert.rejects(run({ command: 'pwd', cwd: 'up' }, f.ctx), { code: 'INVALID_PATH' });
    await assert.rejects(run({ command: 'pwd', cwd: 'missing' }, f.ctx), { code: 'INVALID_PATH' });
    await assert.rejects(run({ command: 'pwd', cwd: '../x' }, f.ctx), { code: 'INVALID_PATH' });
  });

  void it('an abort sends SIGTERM to the whole group', async () => {
    const f = fakeContext();
    const pending = run({ command: 'sleep 100 & sleep 100 & wait' }, f.ctx);
    await waitUntil('the spawn', () => f.tracked.length > 0);
    f.controller.abort(new Error('cancel'));
    const result = await pending;
    assert.equal(result.exitCode, null);
    assert.equal(result.signal, 'SIGTERM');
    assert.deepEqual(f.untracked, f.tracked);
    await waitUntil('the group to die', () => !groupAlive(f.tracked[0] as number));
  });

  void it('does not start anything once aborted', async () => {
    const f = fakeContext();
    f.controller.abort(new Error('too late'));
    await assert.rejects(run({ command: 'echo hi' }, f.ctx), /too late/);
    assert.deepEqual(f.tracked, []);
  });

  void it('fails with OPERATION_FAILED when the program does not exist', async () => {
    const f = fakeContext();
    await assert.rejects(
      run({ args: ['/nonexistent/prog'] }, f.ctx),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'OPERATION_FAILED');
        assert.match(err.message, /ENOENT/);
        return true;
      },
    );
    assert.deepEqual(f.tracked, []);
    const viaShell = await run({ command: '/nonexistent/prog' }, f.ctx);
    assert.equal(viaShell.exitCode, 127);
  });
});
