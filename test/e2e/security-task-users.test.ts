/**
 * Task users (docs/agent.md, "Task users"; docs/security.md): two coordinators share one real
 * agent. Where the agent runs as root, each instance's tasks run as an unprivileged user of its
 * own, so B's task cannot read A's work dir, A's inputs, the blob store or the agent's key, while
 * both still build. Where it does not, the documented limit holds instead: tasks share the
 * agent's user. Both branches run; which one depends on who runs the tests.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createBundle, type Bundle } from '../../src/protocol/client/bundle.js';
import type { AgentClient, OutputChunk } from '../../src/protocol/client/agent-client.js';
import { newInstanceKey } from '../../src/protocol/handshake.js';
import { readInstanceRecords } from '../../src/agent/instances.js';
import type { TaskResult } from '../../src/protocol/task-types.js';
import {
  cleanup,
  makeTempDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';

const ROOT = process.getuid?.() === 0;
const SECRET = 'the-secret-of-tenant-a';
const INPUT = Buffer.from('an input only tenant A was given\n');
const INPUT_SHA = createHash('sha256').update(INPUT).digest('hex');

const dirs: string[] = [];
after(() => cleanup(dirs));

async function tempDir(): Promise<string> {
  const dir = await makeTempDir();
  dirs.push(dir);
  return dir;
}

/** Runs a shell command as a task; resolves with its result and everything it printed. */
async function sh(
  client: AgentClient,
  taskId: string,
  command: string,
  extra: { outputs?: string[] } = {},
): Promise<{ result: TaskResult; out: string }> {
  const chunks: OutputChunk[] = [];
  const result = await client.runTask(
    { taskId, extension: 'core', operation: 'run', input: { command }, ...extra },
    (c) => chunks.push(c),
  );
  return { result, out: chunks.map((c) => c.data.toString()).join('') };
}

/** `name=<exit code>` lines a probe script prints, as a map. */
function exits(out: string): Map<string, number> {
  return new Map([...out.matchAll(/^(\w+)=(\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

async function instanceDir(agent: StartedAgent, instanceId: string): Promise<string> {
  const records = await readInstanceRecords(join(agent.dataDir, 'instances'));
  const record = records.find((r) => r.instanceId === instanceId);
  assert.ok(record, `a record for ${instanceId}`);
  return join(agent.dataDir, 'temp', 'instances', record.dirName);
}

describe('task users: one agent, two coordinators', () => {
  let dataDir: string;
  let agent: StartedAgent;
  let bundle: Bundle;
  let a: AgentClient;
  let b: AgentClient;
  let aUid: string;
  let aRunning: Promise<TaskResult> | undefined;

  before(async () => {
    dataDir = await tempDir();
    agent = await startAgent({ dataDir });
    bundle = await createBundle();
    a = await agent.connect({ instanceId: 'tenant-a' });
    // Another coordinator: its own instance id and its own instance key.
    b = await agent.connect({ instanceId: 'tenant-b', instanceKey: newInstanceKey() });
    await a.sync(bundle);
    await b.sync(bundle);
  });

  after(async () => {
    a?.close();
    b?.close();
  });

  it('runs tasks as unprivileged users, one per instance (or, not as root, as the agent)', async () => {
    const ra = await sh(a, 'a-id', 'id -u; id -g');
    const rb = await sh(b, 'b-id', 'id -u; id -g');
    assert.equal(ra.result.status, 'succeeded', ra.out);
    assert.equal(rb.result.status, 'succeeded', rb.out);
    const [uidA, gidA] = ra.out.trim().split('\n');
    const [uidB, gidB] = rb.out.trim().split('\n');
    aUid = uidA!;
    if (ROOT) {
      assert.notEqual(uidA, '0');
      assert.notEqual(gidA, '0');
      assert.notEqual(uidB, '0');
      assert.notEqual(uidA, uidB, 'each instance has its own user');
      assert.notEqual(gidA, gidB, 'and its own group');
      const records = await readInstanceRecords(join(dataDir, 'instances'));
      const recorded = records.find((r) => r.instanceId === 'tenant-a')?.taskUser;
      assert.equal(String(recorded?.uid), uidA, 'the user is recorded with the instance');
      assert.match(recorded?.name ?? '', /^muster-[0-9a-f]{16}$/);
    } else {
      // Documented: tasks share the agent's user.
      assert.equal(uidA, String(process.getuid?.()));
      assert.equal(uidB, uidA);
    }
  });

  it("keeps A's work dir, A's inputs, the blob store and the agent's key from B", async () => {
    await a.putBlobs([{ sha256: INPUT_SHA, size: INPUT.length, source: { data: INPUT } }]);
    let aOut = '';
    const started = await a.startTask(
      {
        taskId: 'a-secret',
        extension: 'core',
        operation: 'run',
        input: { command: `echo ${SECRET} > secret.txt && echo written && sleep 60` },
        inputs: [{ path: 'given.txt', sha256: INPUT_SHA, mode: 0o644 }],
      },
      (c) => (aOut += c.data.toString()),
    );
    aRunning = started.result;
    await waitFor(() => aOut.includes('written'), 20_000, "A's task to write its secret");

    // What a hostile task would guess; the test can compute it.
    const aDir = await instanceDir(agent, 'tenant-a');
    const aWork = join(aDir, 'work', 'a-secret');
    const blobs = join(dataDir, 'temp', 'blobs');
    const probe = [
      `cat ${aWork}/secret.txt; echo catSecret=$?`,
      `ls ${aWork}; echo lsWork=$?`,
      `ls ${aDir}; echo lsInstance=$?`,
      `cat ${aWork}/given.txt; echo catInput=$?`,
      `cat ${aDir}/blobs/${INPUT_SHA.slice(0, 2)}/${INPUT_SHA}; echo catViewBlob=$?`,
      `cat ${agent.dataDir}/access-key; echo catKey=$?`,
      `ls ${agent.dataDir}; echo lsData=$?`,
      `ls ${agent.dataDir}/instances; echo lsRecords=$?`,
      `cat ${agent.dataDir}/leases.json; echo catLeases=$?`,
      `ls ${blobs}; echo lsBlobs=$?`,
      `cat ${blobs}/${INPUT_SHA.slice(0, 2)}/${INPUT_SHA}; echo catBlob=$?`,
      `ls ${join(dataDir, 'temp', 'instances')}; echo lsInstances=$?`,
      `echo mine > mine.txt && cat mine.txt; echo own=$?`,
    ].join('\n');
    const { result, out } = await sh(b, 'b-probe', probe);
    assert.equal(result.status, 'succeeded', out);
    const codes = exits(out);
    assert.equal(codes.get('own'), 0, `B's own work dir works: ${out}`);
    assert.match(out, /^mine$/m);
    const denied = [
      'catSecret',
      'lsWork',
      'lsInstance',
      'catInput',
      'catViewBlob',
      'catKey',
      'lsData',
      'lsRecords',
      'catLeases',
      'lsBlobs',
      'catBlob',
      'lsInstances',
    ];
    if (ROOT) {
      for (const name of denied) assert.notEqual(codes.get(name), 0, `${name} denied: ${out}`);
      assert.equal(codes.size, denied.length + 1, out);
      assert.doesNotMatch(out, new RegExp(SECRET));
      assert.ok(!out.includes(agent.accessKey), "the agent's key did not leak");
      assert.ok(!out.includes(INPUT.toString().trim()), "A's input did not leak");
      assert.match(out, /Permission denied/);
    } else {
      // Documented limit without root: tasks share the agent's user and read each other's files.
      assert.equal(codes.get('catSecret'), 0, out);
      assert.match(out, new RegExp(SECRET));
    }

    // A's task is unharmed: cancel it, and it ends as cancelled, not failed.
    await a.cancelTask('a-secret');
    const aResult = await aRunning;
    assert.equal(aResult.status, 'cancelled', JSON.stringify(aResult));
  });

  it('collects outputs written by a task user into the store, verified', async () => {
    const { result, out } = await sh(b, 'b-out', 'mkdir -p out && printf built > out/x.txt', {
      outputs: ['out/*.txt'],
    });
    assert.equal(result.status, 'succeeded', out);
    const output = result.outputs?.[0];
    assert.ok(output, JSON.stringify(result));
    assert.equal(output.sha256, createHash('sha256').update('built').digest('hex'));
    assert.equal(output.mode, 0o644, 'a task user gets the usual umask');
    assert.equal((await b.getBlob(output.sha256))?.toString(), 'built');
    if (ROOT) {
      const stored = join(dataDir, 'temp', 'blobs', output.sha256.slice(0, 2), output.sha256);
      assert.equal(await readFile(stored, 'utf8'), 'built');
    }
    await b.releaseTask('b-out');
  });

  it('removes a task user’s work dir on release, read-only dirs too', async () => {
    const { result } = await sh(
      a,
      'a-tree',
      // Read-only dirs (as Go's module cache makes) are removed by task users only; without them
      // the agent removes what its own rm can, as before.
      `mkdir -p deep/er && touch deep/er/f && chmod ${ROOT ? '0500' : '0700'} deep/er deep`,
    );
    assert.equal(result.status, 'succeeded');
    const work = join(await instanceDir(agent, 'tenant-a'), 'work', 'a-tree');
    await a.releaseTask('a-tree');
    await assert.rejects(stat(work), { code: 'ENOENT' });
  });

  it('reuses the same user after an agent restart', async () => {
    a.close();
    b.close();
    assert.equal(await agent.stop(), 0);
    agent = await startAgent({ dataDir });
    a = await agent.connect({ instanceId: 'tenant-a' });
    await a.sync(bundle);
    const { result, out } = await sh(a, 'a-id-again', 'id -u');
    assert.equal(result.status, 'succeeded', out);
    assert.equal(out.trim(), aUid);
  });
});

describe('task users: refused rather than run as root', () => {
  it('fails the tasks of an instance whose user cannot be created (TASK_USER_FAILED)', async () => {
    const dataDir = await tempDir();
    // A useradd that always fails, first on the agent's PATH.
    const bin = join(dataDir, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'useradd'), '#!/bin/sh\necho "useradd: no" >&2\nexit 3\n');
    await chmod(join(bin, 'useradd'), 0o755);
    const agent = await startAgent({
      dataDir,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
    });
    const client = await agent.connect({ instanceId: 'no-user-for-me' });
    try {
      await client.sync(await createBundle());
      const { result, out } = await sh(client, 't', 'id -u');
      if (ROOT) {
        assert.equal(result.status, 'failed');
        assert.equal(result.error?.code, 'TASK_USER_FAILED', JSON.stringify(result));
        assert.match(result.error?.message ?? '', /useradd/);
        assert.equal(out, '', 'nothing ran');
      } else {
        assert.equal(result.status, 'succeeded', 'without root there are no task users to make');
      }
    } finally {
      client.close();
    }
  });

  it('fails them when task users could not reach the temp dir (TASK_USER_FAILED)', async () => {
    const parent = await tempDir();
    const closed = join(parent, 'closed');
    await mkdir(closed, { mode: 0o700 });
    await chmod(closed, 0o700);
    const agent = await startAgent({
      dataDir: join(parent, 'data'),
      args: ['--temp-dir', join(closed, 'temp')],
    });
    const client = await agent.connect({ instanceId: 'unreachable' });
    try {
      await client.sync(await createBundle());
      const { result } = await sh(client, 't', 'id -u');
      if (ROOT) {
        assert.equal(result.error?.code, 'TASK_USER_FAILED', JSON.stringify(result));
        assert.match(result.error?.message ?? '', /not searchable by others/);
      } else {
        assert.equal(result.status, 'succeeded');
      }
    } finally {
      client.close();
    }
  });
});
