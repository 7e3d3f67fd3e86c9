/**
 * `cache: true` plan tasks end to end (issue 13, design §6): a real coordinator and agent run a
 * plan twice; the second time its cached task is not run — it succeeds at once with the first
 * run's outputs (byte for byte: one of them is a timestamp), on the pseudo-agent `cache`, and
 * the task that needs it gets them; a changed declared input runs it again. A plan that cannot
 * be cached is refused, pointing at the task.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AttemptView, BuildView, LogsView, TaskView } from '../../src/api/views/builds.js';
import { cleanup, startAgent } from '../helpers/agent-process.js';
import {
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

const PLAN = `
name: cached
tasks:
  shout:
    run: tr a-z A-Z < src/in.txt > out.txt && date +%s%N > stamp.txt && echo ran shout
    inputs: [src/in.txt]
    outputs: [out.txt, stamp.txt]
    cache: true
  use:
    run: cat out.txt stamp.txt > final.txt
    needs: [shout]
    outputs: [final.txt]
`;

let coordinator: StartedCoordinator;

before(async () => {
  const agent = await startAgent();
  coordinator = await startCoordinator();
  await coordinator.addAgent('one', agent);
});

after(async () => {
  await killCoordinators();
  await cleanup();
});

async function run(input: string): Promise<BuildView> {
  const data = Buffer.from(input);
  const file = {
    path: 'src/in.txt',
    sha256: await coordinator.putBlob(data),
    size: data.length,
    mode: 0o644,
  };
  const response = await coordinator.api<BuildView>('POST', '/builds', {
    plan: PLAN,
    files: [file],
  });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  const done = await coordinator.waitForBuild(response.body.id, 60_000);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  return done;
}

function task(build: BuildView, name: string): TaskView {
  const found = build.tasks.find((t) => t.name === name);
  assert.ok(found, `task ${name} in ${JSON.stringify(build.tasks)}`);
  return found;
}

async function text(sha256: string): Promise<string> {
  const response = await fetch(`${coordinator.url}/api/v1/blobs/${sha256}`, {
    headers: { authorization: `Bearer ${coordinator.token}` },
  });
  assert.equal(response.status, 200);
  return response.text();
}

async function logOf(build: BuildView, name: string): Promise<string> {
  const logs = await coordinator.api<LogsView>('GET', `/builds/${build.id}/logs`);
  return logs.body.chunks
    .filter((c) => c.task === name)
    .map((c) => c.text)
    .join('');
}

describe('cache: true plan tasks', () => {
  it('serves an unchanged task from the cache and runs it again when an input changes', async () => {
    const first = await run('alpha\n');
    const ran = task(first, 'shout');
    assert.equal(ran.agent, 'one');
    assert.equal(ran.cache, 'miss');
    assert.equal(ran.placement, null);
    assert.equal(await logOf(first, 'shout'), 'ran shout\n');
    const outputs = Object.fromEntries(ran.outputs.map((o) => [o.path, o]));
    assert.equal(await text(outputs['out.txt']!.sha256), 'ALPHA\n');

    const second = await run('alpha\n');
    const served = task(second, 'shout');
    assert.equal(served.status, 'succeeded');
    assert.equal(served.agent, 'cache');
    assert.equal(served.cache, 'hit');
    assert.equal(served.placement, 'cache');
    assert.equal(served.exitCode, 0);
    assert.equal(served.attempts, 1);
    assert.deepEqual(served.outputs, ran.outputs, 'the same files, the timestamp included');
    assert.match(
      await logOf(second, 'shout'),
      new RegExp(
        `^not run: its outputs came from the shared cache \\(stored ${ran.finishedAt?.slice(0, 10)}T[^)]+\\), key [0-9a-f]{64}\\n$`,
      ),
    );
    const attempts = await coordinator.api<AttemptView[]>('GET', `/builds/${second.id}/attempts`);
    assert.deepEqual(
      attempts.body.filter((a) => a.task === 'shout').map((a) => [a.agent, a.status]),
      [['cache', 'succeeded']],
    );
    // The task that needs it ran, on the cached files.
    const used = task(second, 'use');
    assert.equal(used.agent, 'one');
    assert.equal(used.cache, null);
    const stamp = await text(outputs['stamp.txt']!.sha256);
    assert.equal(await text(used.outputs[0]!.sha256), `ALPHA\n${stamp}`);

    const third = await run('beta\n');
    const again = task(third, 'shout');
    assert.equal(again.agent, 'one', 'a changed input runs it again');
    assert.equal(again.cache, 'miss');
    assert.equal(await logOf(third, 'shout'), 'ran shout\n');
    const changed = Object.fromEntries(again.outputs.map((o) => [o.path, o]));
    assert.equal(await text(changed['out.txt']!.sha256), 'BETA\n');
    assert.notEqual(changed['stamp.txt']!.sha256, outputs['stamp.txt']!.sha256);
  });

  it('refuses a cached task that declares no inputs, naming it', async () => {
    const response = await coordinator.api<{ error: { code: string; message: string } }>(
      'POST',
      '/builds',
      {
        plan: 'tasks:\n  t:\n    run: date > now.txt\n    outputs: [now.txt]\n    cache: true\n',
        files: [],
      },
    );
    assert.equal(response.status, 400, JSON.stringify(response.body));
    assert.equal(response.body.error.code, 'PLAN_INVALID');
    assert.match(
      response.body.error.message,
      /tasks\.t\.cache: a cached task must declare what it reads/,
    );
  });
});
