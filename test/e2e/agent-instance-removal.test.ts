/**
 * Instances an agent no longer needs: `muster agent instances` shows what each is keyed by, its
 * id, last address and connection, and its tasks; `--remove KEY` drops one that is not in use
 * (and refuses one with a live connection or a task); and `--instance-idle-ttl` drops idle ones
 * by itself. Real agent process; as root, with task users, so the user goes too.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createBundle } from '../../src/protocol/client/bundle.js';
import type { AgentClient } from '../../src/protocol/client/agent-client.js';
import { newInstanceKey } from '../../src/protocol/handshake.js';
import {
  cleanup,
  makeTempDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import { runCli } from '../helpers/cli.js';

interface Row {
  key: string;
  product: string;
  versions: string[];
  lastSeen: string;
  keyedBy: 'id' | 'address';
  instanceId: string | null;
  lastAddress: string | null;
  lastConnected: string | null;
  boundTo: string | null;
  taskUser: string | null;
  dir: string;
  connections: number | null;
  tasks: { running: number; ended: number } | null;
}

const dirs: string[] = [];
const clients: AgentClient[] = [];

after(async () => {
  for (const c of clients) c.close();
  await cleanup(dirs);
});

async function connect(
  agent: StartedAgent,
  options: Parameters<StartedAgent['connect']>[0],
): Promise<AgentClient> {
  const client = await agent.connect(options);
  clients.push(client);
  return client;
}

async function list(agent: StartedAgent): Promise<Row[]> {
  const result = await runCli(['agent', 'instances', '--data', agent.dataDir, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as Row[];
}

/** getent's exit code: 0 found, 2 not found. */
function runGetent(name: string): Promise<number> {
  return new Promise((resolve) =>
    execFile('getent', ['passwd', name], (err) =>
      resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : 1),
    ),
  );
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('muster agent instances', () => {
  it('shows the key, what it is keyed by, the id, last address and connection, and tasks', async () => {
    const dataDir = await makeTempDir();
    dirs.push(dataDir);
    const agent = await startAgent({ dataDir });
    const byId = await connect(agent, { instanceId: 'with-id', localAddress: '127.0.0.2' });
    await connect(agent, { localAddress: '127.0.0.3' });
    await byId.sync(await createBundle());
    const task = await byId.startTask({
      taskId: 'slow',
      extension: 'core',
      operation: 'run',
      input: { command: 'sleep 60' },
    });

    const rows = await list(agent);
    const withId = rows.find((r) => r.key === 'muster@id:with-id');
    assert.ok(withId, JSON.stringify(rows));
    assert.equal(withId.keyedBy, 'id');
    assert.equal(withId.instanceId, 'with-id');
    assert.equal(withId.lastAddress, '127.0.0.2');
    assert.ok(!Number.isNaN(Date.parse(withId.lastConnected ?? '')));
    assert.match(withId.boundTo ?? '', /^sha256:/);
    assert.equal(withId.connections, 1);
    assert.deepEqual(withId.tasks, { running: 1, ended: 0 });
    // The fields there were before stay.
    assert.equal(withId.product, 'muster');
    assert.equal(withId.versions.length, 1);
    assert.ok(!Number.isNaN(Date.parse(withId.lastSeen)));
    const byAddress = rows.find((r) => r.key === 'muster@ip:127.0.0.3');
    assert.ok(byAddress, JSON.stringify(rows));
    assert.equal(byAddress.keyedBy, 'address');
    assert.equal(byAddress.instanceId, null);
    assert.equal(byAddress.lastAddress, '127.0.0.3');
    assert.equal(byAddress.connections, 1);
    assert.deepEqual(byAddress.tasks, { running: 0, ended: 0 });

    const text = await runCli(['agent', 'instances', '--data', agent.dataDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /^muster@id:with-id\n {2}product +muster\n {2}keyed by +instance id with-id\n {2}last address +127\.0\.0\.2\n/m,
    );
    assert.match(text.stdout, /^ {2}keyed by +source address 127\.0\.0\.3 /m);
    assert.match(text.stdout, /^ {2}tasks +1 running, 0 ended/m);

    await byId.cancelTask('slow');
    await task.result;
    await agent.stop();
    // Not running: the records are shown, what is live is said to be unknown.
    const offline = await runCli(['agent', 'instances', '--data', dataDir, '--json']);
    assert.equal(offline.code, 0, offline.stderr);
    const stale = (JSON.parse(offline.stdout) as Row[]).find((r) => r.key === 'muster@id:with-id');
    assert.equal(stale?.connections, null);
    assert.equal(stale?.tasks, null);
    assert.equal(stale?.lastAddress, '127.0.0.2');
  });
});

describe('removing instances', () => {
  it('--remove refuses an instance in use and removes one that is not, with its task user', async () => {
    const dataDir = await makeTempDir();
    dirs.push(dataDir);
    const agent = await startAgent({ dataDir });
    const bundle = await createBundle();
    const key = newInstanceKey();
    const client = await connect(agent, { instanceId: 'old-id', instanceKey: key });
    await client.sync(bundle);
    const task = await client.startTask({
      taskId: 'slow',
      extension: 'core',
      operation: 'run',
      input: { command: 'sleep 60' },
    });
    const remove = (): ReturnType<typeof runCli> =>
      runCli(['agent', 'instances', '--data', dataDir, '--remove', 'muster@id:old-id']);

    const connected = await remove();
    assert.equal(connected.code, 2, connected.stderr);
    assert.match(
      connected.stderr,
      /in use.*a live connection \(from 127\.0\.0\.1\).*\[INSTANCE_IN_USE\]/,
    );

    // Tasks outlive connections: a running one keeps the instance too.
    client.close();
    await waitFor(
      async () => (await list(agent)).find((r) => r.key === 'muster@id:old-id')?.connections === 0,
      10_000,
      'the connection to close',
    );
    const running = await remove();
    assert.equal(running.code, 2, running.stderr);
    assert.match(running.stderr, /1 of its tasks is running \[INSTANCE_IN_USE\]/);

    const again = await connect(agent, { instanceId: 'old-id', instanceKey: key });
    await task.result.catch(() => undefined); // its connection is gone
    const attached = await again.attachTask('slow', 0);
    await again.cancelTask('slow');
    await attached.result;
    await again.releaseTask('slow');
    again.close();
    const row = (await list(agent)).find((r) => r.key === 'muster@id:old-id')!;
    const instanceDir = join(dataDir, 'temp', 'instances', row.dir);
    assert.ok(await exists(instanceDir));
    await waitFor(
      async () => (await list(agent)).find((r) => r.key === 'muster@id:old-id')?.connections === 0,
      10_000,
      'the connection to close',
    );

    const removed = await remove();
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /instance muster@id:old-id is removed/);
    assert.equal(
      (await list(agent)).find((r) => r.key === 'muster@id:old-id'),
      undefined,
    );
    assert.equal(await exists(instanceDir), false);
    assert.equal(await exists(join(dataDir, 'instances', `${row.dir}.json`)), false);
    if (process.getuid?.() === 0) {
      assert.match(row.taskUser ?? '', /^muster-/, 'as root, tasks ran as a task user');
      const lookup = await runGetent(row.taskUser!);
      assert.equal(lookup, 2, `the task user ${row.taskUser} is deleted`);
    }
    assert.ok(
      agent.logs.some((l) => l.msg === 'instance removed' && l.instance === 'muster@id:old-id'),
    );

    // The binding went with it: another key may claim the id now.
    const other = await connect(agent, { instanceId: 'old-id', instanceKey: newInstanceKey() });
    assert.equal(other.instance.key, 'muster@id:old-id');

    const unknown = await runCli([
      'agent',
      'instances',
      '--data',
      dataDir,
      '--remove',
      'muster@id:nope',
    ]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no instance muster@id:nope .*\[NOT_FOUND\]/);
  });

  it('--instance-idle-ttl removes idle instances, never one in use by anyone', async () => {
    const dataDir = await makeTempDir();
    dirs.push(dataDir);
    const agent = await startAgent({
      dataDir,
      args: ['--instance-idle-ttl', '2s', '--gc-interval', '500ms'],
    });
    const shared = newInstanceKey();
    // A primary and its backup without an instance id: two instances, one key. The backup's sits
    // idle while the primary's is in use; then the id is set, leaving the address-keyed one.
    const primary = await connect(agent, { localAddress: '127.0.0.2', instanceKey: shared });
    const backup = await connect(agent, { localAddress: '127.0.0.3', instanceKey: shared });
    backup.close();
    await waitFor(
      () =>
        agent.logs.some(
          (l) => l.msg === 'instance removed' && l.instance === 'muster@ip:127.0.0.3',
        ),
      20_000,
      'the idle instance to be removed',
    );
    const removal = agent.logs.find((l) => l.msg === 'instance removed')!;
    assert.match(String(removal.reason), /idle .* --instance-idle-ttl 2s/);
    // Still connected, so kept however long it has been.
    await new Promise((r) => setTimeout(r, 2500));
    const keys = (await list(agent)).map((r) => r.key);
    assert.ok(keys.includes('muster@ip:127.0.0.2'), keys.join(' '));
    assert.ok(!keys.includes('muster@ip:127.0.0.3'), keys.join(' '));
    await primary.ping();
  });
});
