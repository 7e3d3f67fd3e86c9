/** `muster agent` as a user runs it: first start, restart, bad flags, draining on SIGTERM. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, copyFile, link, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createBundle } from '../../src/protocol/client/bundle.js';
import { cleanup, cliPath, makeTempDir, startAgent } from '../helpers/agent-process.js';

const dirs: string[] = [];
after(() => cleanup(dirs));

const run = promisify(execFile);

describe('muster agent', () => {
  it('creates its key and certificate on first start, prints the key once and the fingerprint always', async () => {
    const dataDir = await makeTempDir();
    dirs.push(dataDir);
    const first = await startAgent({ dataDir });
    assert.match(first.stderr(), new RegExp(first.accessKey));
    assert.ok(first.fingerprint);
    assert.match(first.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.match(first.stderr(), new RegExp(first.fingerprint));
    assert.equal((await stat(join(dataDir, 'access-key'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dataDir, 'tls', 'key.pem'))).mode & 0o777, 0o600);
    await first.stop();

    const second = await startAgent({ dataDir });
    assert.equal(second.accessKey, first.accessKey);
    assert.equal(second.fingerprint, first.fingerprint, 'the certificate is kept');
    assert.doesNotMatch(
      second.stderr(),
      new RegExp(first.accessKey),
      'the key is printed only once',
    );
    await second.stop();
  });

  it('runs without TLS only when asked, and with a key given on the command line', async () => {
    const agent = await startAgent({
      args: ['--no-tls', '--access-key', 'a-key-of-at-least-16-chars'],
    });
    assert.equal(agent.fingerprint, undefined);
    const client = await agent.connect();
    await client.ping();
    client.close();
    await agent.stop();
  });

  it('refuses bad flags with exit code 2 and a message that says what to do', async () => {
    const cases: [string[], RegExp][] = [
      [['--listen', 'nowhere:99999'], /--listen "nowhere:99999" is not HOST:PORT/],
      [['--task-grace', 'soon'], /--task-grace "soon" is not a duration/],
      [['--tls-cert', '/nonexistent.pem'], /--tls-cert and --tls-key go together/],
      [['--access-key', 'short'], /at least 16 characters/],
    ];
    for (const [args, message] of cases) {
      await assert.rejects(
        run(process.execPath, [cliPath, 'agent', '--data', '/nonexistent/x', ...args]),
        (err: { code: number; stderr: string }) => {
          assert.equal(err.code, 2, args.join(' '));
          assert.match(err.stderr, message);
          assert.match(err.stderr, /\[INVALID_CONFIG\]/);
          return true;
        },
      );
    }
  });

  it('as root, refuses to start with a Node.js its task users could not run', async () => {
    // A Node.js under a 0700 directory (a mktemp dir, a home): every host start would fail.
    const closed = await makeTempDir();
    dirs.push(closed);
    await chmod(closed, 0o700);
    const node = join(closed, 'node');
    await link(process.execPath, node).catch(() => copyFile(process.execPath, node));
    const dataDir = await makeTempDir();
    dirs.push(dataDir);
    const args = [cliPath, 'agent', '--data', dataDir, '--listen', '127.0.0.1:0'];
    if (process.getuid?.() !== 0) {
      // Not root: no task users, nothing to check; it refuses to be told to have them.
      await assert.rejects(
        run(node, [...args, '--task-users', 'on']),
        /needs the agent to run as root/,
      );
      return;
    }
    await assert.rejects(
      run(node, args, { timeout: 60_000 }),
      (err: { code: number; stderr: string }) => {
        assert.notEqual(err.code, 0);
        assert.match(err.stderr, /\[RUNTIME_NOT_EXECUTABLE\]/);
        assert.ok(err.stderr.includes(`${closed} is closed to other users`), err.stderr);
        return true;
      },
    );
    // Opened up, the same Node.js runs it.
    await chmod(closed, 0o755);
    const launcher = join(dataDir, 'muster');
    await writeFile(launcher, `#!/bin/sh\nexec ${node} ${cliPath} "$@"\n`, { mode: 0o755 });
    const agent = await startAgent({ dataDir, command: launcher });
    await agent.stop();
  });

  it('drains on SIGTERM: a running task finishes and its result reaches the coordinator', async () => {
    const agent = await startAgent();
    const client = await agent.connect();
    await client.sync(await createBundle());
    const task = await client.startTask({
      taskId: 'drain',
      extension: 'core',
      operation: 'run',
      input: { command: 'sleep 1; echo finished' },
    });
    const exit = agent.stop();
    const result = await task.result;
    assert.equal(result.status, 'succeeded');
    assert.equal(await exit, 0);
    assert.ok(agent.logs.some((l) => l.msg === 'draining'));
  });

  it('cancels what is still running when the drain timeout passes', async () => {
    const agent = await startAgent({ args: ['--drain-timeout', '300ms'] });
    const client = await agent.connect();
    await client.sync(await createBundle());
    const task = await client.startTask({
      taskId: 'too-long',
      extension: 'core',
      operation: 'run',
      input: { command: 'sleep 60' },
    });
    const exit = agent.stop();
    const result = await task.result;
    assert.equal(result.status, 'cancelled');
    assert.equal(await exit, 0);
  });
});

describe('muster agent --metrics-listen', () => {
  it('serves counts on GET /metrics, nothing else, and nothing without the flag', async () => {
    const dataDir = await makeTempDir();
    dirs.push(dataDir);
    const agent = await startAgent({ dataDir, args: ['--metrics-listen', '127.0.0.1:0'] });
    const port = agent.logs.find((e) => e.msg === 'listening')?.metricsPort;
    assert.equal(typeof port, 'number', 'the listening line names the metrics port');
    const scrape = async (): Promise<string> => {
      const response = await fetch(`http://127.0.0.1:${String(port)}/metrics`);
      assert.equal(response.status, 200);
      return response.text();
    };
    assert.match(await scrape(), /^muster_agent_sessions 0$/m);
    const client = await agent.connect();
    try {
      assert.match(await scrape(), /^muster_agent_sessions 1$/m);
      const text = await scrape();
      assert.match(text, /^muster_agent_tasks_running 0$/m);
      assert.match(text, /^muster_agent_instances \d+$/m);
      assert.doesNotMatch(text, new RegExp(agent.accessKey), 'no secret on the page');
    } finally {
      client.close();
    }
    const other = await fetch(`http://127.0.0.1:${String(port)}/`);
    assert.equal(other.status, 404);
    await agent.stop();

    const plain = await startAgent({ dataDir });
    assert.equal(plain.logs.find((e) => e.msg === 'listening')?.metricsPort, undefined);
    await plain.stop();
  });
});
