/**
 * The shared cache across failovers (issue 13, design §6: "replicated to the selected backup
 * and still there after a failover"). Real processes over TLS: a primary, its backup and an
 * agent; the cache's entries are written by `cache: true` plan tasks (kind 'task', stored by
 * the coordinator that ran them). An entry made on the primary is answered by the backup after
 * `kill -9` of the primary (lookup, blob, and a build served from it); one made on the active
 * backup is on the primary after the failback; both are on the backup after a second failover.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LogsView, TaskView } from '../../src/api/views/builds.js';
import type { CacheLookupView } from '../../src/api/views/compile.js';
import type { StatusView } from '../../src/api/views/status.js';
import { cleanup, startAgent, waitFor, type StartedAgent } from '../helpers/agent-process.js';
import {
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, startBackup, status, submit } from '../helpers/ha.js';

/** `src` makes the same file every time; `gen`, cached, stamps its run. */
function plan(word: string): string {
  return `tasks:
  src:
    run: echo ${word} > in.txt
    outputs: [in.txt]
  gen:
    run: tr a-z A-Z < in.txt > out.txt && date +%s%N > stamp.txt
    needs: [src]
    outputs: [out.txt, stamp.txt]
    cache: true
`;
}

let agent: StartedAgent;
let primary: StartedCoordinator;
let backup: StartedCoordinator;

function startPrimary(previous?: StartedCoordinator): Promise<StartedCoordinator> {
  const options = { tls: true, args: [...FAST] };
  return previous ? restartCoordinator(previous, options) : startCoordinator(options);
}

before(async () => {
  agent = await startAgent({ args: ['--lease-ttl', '2s'] });
  primary = await startPrimary();
  await primary.addAgent('a0', agent);
  backup = await startBackup(primary, 'b1', ['--failover-timeout', '2s']);
  await selectBackup(primary, backup, 'b1');
});

after(async () => {
  await killCoordinators();
  await cleanup();
});

async function backupState(): Promise<StatusView['primary'] | undefined> {
  try {
    return (await status(backup)).primary;
  } catch {
    return undefined;
  }
}

/** Runs the plan of `word` on `on` to success; its `gen` task and the build's id. */
async function gen(on: StartedCoordinator, word: string): Promise<TaskView & { buildId: number }> {
  const build = await submit(on, plan(word));
  const done = await on.waitForBuild(build.id, 60_000);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  const task = done.tasks.find((t) => t.name === 'gen');
  assert.ok(task);
  return { ...task, buildId: build.id };
}

/** The cache key a served task's log names. */
async function keyOf(on: StartedCoordinator, served: { buildId: number }): Promise<string> {
  const logs = await on.api<LogsView>('GET', `/builds/${served.buildId}/logs`);
  const line = logs.body.chunks.find((c) => c.task === 'gen')?.text ?? '';
  const key = /key ([0-9a-f]{64})/.exec(line)?.[1];
  assert.ok(key, `a key in ${JSON.stringify(line)}`);
  return key;
}

async function lookup(on: StartedCoordinator, key: string): Promise<CacheLookupView['entries']> {
  const response = await on.api<CacheLookupView>('POST', '/cache/lookup', { keys: [key] });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.entries;
}

async function blob(on: StartedCoordinator, sha256: string): Promise<string | undefined> {
  const response = await fetch(`${on.url}/api/v1/blobs/${sha256}`, {
    headers: { authorization: `Bearer ${on.token}` },
    signal: AbortSignal.timeout(30_000),
  });
  return response.status === 200 ? response.text() : undefined;
}

/** Made once, then served from the cache with the same outputs: the entry's key and outputs. */
async function cached(
  on: StartedCoordinator,
  word: string,
): Promise<{ key: string; outputs: TaskView['outputs'] }> {
  const made = await gen(on, word);
  assert.equal(made.cache, 'miss');
  const served = await gen(on, word);
  assert.equal(served.placement, 'cache');
  assert.deepEqual(served.outputs, made.outputs);
  return { key: await keyOf(on, served), outputs: made.outputs };
}

/** `on` answers the entry (its outputs' blobs too) and serves the plan from it. */
async function serves(
  on: StartedCoordinator,
  word: string,
  entry: { key: string; outputs: TaskView['outputs'] },
): Promise<void> {
  const found = await lookup(on, entry.key);
  assert.equal(found.length, 1, `entry ${entry.key}`);
  assert.equal(found[0]?.kind, 'task');
  assert.deepEqual(
    found[0]?.outputs.map((o) => [o.name, o.sha256]),
    entry.outputs.map((o) => [o.path, o.sha256]),
  );
  const out = entry.outputs.find((o) => o.path === 'out.txt');
  assert.equal(await blob(on, out!.sha256), `${word.toUpperCase()}\n`);
  const served = await gen(on, word);
  assert.equal(served.agent, 'cache');
  assert.equal(served.cache, 'hit');
  assert.deepEqual(served.outputs, entry.outputs);
}

/** Until `on` has the entry and its blobs (replication and blob sync run behind the writes). */
async function replicated(
  on: StartedCoordinator,
  entry: { key: string; outputs: TaskView['outputs'] },
): Promise<void> {
  await waitFor(
    async () => {
      const found = await on.api<CacheLookupView>('POST', '/cache/lookup', { keys: [entry.key] });
      if (found.status !== 200 || found.body.entries.length !== 1) return false;
      for (const o of entry.outputs) if ((await blob(on, o.sha256)) === undefined) return false;
      return true;
    },
    30_000,
    `entry ${entry.key} and its blobs to reach ${on.url}`,
  );
}

describe('the shared cache across failovers', () => {
  it(
    'is served by the backup after a failover, and what the backup made by the primary after failback',
    { timeout: 240_000 },
    async () => {
      // 1. An entry made on the primary reaches the backup.
      const alpha = await cached(primary, 'alpha');
      await replicated(backup, alpha);

      // 2. The primary dies: the backup takes over and serves it.
      await primary.kill();
      await waitFor(
        async () => (await backupState())?.state === 'active',
        30_000,
        'the backup to take over',
      );
      await backup.login();
      await serves(backup, 'alpha', alpha);
      // ...and makes one of its own.
      const beta = await cached(backup, 'beta');

      // 3. The primary comes back and takes the cluster back, with the backup's entry.
      primary = await startPrimary(primary);
      await waitFor(
        async () => {
          const seen = await backupState();
          return seen?.state === 'standby' && seen.reachable;
        },
        60_000,
        'the failback to complete',
      );
      await serves(primary, 'beta', beta);
      await serves(primary, 'alpha', alpha);

      // 4. The primary dies again: the backup serves both.
      await replicated(backup, beta);
      await primary.kill();
      await waitFor(
        async () => (await backupState())?.state === 'active',
        30_000,
        'the backup to take over again',
      );
      await serves(backup, 'alpha', alpha);
      await serves(backup, 'beta', beta);
    },
  );
});
