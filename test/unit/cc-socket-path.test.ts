/**
 * The compile service's socket on disk: a socket its service left behind (nobody listens) is
 * cleared for a new service; one whose service is there but too busy to accept is never removed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { clearStaleSocket, probeSocket } from '../../src/cli/cc/socket-path.js';
import { MusterError } from '../../src/protocol/errors.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'muster-cc-socket-'));
  dirs.push(dir);
  return dir;
}

/**
 * A process listening on `path` (backlog 1) whose event loop then blocks for a minute: the
 * kernel queues connections for it, it accepts none — a service busy hashing a toolchain.
 */
async function blockedListener(path: string): Promise<ChildProcess> {
  const script =
    `const s = require('node:net').createServer();` +
    `s.listen({ path: ${JSON.stringify(path)}, backlog: 1 }, () => {` +
    `  process.stdout.write('up\\n');` +
    `  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);` +
    `});`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the listener exited (${code})`)));
  });
  return child;
}

function attempt(path: string): Promise<{ socket: Socket; error?: string }> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => resolve({ socket }));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      resolve({ socket, error: err.code ?? 'error' }),
    );
  });
}

describe('the compile service socket on disk', () => {
  it('clears a socket nobody listens on any more', async () => {
    const path = join(tempDir(), 'cc.sock');
    const listener = await blockedListener(path);
    listener.kill('SIGKILL');
    await new Promise((resolve) => listener.once('exit', resolve));
    assert.ok(lstatSync(path).isSocket(), 'left behind by the killed process');

    assert.equal(await probeSocket(path), 'refused');
    await clearStaleSocket(path);
    assert.equal(existsSync(path), false);
  });

  it('never removes the socket of a service that is there but does not accept in time', async () => {
    const path = join(tempDir(), 'cc.sock');
    await blockedListener(path);
    // Fill its backlog: the kernel then refuses a non-blocking connect with EAGAIN.
    const held: Socket[] = [];
    let error: string | undefined;
    for (let i = 0; i < 64 && error === undefined; i++) {
      const result = await attempt(path);
      held.push(result.socket);
      error = result.error;
    }
    try {
      assert.equal(error, 'EAGAIN', 'the backlog filled up');
      assert.equal(await probeSocket(path, 200), 'busy');
      await assert.rejects(
        clearStaleSocket(path),
        (err: unknown) => err instanceof MusterError && err.code === 'CONFLICT',
      );
      assert.ok(lstatSync(path).isSocket(), 'still there');
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});
